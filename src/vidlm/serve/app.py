"""The OpenAI-compatible HTTP API (FastAPI).

Routes: ``POST /v1/chat/completions`` (JSON or SSE when ``stream``), ``GET /v1/models``,
``GET /health``. Every error is JSON in OpenAI's shape. See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidlm.errors import VidlmError
from vidlm.serve.api_errors import APIError, bad_request, from_vidlm_error
from vidlm.serve.backend import ChatBackend, Completion
from vidlm.serve.protocol import ChatJob, RequestLimits, model_not_found, parse_chat_request
from vidlm.serve.worker import ModelWorker, QueueFullError

log = logging.getLogger("vidlm.serve")


@dataclass(frozen=True)
class ServerSettings:
    """``api_key``: required Bearer token (None: open). ``max_body_bytes``: request size cap.
    ``max_queue``: requests that may wait while one runs; more get 503 + Retry-After."""

    api_key: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    max_queue: int = 32
    retry_after_s: int = 2
    limits: RequestLimits = field(default_factory=RequestLimits)


def create_app(backend: ChatBackend, settings: ServerSettings) -> FastAPI:
    worker = ModelWorker(settings.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        worker.close()

    app = FastAPI(title="vidlm", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.worker = worker
    app.state.backend = backend
    created = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        err = APIError(exc.status_code, str(exc.detail), code=code)
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return JSONResponse(_internal_error(exc).body(), status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": backend.model_name, "in_flight": worker.load,
                "max_queue": settings.max_queue}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        _authorize(request, settings)
        return {"object": "list", "data": [{"id": backend.model_name, "object": "model",
                                            "created": created, "owned_by": "vidlm"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            return await _chat_completions(request)
        except (APIError, StarletteHTTPException):
            raise
        except Exception as exc:  # a bug: answer 500 and keep the connection usable
            log.exception("internal error")
            raise _internal_error(exc) from exc

    async def _chat_completions(request: Request) -> Any:
        _authorize(request, settings)
        body = await _read_json(request, settings.max_body_bytes)
        job = parse_chat_request(body, default_sampling=backend.default_sampling,
                                 limits=settings.limits)
        if job.model != backend.model_name:
            raise model_not_found(job.model, backend.model_name)
        if worker.load >= settings.max_queue + 1:  # fail fast, before fetching media
            raise _overloaded(settings)
        media = await run_in_threadpool(backend.resolve, job)
        if job.stream:
            return await _streaming(job, media, backend, worker, settings)
        try:
            future = worker.submit(lambda: backend.complete(job, media))
        except QueueFullError:
            backend.resolver.release(media)
            raise _overloaded(settings) from None
        try:
            completion = await asyncio.wrap_future(future)
        except VidlmError as exc:
            raise from_vidlm_error(exc) from exc
        return _completion_body(job, completion)

    return app


# ---- helpers ----------------------------------------------------------------------------
def _authorize(request: Request, settings: ServerSettings) -> None:
    if settings.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                            settings.api_key.encode()):
        raise APIError(401, "invalid or missing API key (send Authorization: Bearer KEY)",
                       type="invalid_request_error", code="invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}", code="invalid_json") from exc


def _internal_error(exc: BaseException) -> APIError:
    return APIError(500, f"internal server error: {type(exc).__name__}", type="server_error",
                    code="internal_error")


def _body_too_large(limit: int) -> APIError:
    return APIError(413, f"request body exceeds the server's limit of {limit} bytes",
                    code="request_too_large")


def _overloaded(settings: ServerSettings) -> APIError:
    return APIError(503, "the server is busy: request queue is full, retry later",
                    type="server_error", code="queue_full",
                    headers={"Retry-After": str(settings.retry_after_s)})


def _completion_body(job: ChatJob, c: Completion) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
        "created": int(time.time()), "model": job.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                     "finish_reason": c.finish_reason, "logprobs": None}],
        "usage": _usage(c),
    }


def _usage(c: Completion) -> dict[str, int]:
    return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens}


async def _streaming(job: ChatJob, media: list[Any], backend: ChatBackend, worker: ModelWorker,
                     settings: ServerSettings) -> StreamingResponse:
    result = Completion()
    loop = asyncio.get_running_loop()
    try:
        stream = worker.submit_stream(lambda: backend.stream(job, media, result), loop)
    except QueueFullError:
        backend.resolver.release(media)
        raise _overloaded(settings) from None
    items = stream.__aiter__()
    try:  # errors before the first token (bad video, context too long) become 4xx JSON
        first: str | None = await items.__anext__()
    except StopAsyncIteration:
        first = None
    except VidlmError as exc:
        raise from_vidlm_error(exc) from exc
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created,
                "model": job.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                             "logprobs": None}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    async def events() -> AsyncIterator[str]:
        try:
            yield chunk({"role": "assistant", "content": ""})
            if first is not None:
                yield chunk({"content": first})
            try:
                async for piece in items:
                    yield chunk({"content": piece})
            except Exception as exc:  # after headers went out, report in-band and end
                if not isinstance(exc, APIError):
                    log.exception("internal error while streaming")
                err = exc if isinstance(exc, APIError) else _internal_error(exc)
                yield f"data: {json.dumps(err.body())}\n\n"
                yield "data: [DONE]\n\n"
                return
            yield chunk({}, result.finish_reason)
            if job.include_usage:
                body = {"id": cid, "object": "chat.completion.chunk", "created": created,
                        "model": job.model, "choices": [], "usage": _usage(result)}
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            stream.cancel()  # client gone or done: stop generating

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
