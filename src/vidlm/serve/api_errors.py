"""Errors the HTTP API returns, in OpenAI's shape ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from typing import Any

from vidlm.errors import ContextLengthError, VideoError, VidlmError


class APIError(Exception):
    """An error answered to the client with ``status`` and OpenAI's error body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def from_vidlm_error(exc: VidlmError, *, param: str | None = None) -> APIError:
    """Map a library error caused by the request's input to a 400."""
    if isinstance(exc, VideoError):
        return APIError(400, f"cannot read media: {exc.reason}", param=param, code="invalid_media")
    if isinstance(exc, ContextLengthError):
        return APIError(400, str(exc), param="messages", code="context_length_exceeded")
    return APIError(400, str(exc), param=param, code="invalid_request")
