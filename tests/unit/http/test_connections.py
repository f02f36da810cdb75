"""ConnectionGuard's bookkeeping on a clock the test moves, and the descriptor helpers."""

from __future__ import annotations

import errno
import logging
import resource

import aiohttp
import pytest

from previewer.http.connections import (
    MAX_TICK,
    MIN_TICK,
    SUMMARY_INTERVAL,
    ConnectionGuard,
    ConnectionLimits,
)
from previewer.process import descriptors


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLink:
    """A connection as the guard sees it: whether it was cut, and bytes queued to send."""

    def __init__(self) -> None:
        self.was_cut = False
        self.queued = 0

    def cut(self) -> None:
        self.was_cut = True

    def unsent(self) -> int:
        return self.queued


def guard(
    header: float = 10, keepalive: float = 75, send: float = 30, cap: int = 0
) -> tuple[ConnectionGuard, Clock]:
    clock = Clock()
    return ConnectionGuard(ConnectionLimits(header, keepalive, send, cap), clock), clock


def test_a_connection_without_a_whole_head_is_cut_at_the_deadline() -> None:
    g, clock = guard(header=10)
    link = FakeLink()
    assert g.opened(link)
    clock.now += 9.9
    g.sweep()
    assert not link.was_cut
    clock.now += 0.1
    g.sweep()
    assert link.was_cut
    assert g.counts().closed["header_timeout"] == 1
    assert g.counts().open == 0


def test_a_busy_connection_is_not_cut_by_the_head_deadline() -> None:
    g, clock = guard(header=10)
    link = FakeLink()
    g.opened(link)
    g.busy(link)
    clock.now += 100
    g.sweep()
    assert not link.was_cut


def test_an_idle_connection_gets_the_keepalive_timeout_then_the_head_deadline() -> None:
    g, clock = guard(header=10, keepalive=75)
    link = FakeLink()
    g.opened(link)
    g.busy(link)
    g.idle(link)
    assert g.is_idle(link)
    clock.now += 70
    g.sweep()
    assert not link.was_cut  # past the head deadline, within the idle timeout
    g.head_started(link)  # the first byte of the next request
    assert not g.is_idle(link)
    clock.now += 9
    g.sweep()
    assert not link.was_cut
    clock.now += 1
    g.sweep()
    assert link.was_cut
    assert g.counts().closed["header_timeout"] == 1


def test_an_idle_connection_is_closed_after_the_keepalive_timeout() -> None:
    g, clock = guard(keepalive=5)
    link = FakeLink()
    g.opened(link)
    g.busy(link)
    g.idle(link)
    clock.now += 5
    g.sweep()
    assert link.was_cut
    assert g.counts().closed == {
        "header_timeout": 0,
        "idle_timeout": 1,
        "send_timeout": 0,
        "evicted": 0,
    }


def test_a_timeout_of_zero_is_off() -> None:
    g, clock = guard(header=0, keepalive=0, send=0)
    links = [FakeLink(), FakeLink()]
    for link in links:
        g.opened(link)
    g.busy(links[1])
    g.idle(links[1])
    links[1].queued = 100
    clock.now += 10**6
    g.sweep()
    assert not any(link.was_cut for link in links)


def test_a_response_that_makes_no_progress_is_cut() -> None:
    g, clock = guard(send=30)
    link = FakeLink()
    g.opened(link)
    g.busy(link)
    link.queued = 200_000
    g.sweep()
    clock.now += 29
    g.sweep()
    assert not link.was_cut
    clock.now += 1
    g.sweep()
    assert link.was_cut
    assert g.counts().closed["send_timeout"] == 1


@pytest.mark.parametrize("how", ["fewer bytes queued", "drained", "nothing queued"])
def test_progress_restarts_the_send_timeout(how: str) -> None:
    g, clock = guard(send=30)
    link = FakeLink()
    g.opened(link)
    g.busy(link)
    link.queued = 200_000
    g.sweep()
    for _ in range(10):  # 250 s in all, never 30 s without progress
        clock.now += 25
        if how == "fewer bytes queued":
            link.queued -= 1000
        elif how == "drained":
            g.progress(link)
        else:
            link.queued = 0
            g.sweep()
            link.queued = 200_000
        g.sweep()
    assert not link.was_cut


