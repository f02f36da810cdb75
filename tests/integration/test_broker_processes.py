"""Broker mode as it runs in production: `previewer serve --broker` and `previewer worker`
as separate processes, stopped by signals."""

from __future__ import annotations

import re
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import images
import metric_contract
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


def _metrics_url(process: ServiceProcess, within: float = 30) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in process.log_lines:
            match = re.search(r"metrics on (http://\S+)", line)
            if match:
                return match.group(1)
        time.sleep(0.02)
    raise TimeoutError("no metrics address in the log:\n" + "\n".join(process.log_lines))


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Family name -> {sorted labels: value} of every sample, by sample name."""
    status, _, body = _get(url)
    assert status == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def test_a_front_and_a_worker_serve_their_metrics_and_carry_the_request_id(
    service_process: Spawn, rabbit: RabbitNode, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    queue = f"previewer.test.{uuid.uuid4().hex}"
    broker = ["--broker", rabbit.url, "--broker-queue", queue, "--metrics-address", "127.0.0.1:0"]
    worker = service_process(
        [*broker, "--cache-dir", str(tmp_path / "worker"), "--allow-private-networks"],
        command="worker",
    )
    front = service_process([*broker, "--cache-dir", str(tmp_path / "front")])
    _wait_for_workers(front, 1)
    url = f"{front.url}/fill/200/100/{nginx_origin.authority}/_gopher_original_1024x504.jpg"
    request = urllib.request.Request(url, headers={"X-Request-Id": "broker-rid-1"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert (resp.status, resp.headers["X-Request-Id"]) == (200, "broker-rid-1")
        resp.read()
    assert _get(url)[1]["X-Cache"] == "HIT"

    front_metrics = _scrape(_metrics_url(front))
    assert front_metrics["previewer_requests_total"] == {
        (("code", "ok"), ("operation", "fill"), ("status_class", "2xx")): 2
    }
    assert front_metrics["previewer_broker_jobs_published_total"] == {(): 1}
    assert front_metrics["previewer_broker_replies_total"] == {(): 1}
    assert front_metrics["previewer_broker_connected"] == {(): 1}
    assert front_metrics["previewer_miss_phase_seconds_count"][(("phase", "store"),)] == 1
    assert "previewer_renders_in_progress" not in front_metrics  # a front renders nothing

    worker_metrics = _scrape(_metrics_url(worker))
    assert worker_metrics["previewer_broker_connected"] == {(): 1}
    assert worker_metrics["previewer_broker_redeliveries_total"] == {(): 0}
    assert worker_metrics["previewer_broker_jobs_orphaned_total"] == {(): 0}
    assert worker_metrics["previewer_broker_jobs_expired_total"] == {(): 0}
    assert worker_metrics["previewer_origin_fetches_total"][(("outcome", "ok"),)] == 1
    phases = worker_metrics["previewer_miss_phase_seconds_count"]
    assert {p: phases[(("phase", p),)] for p in ("queue", "fetch", "render", "store")} == {
        "queue": 1,
        "fetch": 1,
        "render": 1,
        "store": 0,  # the front stores
    }
    assert worker_metrics["previewer_renders_in_progress"] == {(): 0}
    assert "previewer_requests_total" not in worker_metrics  # a worker answers no HTTP

    assert front_metrics["previewer_broker_job_duration_seconds_count"] == {(): 1}
    assert front_metrics["previewer_broker_job_duration_seconds_sum"][()] > 0
    assert front_metrics["previewer_broker_jobs_expired_total"] == {(): 0}
    assert front_metrics["previewer_broker_queue_depth"] == {(): 0}

    # each process exports every metric of the contract for its kind
    for process, scraped in (("front", front_metrics), ("worker", worker_metrics)):
        for name, metric in metric_contract.load().items():
            if process in metric.exported_by:
                assert set(metric.series) & set(scraped), f"{process} does not export {name}"

    assert worker.stop(signal.SIGTERM) == 0
    assert front.stop(signal.SIGTERM) == 0
    rendered = [line for line in worker.log_lines if "rendered " in line]
    assert rendered
    assert rendered[0].endswith(" request_id=broker-rid-1")
