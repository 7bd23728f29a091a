"""vidlm: an open framework for video large language models.

The public surface is small:

    import vidlm
    model = vidlm.load("path/or/hub-id", connector="slowfast")
    print(model.ask("clip.mp4", "What happens?"))

Submodules: :mod:`vidlm.video` (decoding and sampling), :mod:`vidlm.model`
(vision tower, connectors, language model), :mod:`vidlm.data`, :mod:`vidlm.train`,
:mod:`vidlm.serve`, :mod:`vidlm.eval`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from vidlm.model.videolm import VideoLM


def load(name_or_path: str, **overrides: Any) -> VideoLM:
    """Load a vidlm checkpoint or a supported ``transformers`` checkpoint (lazy import)."""
    from vidlm.model.loading import load as _load

    return _load(name_or_path, **overrides)


__all__ = ["__version__", "load"]
