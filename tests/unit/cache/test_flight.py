"""previewer.cache.flight: callers of one key share one run of the work; the last to leave
ends it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from previewer.cache.flight import SingleFlight
from waiting import until


class Work:
    """Work that counts its runs and waits for `release` before answering."""

    def __init__(self, result: str = "done") -> None:
        self.result = result
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = 0
        self.abandoned: list[threading.Event] = []

    async def __call__(self, abandoned: threading.Event) -> str:
        self.runs += 1
        self.abandoned.append(abandoned)
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.result


async def _until_waiting(flight: SingleFlight[str], key: str, count: int) -> None:
    """Until `count` callers have joined the flight for `key` (they join without yielding
    once started, so a few passes of the loop are enough)."""
    for _ in range(100):
        current = flight._flights.get(key)
        if current is not None and current.waiters == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} callers never joined {key!r}")


async def test_concurrent_callers_share_one_run_of_the_work() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    callers = [asyncio.create_task(flight.run("k", work)) for _ in range(10)]
    await _until_waiting(flight, "k", 10)
    assert len(flight) == 1
    work.release.set()
    assert await asyncio.gather(*callers) == ["done"] * 10
    assert work.runs == 1
    assert len(flight) == 0  # the flight has landed
    assert flight.abandoned == 0
    assert not work.abandoned[0].is_set()


async def test_different_keys_run_their_own_work() -> None:
    flight: SingleFlight[str] = SingleFlight()
    first, second = Work("one"), Work("two")
    a = asyncio.create_task(flight.run("a", first))
    b = asyncio.create_task(flight.run("b", second))
    await asyncio.gather(first.started.wait(), second.started.wait())
    assert len(flight) == 2
    first.release.set()
    second.release.set()
    assert await asyncio.gather(a, b) == ["one", "two"]
    assert (first.runs, second.runs) == (1, 1)


async def test_a_caller_after_landing_starts_a_new_run() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    work.release.set()
    assert await flight.run("k", work) == "done"
    assert await flight.run("k", work) == "done"
    assert work.runs == 2


async def test_the_last_caller_leaving_cancels_the_work() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    caller = asyncio.create_task(flight.run("k", work))
    await work.started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.abandoned[0].is_set()  # seen at once by blocking work on other threads
    assert flight.abandoned == 1
    running = flight._flights["k"].task
    with pytest.raises(asyncio.CancelledError):
        await running
    assert work.cancelled == 1
    await until(lambda: len(flight) == 0)  # landed once the task's callbacks ran


async def test_a_caller_leaving_while_others_wait_cancels_nothing() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    leaving = asyncio.create_task(flight.run("k", work))
    staying = [asyncio.create_task(flight.run("k", work)) for _ in range(2)]
    await _until_waiting(flight, "k", 3)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    await _until_waiting(flight, "k", 2)
    assert not work.abandoned[0].is_set()
    work.release.set()
    assert await asyncio.gather(*staying) == ["done", "done"]
    assert (work.runs, work.cancelled, flight.abandoned) == (1, 0, 0)


async def test_blocking_work_on_a_thread_sees_the_abandonment_and_stops() -> None:
    flight: SingleFlight[str] = SingleFlight()
    on_thread = threading.Event()
    stopped = threading.Event()

    def blocking(abandoned: threading.Event) -> str:
        on_thread.set()
        abandoned.wait(30)  # a render polls the event between steps and inside libvips
        stopped.set()
        return "stopped" if abandoned.is_set() else "finished"

    async def work(abandoned: threading.Event) -> str:
        return await asyncio.to_thread(blocking, abandoned)

    caller = asyncio.create_task(flight.run("k", work))
    await asyncio.to_thread(on_thread.wait, 30)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await asyncio.to_thread(stopped.wait, 30)
    assert flight.abandoned == 1


async def test_an_error_reaches_every_waiter() -> None:
    flight: SingleFlight[str] = SingleFlight()
    runs = 0
    release = asyncio.Event()

    async def failing(abandoned: threading.Event) -> str:
        nonlocal runs
        runs += 1
        await release.wait()
        raise ValueError("the source is not an image")

    callers = [asyncio.create_task(flight.run("k", failing)) for _ in range(3)]
    await _until_waiting(flight, "k", 3)
    release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(o, ValueError) for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == 1  # one failure, shared
    assert runs == 1
    assert len(flight) == 0
    assert flight.abandoned == 0
    # the next caller tries again
    release.clear()
    retry = asyncio.create_task(flight.run("k", failing))
    await _until_waiting(flight, "k", 1)
    release.set()
    with pytest.raises(ValueError, match="not an image"):
        await retry
    assert runs == 2


async def test_a_caller_after_an_abandoned_flight_starts_a_new_one() -> None:
    """The abandoned work may still be winding down (a render between two polls): the new
    caller does not join it, and its landing does not remove the new flight."""
    flight: SingleFlight[str] = SingleFlight()
    wind_down = asyncio.Event()
    old_started = asyncio.Event()

    async def stubborn(abandoned: threading.Event) -> str:
        old_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await wind_down.wait()
            raise
        return "never"

    leaving = asyncio.create_task(flight.run("k", stubborn))
    await old_started.wait()
    old = flight._flights["k"]
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert old.abandoned.is_set()
    assert not old.task.done()  # still winding down, and still registered
    assert flight._flights["k"] is old

    fresh = Work("fresh")
    caller = asyncio.create_task(flight.run("k", fresh))
    await fresh.started.wait()
    new = flight._flights["k"]
    assert new is not old
    assert not fresh.abandoned[0].is_set()

    wind_down.set()
    with pytest.raises(asyncio.CancelledError):
        await old.task
    assert flight._flights["k"] is new  # the old flight's landing left the new one alone
    fresh.release.set()
    assert await caller == "fresh"
    assert len(flight) == 0
    assert flight.abandoned == 1


async def test_the_abandoned_counter_counts_flights_not_callers() -> None:
    flight: SingleFlight[str] = SingleFlight()
    for round_ in range(1, 4):
        work = Work()
        callers = [asyncio.create_task(flight.run(f"k{round_}", work)) for _ in range(3)]
        await _until_waiting(flight, f"k{round_}", 3)
        for caller in callers:
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        assert flight.abandoned == round_
    finished = Work()
    finished.release.set()
    assert await flight.run("done", finished) == "done"
    assert flight.abandoned == 3
