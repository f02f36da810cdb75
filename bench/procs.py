"""Processes for the benchmark: start and stop servers, and measure their trees.

A server is a set of root processes and all their descendants (psutil): its
memory is the sum of their RSS, its CPU time the sum of user + system time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _processes(pids: Iterable[int]) -> list[psutil.Process]:
    """The processes of `pids` that still exist."""
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def tree(roots: Iterable[int]) -> set[int]:
    """The root pids and all their living descendants."""
    members: set[int] = set()
    for root in _processes(roots):
        with contextlib.suppress(psutil.Error):
            members |= {root.pid, *(child.pid for child in root.children(recursive=True))}
    return members


def cpu_seconds(pids: Iterable[int]) -> float:
    """user + system CPU time of the processes, in seconds."""
    total = 0.0
    for proc in _processes(pids):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _busy_seconds() -> float:
    """CPU seconds all cores spent outside idle and iowait since boot (guest is in user)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(getattr(times, name, 0.0) for name in busy)


def _own_cpu() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class OtherCpu:
    """CPU time the rest of the machine spends while a block runs, as `percent` of all cores.

    Ours, left out: this process, the children it waits for during the block
    and the process trees of `roots`, whose CPU seconds are `roots_cpu`.
    """

    roots: list[int] = field(default_factory=list)
    percent: float = 0.0
    roots_cpu: float = 0.0

    def __enter__(self) -> OtherCpu:
        self._pids = tree(self.roots)
        self._roots_before = cpu_seconds(self._pids)
        self._busy_before = _busy_seconds()
        self._own_before = _own_cpu()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._started
        # descendants may have been born during the block: count them too
        self.roots_cpu = cpu_seconds(tree(self.roots) | self._pids) - self._roots_before
        busy = _busy_seconds() - self._busy_before
        ours = self.roots_cpu + _own_cpu() - self._own_before
        cores = os.cpu_count() or 1
        self.percent = max(0.0, busy - ours) / (wall * cores) * 100 if wall > 0 else 0.0


@dataclass
class TreeSampler:
    """Samples the RSS of a process tree every `interval` seconds on a thread."""

    roots: list[int]
    interval: float = 0.1
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        pids = tree(self.roots)
        refreshed = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 1.0:  # children may come and go
                pids = tree(self.roots)
                refreshed = time.monotonic()
            rss = 0
            for proc in _processes(pids):
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
            self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)


@dataclass
class Server:
    """Processes started for one peer, stopped together."""

    name: str
    url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def roots(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                # nginx finishes gracefully on SIGQUIT; the others on SIGTERM
                proc.send_signal(signal.SIGQUIT if _is_nginx(proc) else signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _is_nginx(proc: subprocess.Popen[bytes]) -> bool:
    args = proc.args
    first = args[0] if isinstance(args, list | tuple) else str(args).split()[0]
    return Path(str(first)).name == "nginx"


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server process with stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )


def get(url: str, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def wait_ready(
    url: str, procs: list[subprocess.Popen[bytes]], log: Path, within: float = 30.0
) -> float:
    """Poll `url` until it answers 200; the seconds waited.

    RuntimeError, with the log's tail, if a process exits first or time runs out.
    """
    started = time.monotonic()
    while time.monotonic() - started < within:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError):
            status, _, _ = get(url, timeout=2)
            if status == 200:
                return time.monotonic() - started
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready within {within}s: {_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def python_json(
    argv: list[str],
    timeout: float,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run a bench script (this Python by default) with `env` added; the JSON it prints last."""
    done = subprocess.run(
        [python, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env else None,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
