"""--cache-size bounds every byte under --cache-dir: previews, sources, headers, temporaries.

Each test measures the directory itself (every regular file's st_size), never
the index's own count, through the running service and a real origin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import images
from conftest import Service, ServiceFactory, ServiceProcess
from origin import NginxOrigin, Origin
from waiting import until

SMALL = images.jpeg(200, 150)  # about 7 KB
MEDIUM = images.jpeg(400, 300)  # about 23 KB


def _disk_bytes(root: Path) -> int:
    """Bytes of every file under `root`, as `du --apparent-size` counts files.

    Measured when no write is in flight (a temporary file renamed between the
    listing and its `lstat` is gone by then, and is counted under its name).
    """
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def _health(service: Service) -> dict[str, Any]:
    status, _, body = await service.get("/health")
    assert status == 200
    payload: dict[str, Any] = json.loads(body)
    return payload


async def _settled(service: Service) -> dict[str, Any]:
    """/health once no source is waiting to be written."""
    health: dict[str, Any] = {}

    async def nothing_pending() -> bool:
        nonlocal health
        health = await _health(service)
        return all(
            health[name]["pending"] == 0 for name in ("cache", "source_cache") if name in health
        )

    await until(nothing_pending)
    return health


async def test_previews_and_sources_together_stay_within_cache_size_under_churn(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    bound = 120_000  # the source cache's default share: a quarter, 30,000 bytes
    service = await start_service(cache_size=str(bound))
    root = tmp_path / "cache"
    for i in range(12):
        origin.add(f"/s{i}.jpg", SMALL if i % 3 else MEDIUM)
    sources_seen = previews_evicted = 0
    for round_ in range(3):
        for i in range(12):
            width = 150 + 10 * round_ + i
            status, _, _ = await service.get(f"/fill/{width}/{width}/{origin.authority}/s{i}.jpg")
            assert status == 200
            health = await _settled(service)
            on_disk = _disk_bytes(root)
            assert on_disk <= bound
            assert health["disk"] == {"bytes": on_disk, "max_bytes": bound}
            assert health["cache"]["max_bytes"] + health["source_cache"]["max_bytes"] == bound
            sources_seen = max(sources_seen, len(_files(root / "sources")))
            previews_evicted = health["counters"]["stored"] - health["cache"]["entries"]
    assert sources_seen >= 2  # both caches were in use
    assert previews_evicted > 0  # and the bound made them evict
    assert health["source_cache"]["stored"] > health["source_cache"]["entries"]


async def test_a_source_larger_than_its_share_is_served_not_stored(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    service = await start_service(cache_size="400KB", source_cache_size="20KB")
    origin.add("/big.jpg", MEDIUM)
    for width in (100, 120):
        status, headers, body = await service.get(f"/fill/{width}/90/{origin.authority}/big.jpg")
        assert (status, headers["X-Cache"]) == (200, "MISS")
        assert images.decode(body).width == width
    health = await _settled(service)
    assert origin.hits["/big.jpg"] == 2  # not kept, so fetched again
    assert _files(tmp_path / "cache" / "sources") == []
    assert health["cache"]["entries"] == 2
    assert _disk_bytes(tmp_path / "cache") <= 400_000


async def test_a_preview_larger_than_the_whole_budget_is_served_not_stored(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    service = await start_service(cache_size="8KB", source_cache_size="0")
    origin.add("/c.jpg", MEDIUM)
    status, headers, body = await service.get(f"/fill/400/300/{origin.authority}/c.jpg")
    assert (status, headers["X-Cache"]) == (200, "MISS")
    assert len(body) > 8_000
    assert _files(tmp_path / "cache") == []


def _fetch(url: str) -> tuple[int, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        resp.read()
        return resp.status, dict(resp.headers)


def _settled_health(process: ServiceProcess) -> dict[str, Any]:
    """/health of a service process once no entry is waiting to be written."""
    deadline = time.monotonic() + 30
    while True:
        health = process.health()
        if all(health[n]["pending"] == 0 for n in ("cache", "source_cache") if n in health):
            return health
        assert time.monotonic() < deadline, "entries still pending after 30s"
        time.sleep(0.01)


def test_a_lowered_bound_at_restart_evicts_both_caches_before_writing(
    service_process: Callable[..., ServiceProcess], nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    args = ["--cache-dir", str(cache), "--allow-private-networks"]
    sources = [f"{nginx_origin.authority}/{name}" for name in ("small_40x30.jpg", "alpha.png")]
    sources.append(f"{nginx_origin.authority}/_gopher_original_1024x504.jpg")
    first = service_process([*args, "--cache-size", "4MB"])
    for i in range(6):
        for source in sources:
            assert _fetch(f"{first.url}/fill/{60 + 20 * i}/{50 + 10 * i}/{source}")[0] == 200
    assert first.stop() == 0
    before = _disk_bytes(cache)
    assert _files(cache / "sources")  # sources were kept too

    bound = before // 3
    second = service_process([*args, "--cache-size", str(bound)], wait_loaded=False)
    # a miss at once: answered now, stored only once the loads have evicted
    assert _fetch(f"{second.url}/fill/33/33/{sources[2]}")[0] == 200
    second.wait_loaded()
    health = _settled_health(second)
    assert _disk_bytes(cache) <= bound
    assert health["disk"]["max_bytes"] == bound
    assert health["cache"]["loaded"]
    assert health["source_cache"]["loaded"]
    for i in range(4):
        _fetch(f"{second.url}/fill/{70 + i}/70/{sources[i % 3]}")
        health = _settled_health(second)
        assert _disk_bytes(cache) == health["disk"]["bytes"] <= bound
    assert second.stop() == 0

    # the source cache turned off: its files leave the directory too
    third = service_process([*args, "--cache-size", str(bound), "--source-cache-size", "0"])
    assert _files(cache / "sources") == []
    assert "source_cache" not in _settled_health(third)
    assert _disk_bytes(cache) <= bound
    assert third.stop() == 0


def test_a_source_share_leaving_no_room_for_previews_stops_start_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "previewer",
            "serve",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--cache-size",
            "2MiB",
            "--source-cache-size",
            "2MiB",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--source-cache-size" in result.stderr
    assert "--cache-size" in result.stderr
    assert "no room for previews" in result.stderr
    assert not (tmp_path / "cache").exists()
