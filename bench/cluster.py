"""Processes of the soaks and the scale-out demo: fronts, workers (pinned to CPU sets) and nginx.

Each process gets `work/NAME/` for its cache and log; starting one again under
the same name keeps its cache and appends to its log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import peers
from procs import Server, free_port, get, spawn, wait_ready

TASKSET = shutil.which("taskset") or "/usr/bin/taskset"
CONSUMING = "worker consuming"


def _argv(work: Path, name: str, command: str, extra: tuple[str, ...]) -> list[str]:
    (work / name / "cache").mkdir(parents=True, exist_ok=True)
    argv = [str(peers.previewer_binary()), command, "--allow-private-networks"]
    return [*argv, "--cache-dir", str(work / name / "cache"), *extra]


def log(work: Path, name: str) -> Path:
    return work / name / "previewer.log"


def start_front(work: Path, name: str, broker: str | None, extra: tuple[str, ...] = ()) -> Server:
    """`previewer serve` on a free port (embedded when `broker` is None)."""
    port = free_port()
    extra = ("--host", "127.0.0.1", "--port", str(port), *extra)
    if broker is not None:
        extra += ("--broker", broker)
    proc = spawn(_argv(work, name, "serve", extra), log(work, name))
    server = Server(name=name, url=f"http://127.0.0.1:{port}", procs=[proc])
    try:
        wait_ready(f"{server.url}/health", [proc], log(work, name))
    except BaseException:
        server.stop()
        raise
    return server


def start_worker(
    work: Path,
    name: str,
    broker: str,
    renders: int,
    cpus: str | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """`previewer worker` doing `renders` renders at once, on CPU set `cpus` (None: any core).

    Returns once its log has one more "worker consuming" line than before.
    """
    path = log(work, name)
    before = path.read_text().count(CONSUMING) if path.exists() else 0
    argv = _argv(work, name, "worker", ("--broker", broker, "--workers", str(renders), *extra))
    if cpus is not None:
        argv = [TASKSET, "-c", cpus, *argv]  # taskset execs: the pid is the worker's
    proc = spawn(argv, path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}: {path.read_text()[-2000:]}")
        if path.read_text().count(CONSUMING) > before:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"worker did not start consuming: {path.read_text()[-2000:]}")


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int | None]:
    """SIGTERM, then SIGKILL after 15 s; the exit codes."""
    Server(name="workers", url="", procs=procs).stop()
    return [proc.returncode for proc in procs]


def wait_consumers(front: Server, count: int, within: float = 30.0) -> None:
    """Wait until the front's /health counts `count` consumers on the job queue."""
    deadline = time.monotonic() + within
    seen = None
    while time.monotonic() < deadline:
        _, _, body = get(f"{front.url}/health", timeout=5)
        seen = json.loads(body)["broker"]["consumers"]
        if seen == count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{front.name}: {seen} consumers, not {count}, after {within}s")


def cpu_sets(count: int, cores: int) -> list[str | None]:
    """One core per worker when there are enough cores; otherwise none is pinned."""
    if count > cores:
        return [None] * count
    return [str(i) for i in range(count)]


def fronts_balancer(prefix: Path, ports: list[int]) -> Server:
    """nginx over the fronts at `ports`, hashing the request URI as deploy/nginx/fronts.conf."""
    servers = "".join(f"server 127.0.0.1:{port} max_fails=1 fail_timeout=10s; " for port in ports)
    upstream = (
        f"upstream previewer_fronts {{ hash $request_uri consistent; {servers}keepalive 64; }}"
    )
    body = """location / {
            proxy_pass http://previewer_fronts;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            proxy_read_timeout 35s;
        }"""
    return peers.nginx(prefix, free_port(), body, upstream=upstream)