def test_at_the_cap_the_connection_waiting_longest_makes_room() -> None:
    g, clock = guard(cap=3)
    first, second, third = FakeLink(), FakeLink(), FakeLink()
    for link in (first, second, third):
        assert g.opened(link)
        clock.now += 1
    g.busy(first)  # busy: never evicted
    g.busy(second)
    g.idle(second)  # idle since now: waiting less long than `third`
    newcomer = FakeLink()
    assert g.opened(newcomer)
    assert third.was_cut
    assert not first.was_cut
    assert not second.was_cut
    assert g.counts().open == 3
    assert g.counts().closed["evicted"] == 1


def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused() -> None:
    g, _ = guard(cap=2)
    links = [FakeLink(), FakeLink()]
    for link in links:
        g.opened(link)
        g.busy(link)
    assert not g.opened(FakeLink())
    assert g.counts().refused == 1
    assert g.counts().open == 2
    g.closed(links[0])
    assert g.opened(FakeLink())


def test_a_closed_connection_is_forgotten() -> None:
    g, clock = guard(header=1)
    link = FakeLink()
    g.opened(link)
    g.closed(link)
    clock.now += 5
    g.sweep()
    assert not link.was_cut
    g.idle(link)  # late events of a closed connection change nothing
    g.progress(link)
    assert g.counts().open == 0


def test_cut_connections_are_summarised_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    g, clock = guard(header=1, cap=1)
    caplog.set_level(logging.WARNING, "previewer.http.connections")
    for _ in range(500):  # an attack: 500 connections, each cut
        g.opened(FakeLink())
        clock.now += 0.1
        g.sweep()
    assert not caplog.records  # nothing logged per connection
    clock.now += SUMMARY_INTERVAL
    g.sweep()
    (record,) = caplog.records
    assert "connections cut in the last" in record.getMessage()
    assert "499 evicted" in record.getMessage()
    clock.now += SUMMARY_INTERVAL
    g.sweep()
    assert len(caplog.records) == 1  # a quiet minute logs nothing


@pytest.mark.parametrize(
    ("timeouts", "tick"),
    [((10, 75, 30), 1.0), ((0.5, 0, 0), MIN_TICK), ((0, 0, 0), MAX_TICK), ((2, 75, 30), 0.2)],
)
def test_the_sweep_runs_often_enough_for_the_shortest_timeout(
    timeouts: tuple[float, float, float], tick: float
) -> None:
    assert ConnectionLimits(*timeouts, max_connections=0).tick == pytest.approx(tick)


# --- process/descriptors.py -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("open_files", "expected"),
    [(1024, 1024 - 200), (20_000, descriptors.MAX_AUTO_CONNECTIONS), (100, 16)],
)
def test_the_automatic_cap_leaves_the_reserve(open_files: int, expected: int) -> None:
    assert descriptors.connection_cap(open_files, 200) == expected


def test_the_cap_of_an_unlimited_limit_is_the_most_allowed() -> None:
    assert descriptors.connection_cap(resource.RLIM_INFINITY, 200) == 2048


def test_the_reserve_grows_with_render_slots_and_the_broker() -> None:
    assert descriptors.reserve(10, broker=False) == 64 + 20
    assert descriptors.reserve(10, broker=True) == 64 + 20 + 16


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 512)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        limit = descriptors.raise_limit()
        assert limit.before == lowered
        expected = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        assert limit.soft == expected
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == expected
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_running_out_of_descriptors_is_told_apart() -> None:
    assert descriptors.exhausted(OSError(errno.EMFILE, "Too many open files"))
    assert descriptors.exhausted(OSError(errno.ENFILE, "File table overflow"))
    assert not descriptors.exhausted(OSError(errno.ECONNREFUSED, "refused"))
    assert not descriptors.exhausted(ValueError("no"))
    assert not descriptors.exhausted(None)
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = OSError(errno.EMFILE, "Too many open files")
    assert descriptors.exhausted(wrapped)


def test_aiohttp_connector_errors_carry_the_descriptor_error() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("origin.test", 80, False, True, None, None, None)
    error = aiohttp.ClientConnectorError(key, OSError(errno.EMFILE, "Too many open files"))
    assert descriptors.exhausted(error)
