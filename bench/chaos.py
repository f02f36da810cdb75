"""The broker soak's chaos: workers killed with SIGKILL in turn, and one broker restart.

Used by bench/soak.py --broker; docs/reliability.md ("Soak in broker mode") tells the schedule.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import cluster

from rabbitmq import RabbitNode

WORKER_ARGS = ("--cache-size", "8MB")  # each worker's source cache, as the soak bounds the front's


@dataclass(frozen=True)
class ChaosResult:
    kills: int
    broker_down_s: float
    events: tuple[tuple[float, str], ...]  # (seconds from the start, what happened)
    worker_codes: tuple[int | None, ...]


@dataclass
class Chaos:
    """The broker run's workers, their SIGKILLs and the one broker restart."""

    node: RabbitNode
    work: Path
    renders: int  # renders per worker process
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    broker_down_s: float = 0.0
    events: list[tuple[float, str]] = field(default_factory=list)

    def start(self, slot: int) -> subprocess.Popen[bytes]:
        return cluster.start_worker(
            self.work, f"worker-{slot}", self.node.url, self.renders, extra=WORKER_ARGS
        )

    def start_all(self, count: int) -> None:
        self.procs = [self.start(slot) for slot in range(count)]

    async def run(self, until: float, kill_every: float) -> None:
        started = time.monotonic()
        restart_at = started + (until - started) / 2
        next_kill = started + kill_every
        slot = 0
        while True:
            now = time.monotonic()
            if restart_at and now >= restart_at:
                restart_at = 0.0
                self.events.append((now - started, "broker restart"))
                await asyncio.to_thread(self.node.restart)
                self.broker_down_s = time.monotonic() - now
                self.events.append((time.monotonic() - started, "broker back"))
                continue
            if now >= until:
                return
            if now >= next_kill:
                next_kill += kill_every
                self.procs[slot].kill()
                await asyncio.to_thread(self.procs[slot].wait)
                self.kills += 1
                self.events.append((now - started, f"kill -9 worker {slot}"))
                self.procs[slot] = await asyncio.to_thread(self.start, slot)
                slot = (slot + 1) % len(self.procs)
                continue
            wake = min(next_kill, until, restart_at or until)
            await asyncio.sleep(max(0.0, min(1.0, wake - now)))

    def stop(self) -> ChaosResult:
        codes = tuple(cluster.stop(self.procs))
        return ChaosResult(self.kills, self.broker_down_s, tuple(self.events), codes)
