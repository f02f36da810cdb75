"""The bounds on client connections: deadlines, the connection cap, and what they cut.

A public service meets clients that trickle a request head (slowloris),
connect and say nothing, idle on a kept-alive connection, or ask for a
large preview and never read it. `ConnectionGuard` bounds what each can
hold, from a few events the HTTP server reports per connection:

- **the head deadline** (`header_timeout`): a connection must deliver a
  whole request head within this time of connecting, or of the first byte
  of its next request on a kept-alive connection. Trickled bytes do not
  extend it.
- **the keep-alive idle timeout** (`keepalive_timeout`): a kept-alive
  connection that sends nothing for this long after its last response is
  closed.
- **the send timeout** (`send_timeout`): a connection whose queued response
  bytes make no progress for this long (the client reads nothing) is cut.
  Progress is measured, not the whole transfer: a slow client that keeps
  reading is never cut.
- **the connection cap** (`max_connections`): at the cap, a new connection
  closes the one that has waited longest for a request head (silent,
  trickling or idle kept-alive) to make room; only when every connection is
  busy (a request in flight or a response being sent) is the new one
  refused.

Deadlines are checked by `sweep`, which the server calls every `tick`
seconds: one pass over the open connections, a few comparisons each, so
the request path only records state changes. Cut connections are counted
by reason for the metrics, and summarised in one log line a minute at most
(never one line per connection: an attack would flood the log).

Imports nothing that touches the network, the disk or libvips; a
connection is anything with `cut()` and `unsent()`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

# Why a connection was closed by the guard; the metric's `reason` label.
CLOSE_REASONS = ("header_timeout", "idle_timeout", "send_timeout", "evicted")
SUMMARY_INTERVAL = 60.0  # seconds between two summary lines, at least
# `sweep` runs often enough to keep each deadline within a tenth of itself,
# at most once a second and at least every 50 ms.
MAX_TICK = 1.0
MIN_TICK = 0.05


class Link(Protocol):
    """One client connection, as the guard sees it."""

    def cut(self) -> None:
        """Close the connection at once, dropping whatever is queued to send."""

    def unsent(self) -> int:
        """Bytes of responses queued in the process, not yet taken by the kernel."""


@dataclass(frozen=True)
class ConnectionLimits:
    """The guard's settings; a timeout of 0 is off."""

    header_timeout: float
    keepalive_timeout: float
    send_timeout: float
    max_connections: int

    @property
    def tick(self) -> float:
        """Seconds between two sweeps."""
        timeouts = [
            t for t in (self.header_timeout, self.keepalive_timeout, self.send_timeout) if t > 0
        ]
        if not timeouts:
            return MAX_TICK
        return max(MIN_TICK, min(MAX_TICK, min(timeouts) / 10))


@dataclass(frozen=True)
class ConnectionCounts:
    """What the metrics report: open now, closed by the guard by reason, refused."""

    open: int
    closed: dict[str, int]
    refused: int


class _State:
    __slots__ = ("last_unsent", "progress_at")

    def __init__(self, now: float) -> None:
        self.progress_at = now  # when queued bytes last went out (or there were none)
        self.last_unsent = 0


class ConnectionGuard:
    """Tracks every open client connection and cuts the ones past a bound.

    Called from the event loop only. `waiting` maps each connection that
    has no whole request head yet to its deadline and the reason it would
    be closed for; its order is the order connections started waiting, so
    the first is the one to evict at the cap.
    """

    def __init__(
        self, limits: ConnectionLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._open: dict[Link, _State] = {}
        self._waiting: OrderedDict[Link, tuple[float, str]] = OrderedDict()
        self._closed: Counter[str] = Counter({reason: 0 for reason in CLOSE_REASONS})
        self._refused = 0
        self._recent: Counter[str] = Counter()  # cut since the last summary line
        self._summary_at = clock()

    # --- events the server reports ---------------------------------------------

    def opened(self, link: Link) -> bool:
        """A connection was accepted; False if it must be refused (cap reached, all busy)."""
        cap = self.limits.max_connections
        if cap and len(self._open) >= cap:
            if not self._waiting:
                self._refused += 1
                self._recent["refused"] += 1
                return False
            oldest = next(iter(self._waiting))
            self._cut(oldest, "evicted")
        now = self._clock()
        self._open[link] = _State(now)
        self._wait(link, now, self.limits.header_timeout, "header_timeout")
        return True

    def idle(self, link: Link) -> None:
        """A response is done and the connection is kept alive, with no next request yet."""
        if link in self._open:
            self._wait(link, self._clock(), self.limits.keepalive_timeout, "idle_timeout")

    def head_started(self, link: Link) -> None:
        """The first byte of a request arrived on an idle kept-alive connection."""
        if link in self._open:
            self._wait(link, self._clock(), self.limits.header_timeout, "header_timeout")

    def busy(self, link: Link) -> None:
        """A whole request head arrived: the connection is no longer waiting for one."""
        self._waiting.pop(link, None)

    def progress(self, link: Link) -> None:
        """Queued bytes went out (the transport drained below its low-water mark)."""
        state = self._open.get(link)
        if state is not None:
            state.progress_at = self._clock()

    def closed(self, link: Link) -> None:
        """The connection is gone, for whatever reason."""
        self._open.pop(link, None)
        self._waiting.pop(link, None)

    def is_idle(self, link: Link) -> bool:
        """Is `link` waiting for its next request after a response?"""
        waiting = self._waiting.get(link)
        return waiting is not None and waiting[1] == "idle_timeout"

    # --- the sweep ----------------------------------------------------------------

    def sweep(self) -> None:
        """Cut every connection past a deadline; log the summary when one is due."""
        now = self._clock()
        expired = [
            (link, reason)
            for link, (deadline, reason) in self._waiting.items()
            if deadline and now >= deadline
        ]
        for link, reason in expired:
            self._cut(link, reason)
        send_timeout = self.limits.send_timeout
        if send_timeout:
            stalled = []
            for link, state in self._open.items():
                unsent = link.unsent()
                if not unsent or unsent < state.last_unsent:
                    state.progress_at = now
                state.last_unsent = unsent
                if unsent and now - state.progress_at >= send_timeout:
                    stalled.append(link)
            for link in stalled:
                self._cut(link, "send_timeout")
        if now - self._summary_at >= SUMMARY_INTERVAL:
            self._summarise(now)

    def counts(self) -> ConnectionCounts:
        return ConnectionCounts(len(self._open), dict(self._closed), self._refused)

    # --- inside -------------------------------------------------------------------

    def _wait(self, link: Link, now: float, timeout: float, reason: str) -> None:
        self._waiting.pop(link, None)
        self._waiting[link] = (now + timeout if timeout else 0.0, reason)

    def _cut(self, link: Link, reason: str) -> None:
        self.closed(link)  # the slot is free now, before the transport reports the loss
        self._closed[reason] += 1
        self._recent[reason] += 1
        link.cut()

    def _summarise(self, now: float) -> None:
        seconds = now - self._summary_at
        self._summary_at = now
        recent, self._recent = self._recent, Counter()
        if not recent:
            return
        parts = [f"{recent[reason]} {reason}" for reason in (*CLOSE_REASONS, "refused")]
        log.warning(
            "connections cut in the last %.0fs: %s (%d open, cap %s)",
            seconds,
            ", ".join(parts),
            len(self._open),
            self.limits.max_connections or "none",
        )
