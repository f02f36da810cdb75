"""Broker mode as it runs in production: `previewer serve --broker` and `previewer worker`
as separate processes, stopped by signals."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import images
from conftest import ServiceProcess
from origin import NginxOrigin
from rabbitmq import RabbitNode

pytestmark = [pytest.mark.broker, pytest.mark.subprocess, pytest.mark.nginx]

Spawn = Callable[..., ServiceProcess]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _wait_for_workers(front: ServiceProcess, count: int, within: float = 30) -> None:
    """Poll the front's /health until it sees `count` workers on its queue."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        broker = front.health()["broker"]
        if broker["connected"] and broker["consumers"] == count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the front did not see {count} workers within {within}s")


def test_a_front_and_a_worker_serve_misses_and_stop_cleanly(
    service_process: Spawn, rabbit: RabbitNode, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    queue = f"previewer.test.{uuid.uuid4().hex}"
    broker = ["--broker", rabbit.url, "--broker-queue", queue]
    worker = service_process(
        [*broker, "--cache-dir", str(tmp_path / "worker"), "--allow-private-networks"],
        command="worker",
    )
    front = service_process([*broker, "--cache-dir", str(tmp_path / "front")])
    _wait_for_workers(front, 1)
    url = f"{front.url}/fill/200/100/{nginx_origin.authority}/_gopher_original_1024x504.jpg"
    status, headers, body = _get(url)
    assert (status, headers["X-Cache"]) == (200, "MISS")
    preview = images.decode(body)
    assert (preview.width, preview.height) == (200, 100)
    assert _get(url)[1]["X-Cache"] == "HIT"
    assert worker.stop(signal.SIGTERM) == 0
    assert any("stopped" in line for line in worker.log_lines)
    assert front.stop(signal.SIGTERM) == 0


def test_a_worker_without_a_broker_url_refuses_to_start(service_process: Spawn) -> None:
    with pytest.raises(RuntimeError, match="worker needs --broker"):
        service_process([], command="worker")
