"""The exception hierarchy. Every error a user can cause derives from :class:`VidlmError`.

The CLI prints these as one line with no stack trace; the server maps them to 4xx
JSON errors; batch and eval jobs record them and go on.
"""

from __future__ import annotations

from pathlib import Path


class VidlmError(Exception):
    """Base class for errors caused by input, configuration or environment."""


class VideoError(VidlmError):
    """A video or image could not be read. Carries the path and a human-readable reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelNotFoundError(VidlmError):
    """A model is neither local nor downloadable (offline)."""


class ConfigError(VidlmError):
    """A config file or override is invalid."""


class DataError(VidlmError):
    """A dataset record is invalid. Carries where (file, record id) and why."""


class ContextLengthError(VidlmError):
    """A prompt with its visual tokens does not fit in the language model's context."""
