"""Admission control: render slots and the bounded queue in front of them.

Pure (a lock and counters): imports nothing that touches the network, the
disk or libvips. `admit` hands out a `Ticket` while fewer than `slots +
queue_size` renders are running or waiting, and raises `Overloaded` (503)
at once otherwise, so a burst never piles up unbounded work. The ticket
follows its render: `start` when a slot takes it, `finish` when the work is
over or dropped. The counts therefore reflect the work the pool still has,
not the requests still waiting for it (a client that gives up does not free
a slot its render still holds).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from previewer.errors import Overloaded

_WAITING, _RUNNING, _DONE = range(3)


@dataclass(frozen=True)
class AdmissionState:
    running: int
    waiting: int


class Admission:
    """At most `slots` renders running and `queue_size` waiting; thread-safe."""

    def __init__(self, slots: int, queue_size: int) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        if queue_size < 0:
            raise ValueError("queue_size must not be negative")
        self._limit = slots + queue_size
        self._running = 0
        self._waiting = 0
        self._lock = threading.Lock()

    def admit(self) -> Ticket:
        """A place in the queue, or Overloaded when every slot and place is taken."""
        with self._lock:
            taken = self._running + self._waiting
            if taken >= self._limit:
                raise Overloaded(detail=f"{taken} renders running or queued")
            self._waiting += 1
        return Ticket(self)

    def state(self) -> AdmissionState:
        with self._lock:
            return AdmissionState(self._running, self._waiting)

    def _move(self, ticket: Ticket, to: int) -> None:
        with self._lock:
            if ticket._state == _DONE or ticket._state == to:
                return
            if ticket._state == _WAITING:
                self._waiting -= 1
            else:
                self._running -= 1
            if to == _RUNNING:
                self._running += 1
            ticket._state = to


class Ticket:
    """One admitted render: waiting, then running, then done (each step once)."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._state = _WAITING

    def start(self) -> None:
        """A slot has taken the render (called on the thread that runs it): the queue wait ends."""
        self._admission._move(self, _RUNNING)

    def finish(self) -> None:
        """The render is over, failed or dropped before it started; idempotent."""
        self._admission._move(self, _DONE)
