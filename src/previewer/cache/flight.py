"""Single flight: concurrent callers asking for the same key share one piece of work.

Pure asyncio: imports nothing that touches the network, the disk or libvips.

The work runs as its own task, shielded from its callers: one caller that
times out or goes away does not cancel what the others wait for. When the
last caller has gone, nobody wants the result, so the work is abandoned:
its task is cancelled and its `abandoned` event is set, which blocking work
on other threads polls (a render stops between steps and inside libvips).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class _Flight(Generic[T]):
    abandoned: threading.Event
    task: asyncio.Future[T] = field(init=False)
    waiters: int = 0


class SingleFlight(Generic[T]):
    """At most one task per key; callers join the one in progress."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}
        self.abandoned = 0  # flights dropped because every caller had gone

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: str, work: Callable[[threading.Event], Awaitable[T]]) -> T:
        """Join the flight for `key`, or start `work(abandoned)` as a new one."""
        flight = self._flights.get(key)
        if flight is None or flight.abandoned.is_set():
            flight = _Flight[T](threading.Event())
            flight.task = asyncio.ensure_future(work(flight.abandoned))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda _: self._land(key, flight))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.abandoned.set()
                flight.task.cancel()
                self.abandoned += 1

    def _land(self, key: str, flight: _Flight[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved: a failure nobody waits for is not "unhandled"
