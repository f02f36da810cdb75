"""Crashes, disk faults, shutdown under load and overload: nothing lost, no 500."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

import images
from conftest import ServiceFactory, ServiceProcess
from origin import Gate, Origin
from previewer.cache.storage import TEMP_SUFFIX, Storage
from waiting import until

pytestmark = [pytest.mark.fault, pytest.mark.both_modes]

JPEG = images.jpeg(640, 480)


def _entries(root: Path) -> list[Path]:
    """Every file under the cache root, unfinished writes (`.tmp`) included."""
    return [p for p in root.rglob("*") if p.is_file()]


def _complete_entries(root: Path) -> list[Path]:
    return [p for p in _entries(root) if p.suffix != TEMP_SUFFIX]


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp")]


def _all_entries_verify(root: Path) -> None:
    storage = Storage(root)
    for path in _entries(root):
        entry = storage.read(path.name)  # raises on a truncated or damaged entry
        assert images.decode(entry.body).width > 0


# --- the cache directory fails at runtime -------------------------------------------------


async def test_cache_dir_replaced_by_a_file_serves_uncached_and_logs_once(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    # the memory hot set off: a preview held there would be served, correctly,
    # as a hit, and this test is about what the disk does
    service = await start_service(source_cache_size="0", memory_cache_size="0")
    origin.add("/a.jpg", JPEG)
    assert (await service.get(f"/fill/10/10/{origin.authority}/a.jpg"))[0] == 200
    shutil.rmtree(cache)
    cache.write_text("not a directory")  # root ignores permissions; this it cannot write into
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="previewer"):
        for i in range(5):
            status, headers, _ = await service.get(f"/fill/{20 + i}/20/{origin.authority}/a.jpg")
            assert (status, headers["X-Cache"]) == (200, "MISS")
        # the entry written before the fault is gone too: served again, uncached
        status, headers, _ = await service.get(f"/fill/10/10/{origin.authority}/a.jpg")
        assert (status, headers["X-Cache"]) == (200, "MISS")
    failures = [r for r in caplog.records if "cache write failed" in r.getMessage()]
    assert len(failures) == 1
    health = json.loads((await service.get("/health"))[2])
    assert health["cache"]["entries"] == 0

    cache.unlink()
    cache.mkdir()  # the directory is back: caching resumes
    with caplog.at_level(logging.WARNING, logger="previewer"):
        await service.get(f"/fill/30/30/{origin.authority}/a.jpg")
    assert (await service.get(f"/fill/30/30/{origin.authority}/a.jpg"))[1]["X-Cache"] == "HIT"
    assert any("cache writes work again" in r.getMessage() for r in caplog.records)


async def test_cache_dir_deleted_at_runtime_is_recreated(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    service = await start_service(source_cache_size="0", memory_cache_size="0")
    origin.add("/a.jpg", JPEG)
    await service.get(f"/fill/10/10/{origin.authority}/a.jpg")
    shutil.rmtree(cache)
    status, headers, _ = await service.get(f"/fill/10/10/{origin.authority}/a.jpg")
    assert (status, headers["X-Cache"]) == (200, "MISS")
    assert (await service.get(f"/fill/10/10/{origin.authority}/a.jpg"))[1]["X-Cache"] == "HIT"
    assert len(_entries(cache)) == 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a disk that fills up long before the cache bound."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


async def test_full_disk_evicts_and_keeps_serving_without_partial_files(
    start_service: ServiceFactory, origin: Origin, small_disk: Path
) -> None:
    service = await start_service(
        cache_dir=str(small_disk / "cache"), cache_size="100MB", source_cache_size="0"
    )
    origin.add("/a.jpg", JPEG)
    statuses = []
    for i in range(40):
        status, _, _ = await service.get(f"/fill/{300 + i}/{200 + i}/{origin.authority}/a.jpg")
        statuses.append(status)
    assert statuses == [200] * 40
    counters = json.loads((await service.get("/health"))[2])
    assert counters["counters"]["stored"] > 5  # it kept caching by evicting
    assert _temp_files(small_disk) == []
    _all_entries_verify(small_disk / "cache")
    on_disk = sum(p.stat().st_size for p in _entries(small_disk / "cache"))
    assert counters["cache"]["bytes"] == on_disk
    # the newest preview is cached
    _, headers, _ = await service.get(f"/fill/339/239/{origin.authority}/a.jpg")
    assert headers["X-Cache"] == "HIT"


# --- kill -9 while writing ---------------------------------------------------------------


async def test_kill_9_during_renders_loses_nothing(
    service_process: Callable[..., ServiceProcess], origin: Origin, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    origin.add("/p.jpg", images.jpeg(1600, 1200))
    args = ["--cache-dir", str(cache), "--allow-private-networks", "--queue-size", "100"]
    args += ["--source-cache-size", "0"]
    proc = await asyncio.to_thread(service_process, args)
    paths = [f"/fill/{200 + i}/{150 + i}/{origin.authority}/p.jpg" for i in range(50)]

    async with aiohttp.ClientSession() as client:

        async def get(path: str) -> None:
            try:
                async with client.get(proc.url + path) as resp:
                    await resp.read()
            except aiohttp.ClientError:
                pass  # the service dies under us: expected

        tasks = [asyncio.ensure_future(get(p)) for p in paths]
        # five finished entries: a write still in progress (.tmp) does not count
        await until(lambda: len(_complete_entries(cache)) >= 5, within=30)
        proc.proc.kill()  # SIGKILL, mid-stream of writes
        await asyncio.gather(*tasks)
    await asyncio.to_thread(proc.proc.wait)
    proc.close()

    second = await asyncio.to_thread(service_process, args)
    assert _temp_files(cache) == []
    _all_entries_verify(cache)
    async with aiohttp.ClientSession() as client:
        async with client.get(second.url + "/health") as resp:
            health = await resp.json()
        assert health["cache"]["bytes"] == sum(p.stat().st_size for p in _entries(cache))
        hits = 0
        for path in paths:
            async with client.get(second.url + path) as resp:
                body = await resp.read()
                assert resp.status == 200
                hits += resp.headers["X-Cache"] == "HIT"
            assert images.decode(body).width == int(path.split("/")[2])
    assert hits >= 5
    assert await asyncio.to_thread(second.stop) == 0


# --- graceful shutdown -------------------------------------------------------------------


async def test_sigterm_with_100_requests_in_flight(
    service_process: Callable[..., ServiceProcess], origin: Origin, tmp_path: Path
) -> None:
    gate = Gate(images.jpeg(200, 150), expected=100)
    for i in range(100):  # distinct sources: each request fetches on its own
        origin.route(f"/g{i}.jpg", gate.handler)
    proc = await asyncio.to_thread(
        service_process,
        [
            "--cache-dir",
            str(tmp_path / "c"),
            "--allow-private-networks",
            "--queue-size",
            "200",
            "--workers",  # in broker mode, the worker's prefetch: it holds all 100 jobs at once
            "100",
            "--shutdown-timeout",
            "20",
        ],
    )
    host, port = proc.url.removeprefix("http://").split(":")
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def get(i: int) -> int:
            async with client.get(f"{proc.url}/fill/{20 + i}/20/{origin.authority}/g{i}.jpg") as r:
                await r.read()
                return r.status

        tasks = [asyncio.ensure_future(get(i)) for i in range(100)]
        await asyncio.wait_for(gate.all_arrived.wait(), 30)
        stopping_at = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        await until(lambda: any("stopping" in line for line in proc.log_lines))
        async with client.get(f"{proc.url}/ready") as resp:  # still listening, not ready
            assert resp.status == 503
        gate.release()
        statuses = await asyncio.gather(*tasks)
    assert statuses == [200] * 100
    assert await asyncio.to_thread(proc.proc.wait, 30) == 0
    assert time.monotonic() - stopping_at < 20
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), 2):
        pass  # no connections once stopped
    proc.close()


async def test_sigterm_cuts_a_request_that_outlasts_the_shutdown_timeout(
    service_process: Callable[..., ServiceProcess], origin: Origin, tmp_path: Path
) -> None:
    # The drain takes the whole --shutdown-timeout, so no time is left for the
    # connections' close: the request still held must be cut then, not left to run
    # until its fetch times out (120 s here).
    gate = Gate(images.jpeg(200, 150))
    origin.route("/held.jpg", gate.handler)
    proc = await asyncio.to_thread(
        service_process,
        [
            "--cache-dir",
            str(tmp_path / "c"),
            "--allow-private-networks",
            "--shutdown-timeout",
            "1",
            "--fetch-timeout",
            "120",
            "--request-timeout",
            "120",
        ],
    )
    async with aiohttp.ClientSession() as client:

        async def get() -> int:
            async with client.get(f"{proc.url}/fill/20/20/{origin.authority}/held.jpg") as r:
                await r.read()
                return r.status

        held = asyncio.ensure_future(get())
        await asyncio.wait_for(gate.all_arrived.wait(), 30)
        proc.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.proc.wait, 60)  # TimeoutExpired if it waits on
        with pytest.raises(aiohttp.ClientConnectionError):
            await held
    gate.release()
    assert code == 0
    assert any("draining: 1 requests in flight" in line for line in proc.log_lines)
    proc.close()


# --- overload --------------------------------------------------------------------------------


# the render pool's admission; in broker mode the queue's bound answers 503 (test_broker)
@pytest.mark.embedded_only
async def test_overload_answers_503_at_once_and_recovers(
    start_service: ServiceFactory, origin: Origin
) -> None:
    big = images.jpeg(3000, 3000)
    gate = Gate(big, expected=50)
    for i in range(50):  # distinct sources: each request fetches on its own
        origin.route(f"/big{i}.jpg", gate.handler)
    origin.add("/big.jpg", big)
    service = await start_service(workers="1", queue_size="4")

    async def timed(i: int) -> tuple[int, float]:
        status, _, _ = await service.get(f"/fill/{400 + i}/300/{origin.authority}/big{i}.jpg")
        return status, time.monotonic()

    tasks = [asyncio.ensure_future(timed(i)) for i in range(50)]
    await gate.all_arrived.wait()
    released_at = time.monotonic()
    gate.release()
    results = await asyncio.gather(*tasks)
    ok = [t - released_at for s, t in results if s == 200]
    refused = [t - released_at for s, t in results if s == 503]
    assert len(ok) + len(refused) == 50
    assert len(ok) >= 5  # one running and four queued were admitted
    assert len(refused) >= 30
    # refusals came at once, while the admitted renders were still queued (a bound
    # measured against the admitted renders, not in seconds: the machine may be busy)
    assert max(refused) < sorted(ok)[-1]
    status, _, _ = await service.get(f"/fill/100/100/{origin.authority}/big.jpg")
    assert status == 200  # recovered immediately
