"""The broker soak's chaos: worker processes, killed with SIGKILL in turn, and a broker restart.

`Chaos.run` kills one worker (in turn) every `kill_every` seconds and starts
it again at once, and restarts the RabbitMQ node once, halfway through; each
event is recorded with its time. Used by bench/soak.py --broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rabbitmq import RabbitNode

WORKER_CACHE = "8MB"  # each worker's source cache, as bench/soak.py bounds the front's


def _start_worker(
    broker: str, cache_dir: str, log_path: Path, workers: int
) -> subprocess.Popen[bytes]:
    """Start `previewer worker`; its log is appended to `log_path`. Does not wait."""
    command = [sys.executable, "-m", "previewer", "worker", "--broker", broker]
    command += ["--cache-dir", cache_dir, "--cache-size", WORKER_CACHE, "--allow-private-networks"]
    command += ["--workers", str(workers)]
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_consuming(log_path: Path, count: int, within: float = 60) -> None:
    """Wait until `log_path` holds `count` "worker consuming" lines."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if log_path.read_text().count("worker consuming") >= count:
            return
        time.sleep(0.05)
    raise RuntimeError("worker did not start consuming:\n" + log_path.read_text()[-3000:])


@dataclass
class Chaos:
    """The broker run's workers, their SIGKILLs and the one broker restart."""

    node: RabbitNode
    folder: Path
    workers: int  # renders per worker process
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    broker_down_s: float = 0.0
    events: list[tuple[float, str]] = field(default_factory=list)  # seconds from the start

    def log(self, slot: int) -> Path:
        return self.folder / f"worker-{slot}.log"

    def start(self, slot: int) -> subprocess.Popen[bytes]:
        cache = str(self.folder / f"worker-{slot}-cache")
        return _start_worker(self.node.url, cache, self.log(slot), self.workers)

    def start_all(self, count: int) -> None:
        self.procs = [self.start(slot) for slot in range(count)]
        for slot in range(count):
            _wait_consuming(self.log(slot), 1)

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
                self.procs[slot] = self.start(slot)
                slot = (slot + 1) % len(self.procs)
                continue
            wake = min(next_kill, until, restart_at or until)
            await asyncio.sleep(max(0.0, min(1.0, wake - now)))

    def stop(self) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(None)
        return codes
