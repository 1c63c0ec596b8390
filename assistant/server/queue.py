"""The one-model queue: every request that touches the model, the embedder or the store runs on
one worker thread, in the order the requests came.

One model answers one question at a time (a second generation at once would only halve the speed
of both), and the store, the vector index and the embedder are then only ever used from that one
thread, so concurrent requests cannot interleave their reads or corrupt anything. While a request
is answered, at most `limit` more may wait; beyond that `submit` refuses at once (HTTP 503), so a
client learns the server is busy instead of waiting behind a queue it cannot see.

Streamed answers cross from the worker thread to the event loop through an `EventStream`: the
worker puts each event as it comes, the HTTP response takes them, and a client that goes away
cancels the stream, which stops the generation at its next piece.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from assistant.errors import AssistantError

T = TypeVar("T")


class QueueFullError(AssistantError):
    """The model is busy and the queue holds as many waiting requests as it may (HTTP 503)."""


class Idle:
    """What an `EventStream` yields when nothing came for a while (the response keeps the
    connection alive)."""


IDLE = Idle()


class ModelQueue:
    """One worker thread; at most `limit` jobs wait while one runs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assistant-model")
        self._lock = threading.Lock()
        self._admitted = 0  # running and waiting

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Queue `job` for the worker; QueueFullError when `limit` jobs already wait."""
        with self._lock:
            if self._admitted > self.limit:
                raise QueueFullError(
                    f"the server is busy: one request is being answered and {self.limit} are "
                    "waiting; try again shortly"
                )
            self._admitted += 1

        def run() -> T:
            try:
                return job()
            finally:
                self._release()

        try:
            return self._executor.submit(run)
        except RuntimeError:  # shut down
            self._release()
            raise QueueFullError("the server is shutting down") from None

    async def call(self, job: Callable[[], T]) -> T:
        """Run `job` on the worker and wait for its result (admitted now, or QueueFullError)."""
        return await asyncio.wrap_future(self.submit(job))

    def stream(self, produce: Callable[[], Iterator[T]]) -> EventStream[T]:
        """Run `produce()` on the worker and pass each event it yields to the event loop.
        Admitted now (or QueueFullError), so the caller can still answer 503 before it starts
        its response."""
        events: EventStream[T] = EventStream(asyncio.get_running_loop())
        self.submit(lambda: events.fill(produce))
        return events

    def close(self) -> None:
        """Drop the waiting jobs, let the running one finish."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1


class EventStream(Generic[T]):
    """Events from the worker thread to one response on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._channel: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the producer at its next event (the client went away)."""
        self._cancelled.set()

    def fill(self, produce: Callable[[], Iterator[T]]) -> None:
        """On the worker: run the producer to its end (or until cancelled), passing on its
        events, then an error if it raised, then the end."""
        if self.cancelled:  # the client left while this waited in the queue
            self._put("end", None)
            return
        try:
            events = produce()
            try:
                for event in events:
                    self._put("event", event)
                    if self.cancelled:
                        break
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()  # a generator's `finally` blocks run now, on this thread
        except Exception as error:
            self._put("error", error)
        finally:
            self._put("end", None)

    async def events(self, idle_seconds: float) -> AsyncIterator[T | Idle]:
        """The events as they come; `IDLE` after each `idle_seconds` without one. An exception
        the producer raised is raised here."""
        while True:
            try:
                kind, value = await asyncio.wait_for(self._channel.get(), idle_seconds)
            except TimeoutError:
                yield IDLE
                continue
            if kind == "end":
                return
            if kind == "error" and isinstance(value, BaseException):
                raise value
            yield value  # type: ignore[misc]  # put only by `fill`'s loop: a T

    def _put(self, kind: str, value: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._channel.put_nowait, (kind, value))
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            self.cancel()
