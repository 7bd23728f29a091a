"""One thread that runs every model call, in order, behind a bounded admission count.

The model is not thread-safe (and a single CPU/GPU gains nothing from running two
generations at once), so HTTP handlers hand their work to :class:`ModelWorker`.
At most ``max_queue`` jobs wait while one runs; :meth:`ModelWorker.submit` raises
:class:`QueueFullError` beyond that, which the server answers with 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_END = object()


class QueueFullError(Exception):
    """More jobs than the queue admits are waiting."""


class ModelWorker:
    def __init__(self, max_queue: int) -> None:
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {max_queue}")
        self.max_queue = max_queue
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidlm-model")
        self._lock = threading.Lock()
        self._admitted = 0  # waiting + running

    @property
    def load(self) -> int:
        """Jobs admitted and not finished (waiting + running)."""
        return self._admitted

    def _admit(self) -> None:
        with self._lock:
            if self._admitted >= self.max_queue + 1:
                raise QueueFullError(f"{self._admitted} requests in flight; queue limit "
                                     f"{self.max_queue}")
            self._admitted += 1

    def _release(self, _: Any = None) -> None:
        with self._lock:
            self._admitted -= 1

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the model thread. Raises :class:`QueueFullError` when full."""
        self._admit()
        try:
            future = self._pool.submit(fn)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        return future

    def submit_stream(self, make: Callable[[], Iterator[T]],
                      loop: asyncio.AbstractEventLoop) -> StreamJob[T]:
        """Run the iterator ``make()`` on the model thread, feeding items to an async reader."""
        job: StreamJob[T] = StreamJob(loop)
        job.future = self.submit(lambda: job.pump(make))
        return job

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class StreamJob(Generic[T]):
    """Items produced on the model thread, read with ``async for``; ``cancel()`` stops it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._cancelled = threading.Event()
        self.future: Future[None] | None = None

    def _send(self, item: Any) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def pump(self, make: Callable[[], Iterator[T]]) -> None:
        try:
            if self._cancelled.is_set():
                return
            iterator = make()
            try:
                for item in iterator:
                    self._send(item)
                    if self._cancelled.is_set():
                        break
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the reader, which turns it into a response
            self._send(_Failure(exc))
        finally:
            self._send(_END)

    def cancel(self) -> None:
        self._cancelled.set()

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
