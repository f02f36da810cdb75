"""Processes for the benchmark: start and stop servers, and measure their trees.

Standard library only (Linux /proc). A server under test is a set of root
processes (nginx master, thumbor processes, previewer) and all their
descendants; its memory is the sum of VmRSS over that tree, sampled every
100 ms, and its CPU time the sum of utime + stime from /proc/<pid>/stat.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
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

_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(entry.path, "stat").read_text()
            # the command name may hold spaces and parentheses: split after the last ")"
            found[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return found


def tree(roots: Iterable[int]) -> set[int]:
    """The root pids and all their living descendants."""
    parents = _parents()
    members = {pid for pid in roots if pid in parents}
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in members} - members
        members |= children
        grew = bool(children)
    return members


def rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of the processes, in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds spent by all cores outside idle and iowait since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def _own_cpu() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class OtherCpu:
    """CPU time the rest of the machine spends while a block runs.

    Ours: this process, the children it waits for during the block (wrk, a
    bench script) and the process trees of `roots` (servers, the origin).
    Everything else busy meanwhile is `percent` of all cores' time: a figure
    well above zero means another program disturbed the measurement.
    """

    roots: list[int] = field(default_factory=list)
    percent: float = 0.0
    roots_cpu: float = 0.0  # CPU seconds of the `roots` trees during the block

    def __enter__(self) -> OtherCpu:
        self._pids = tree(self.roots)
        self._roots_before = cpu_seconds(self._pids)
        self._busy_before = machine_busy_seconds()
        self._own_before = _own_cpu()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._started
        # descendants may have been born during the block: count them too
        self.roots_cpu = cpu_seconds(tree(self.roots) | self._pids) - self._roots_before
        busy = machine_busy_seconds() - self._busy_before
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
            self.peak = max(self.peak, rss_bytes(pids))
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
    """Poll `url` until it answers 200; returns the seconds waited.

    Raises RuntimeError, with the tail of the log, if a process exits first or
    the time runs out.
    """
    started = time.monotonic()
    while time.monotonic() - started < within:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode}: {_tail(log)}")
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


def python_json(argv: list[str], timeout: float, python: str = sys.executable) -> dict[str, Any]:
    """Run a bench script (with this Python by default) and parse the JSON it prints last."""
    done = subprocess.run(
        [python, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
