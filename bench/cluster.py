"""Processes of the broker-mode demos: fronts, workers (pinned to CPU sets) and nginx.

A front is `previewer serve --broker URL` (or without --broker, the embedded
mode) on a free port with its own cache directory; a worker is
`previewer worker --broker URL`, started under `taskset` when it gets a CPU
set of its own. `fronts_balancer` is deploy/nginx/fronts.conf's upstream
(hash $request_uri consistent) over loopback ports.
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


def start_front(work: Path, name: str, broker: str | None, extra: tuple[str, ...] = ()) -> Server:
    """A previewer front (embedded when `broker` is None) with an empty cache."""
    prefix = work / name
    shutil.rmtree(prefix, ignore_errors=True)
    (prefix / "cache").mkdir(parents=True)
    port = free_port()
    argv = [str(peers.previewer_binary()), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--allow-private-networks", "--cache-dir", str(prefix / "cache"), *extra]
    if broker is not None:
        argv += ["--broker", broker]
    log = prefix / "previewer.log"
    proc = spawn(argv, log)
    server = Server(name=name, url=f"http://127.0.0.1:{port}", procs=[proc])
    try:
        wait_ready(f"{server.url}/health", [proc], log)
    except BaseException:
        server.stop()
        raise
    return server


def start_worker(
    work: Path, name: str, broker: str, renders: int, cpus: str | None
) -> subprocess.Popen[bytes]:
    """A worker doing `renders` renders at once, on CPU set `cpus` (None: any core).

    Returns once it logs that it consumes the job queue.
    """
    prefix = work / name
    shutil.rmtree(prefix, ignore_errors=True)
    (prefix / "cache").mkdir(parents=True)
    argv = [str(peers.previewer_binary()), "worker", "--broker", broker]
    argv += ["--allow-private-networks", "--cache-dir", str(prefix / "cache")]
    argv += ["--workers", str(renders)]
    if cpus is not None:
        argv = [TASKSET, "-c", cpus, *argv]  # taskset execs: the pid is the worker's
    log = prefix / "worker.log"
    proc = spawn(argv, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if log.exists() and "worker consuming" in log.read_text():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"worker did not start consuming: {log.read_text()[-2000:]}")


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    Server(name="workers", url="", procs=workers).stop()


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
    """nginx over the fronts at `ports`, hashing the request URI as fronts.conf does."""
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
