"""The image, built from the Dockerfile and run by podman: what a Docker user gets.

Each container runs on the host's network with its own port, previews images
from the suite's nginx origin on 127.0.0.1, and keeps its cache in a named
volume of its own.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

import images
from conftest import spawn_service
from origin import Gate, NginxOrigin, Origin, free_port
from podman import Container, build_image, podman, record
from rabbitmq import RabbitNode
from waiting import until

REPO = Path(__file__).resolve().parents[2]

SHUTDOWN_TIMEOUT = 10  # seconds, as compose.yaml sets it
SOURCE = "/_gopher_original_1024x504.jpg"  # on the nginx origin
PREVIEW = "/fill/200/100/{authority}" + SOURCE


@pytest.fixture(scope="module")
def image() -> str:
    return build_image(REPO)


def get(url: str, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_healthy(url: str, container: Container, within: float = 60) -> None:
    """Poll /health until it answers 200; fails at once if the container stops."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if get(url + "/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass  # not listening yet
        if not container.running():
            raise AssertionError(f"the container stopped:\n{container.logs()}")
        time.sleep(0.05)  # another process's state: no event to wait on
    raise AssertionError(f"/health did not answer within {within}s:\n{container.logs()}")


@pytest.fixture
def volume() -> Iterator[str]:
    name = f"previewer-check-{uuid.uuid4().hex[:10]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


@pytest.fixture
def serve(image: str, volume: str) -> Iterator[Callable[..., tuple[Container, str]]]:
    """Start `previewer serve` from the image on a free port, its cache in `volume`."""
    started: list[Container] = []

    def start(*env: str) -> tuple[Container, str]:
        port = free_port()
        options = [
            "--volume", f"{volume}:/var/cache/previewer",
            "--env", "PREVIEWER_HOST=127.0.0.1",
            "--env", f"PREVIEWER_PORT={port}",
            "--env", "PREVIEWER_ALLOW_PRIVATE_NETWORKS=true",
            "--env", f"PREVIEWER_SHUTDOWN_TIMEOUT={SHUTDOWN_TIMEOUT}",
        ]  # fmt: skip
        for item in env:
            options += ["--env", item]
        container = Container(image, options=options)
        started.append(container)
        began = time.monotonic()
        container.start()
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, container)
        record("start-up (podman run to /health 200)", f"{time.monotonic() - began:.1f} s")
        return container, url

    yield start
    for container in started:
        container.remove()


def test_the_image_serves_a_preview_from_the_origin_as_its_non_root_user(
    serve: Callable[..., tuple[Container, str]], nginx_origin: NginxOrigin
) -> None:
    container, url = serve()
    status, headers, body = get(url + PREVIEW.format(authority=nginx_origin.authority))
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Cache"] == "MISS"
    assert body[:2] == b"\xff\xd8"
    uids = container.exec("sh", "-c", "grep ^Uid: /proc/1/status").split()[1:]
    assert uids == ["10001"] * 4  # real, effective, saved, filesystem
    assert container.exec("id", "-gn").strip() == "previewer"


def test_the_cache_in_the_volume_survives_a_new_container(
    serve: Callable[..., tuple[Container, str]], nginx_origin: NginxOrigin
) -> None:
    path = PREVIEW.format(authority=nginx_origin.authority)
    first, url = serve()
    assert get(url + path)[1]["X-Cache"] == "MISS"
    assert first.stop(grace=SHUTDOWN_TIMEOUT + 20) == 0
    first.remove()
    fetched = nginx_origin.requests_for(SOURCE)
    _, url = serve()  # a new container, the same volume
    status, headers, _ = get(url + path)
    assert (status, headers["X-Cache"]) == (200, "HIT")
    assert nginx_origin.requests_for(SOURCE) == fetched  # served from the volume


def test_podman_runs_the_images_healthcheck(serve: Callable[..., tuple[Container, str]]) -> None:
    container, _ = serve()
    inspected = json.loads(podman("image", "inspect", container.image).stdout)[0]
    assert "/health" in " ".join(inspected["Healthcheck"]["Test"])  # kept by --format docker
    assert podman("healthcheck", "run", container.name).returncode == 0


async def test_sigterm_drains_a_request_in_flight_and_exits_0(
    serve: Callable[..., tuple[Container, str]], origin: Origin
) -> None:
    gate = Gate(images.jpeg(640, 480))
    origin.route("/held.jpg", gate.handler)
    container, url = await asyncio.to_thread(serve)
    async with aiohttp.ClientSession() as client:

        async def fetch(path: str) -> int:
            async with client.get(url + path) as resp:
                await resp.read()
                return resp.status

        held = asyncio.ensure_future(fetch(f"/fill/100/80/{origin.authority}/held.jpg"))
        await asyncio.wait_for(gate.all_arrived.wait(), 30)
        began = time.monotonic()
        await asyncio.to_thread(podman, "kill", "--signal", "TERM", container.name)

        async def draining() -> bool:
            return await fetch("/ready") == 503

        await until(draining)  # the container's state: polled over HTTP
        assert not held.done()
        gate.release()
        assert await held == 200
    assert await asyncio.to_thread(container.wait, SHUTDOWN_TIMEOUT + 20) == 0
    # it exited on its own once drained, before --shutdown-timeout would cut requests
    assert time.monotonic() - began < SHUTDOWN_TIMEOUT


def test_the_same_image_runs_a_worker_that_renders_a_fronts_miss(
    image: str, rabbit: RabbitNode, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    queue = f"previewer.check.{uuid.uuid4().hex[:8]}"
    link = ["--broker", rabbit.url, "--broker-queue", queue]
    worker = Container(image, ["worker", *link, "--allow-private-networks"])
    try:
        worker.start()
        deadline = time.monotonic() + 60
        while rabbit.queue_stats(queue).get("consumers") != 1:
            assert worker.running(), worker.logs()
            assert time.monotonic() < deadline, worker.logs()
            time.sleep(0.1)  # the broker's state: no event to wait on
        front = spawn_service(["--cache-dir", str(tmp_path / "front"), *link])
        try:
            status, headers, _ = get(front.url + PREVIEW.format(authority=nginx_origin.authority))
            assert (status, headers["X-Cache"]) == (200, "MISS")
        finally:
            front.stop()
        assert "worker consuming" in worker.logs()
    finally:
        worker.remove()
