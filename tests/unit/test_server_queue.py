"""The one-model queue: one job at a time in arrival order, a limit on the waiting, and streamed
events that cross from the worker thread to the event loop (and stop when the reader leaves)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from assistant.errors import InputError
from assistant.server.queue import ModelQueue, QueueFullError


def test_jobs_run_one_at_a_time_in_arrival_order() -> None:
    queue = ModelQueue(limit=10)
    running = []
    order = []
    lock = threading.Lock()

    def job(number: int) -> int:
        with lock:
            running.append(number)
            assert len(running) == 1
        time.sleep(0.01)
        with lock:
            running.remove(number)
            order.append(number)
        return number

    futures = [queue.submit(lambda n=n: job(n)) for n in range(8)]  # type: ignore[misc]
    assert [future.result(5) for future in futures] == list(range(8))
    assert order == list(range(8))
    queue.close()
    assert queue.admitted == 0


def test_beyond_the_limit_a_job_is_refused_until_one_finishes() -> None:
    queue = ModelQueue(limit=1)
    release = threading.Event()
    running = queue.submit(lambda: release.wait(5))
    waiting = queue.submit(lambda: "second")
    with pytest.raises(QueueFullError, match="1 are waiting"):
        queue.submit(lambda: "third")
    release.set()
    assert running.result(5) and waiting.result(5) == "second"
    assert queue.submit(lambda: "again").result(5) == "again"
    queue.close()


def test_a_limit_of_zero_lets_no_job_wait() -> None:
    queue = ModelQueue(limit=0)
    release = threading.Event()
    running = queue.submit(lambda: release.wait(5))
    with pytest.raises(QueueFullError):
        queue.submit(lambda: None)
    release.set()
    running.result(5)
    queue.close()


def test_a_failing_job_frees_its_place() -> None:
    queue = ModelQueue(limit=0)

    def fail() -> None:
        raise InputError("bad")

    with pytest.raises(InputError):
        queue.submit(fail).result(5)
    assert queue.admitted == 0
    queue.close()


def test_streamed_events_and_errors_reach_the_event_loop() -> None:
    def produce() -> Iterator[str]:
        yield "a"
        yield "b"
        raise InputError("the producer failed")

    async def read() -> tuple[list[object], str]:
        queue = ModelQueue(limit=1)
        seen: list[object] = []
        try:
            async for event in queue.stream(produce).events(idle_seconds=5):
                seen.append(event)
        except InputError as error:
            return seen, str(error)
        finally:
            queue.close()
        return seen, ""

    assert asyncio.run(read()) == (["a", "b"], "the producer failed")


def test_a_reader_that_leaves_stops_the_producer() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for number in range(1000):
                produced.append(number)
                time.sleep(0.005)
                yield number
        finally:
            closed.set()

    async def read_two() -> None:
        queue = ModelQueue(limit=0)
        events = queue.stream(produce)
        async for event in events.events(idle_seconds=5):
            if event == 1:
                events.cancel()
                break
        await asyncio.to_thread(closed.wait, 5)
        queue.close()

    asyncio.run(read_two())
    assert closed.is_set() and len(produced) < 10


def test_a_quiet_producer_yields_idle_markers() -> None:
    def produce() -> Iterator[str]:
        time.sleep(0.25)
        yield "late"

    async def read() -> list[object]:
        queue = ModelQueue(limit=0)
        seen = [event async for event in queue.stream(produce).events(idle_seconds=0.1)]
        queue.close()
        return seen

    seen = asyncio.run(read())
    assert seen[-1] == "late" and len(seen) >= 2 and all(e != "late" for e in seen[:-1])
