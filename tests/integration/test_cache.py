"""The disk cache through the running service: bounds, persistence, crash safety."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

import images
from conftest import Service, ServiceFactory, ServiceProcess
from origin import Gate, NginxOrigin, Origin
from previewer.cache.storage import HEADER_SIZE
from waiting import until

pytestmark = pytest.mark.both_modes

JPEG = images.jpeg(800, 600)


def _cache_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in _cache_files(root))


async def _one_cached_preview(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path, **settings: str
) -> tuple[Service, str, bytes, Path]:
    """A service (no source cache) that has made and stored one preview:
    the service, the preview's path, its bytes and its cache file."""
    service = await start_service(source_cache_size="0", **settings)
    origin.add("/c.jpg", JPEG)
    path = f"/fill/90/90/{origin.authority}/c.jpg"
    status, _, body = await service.get(path)
    assert status == 200
    (entry,) = _cache_files(tmp_path / "cache")
    return service, path, body, entry


async def test_byte_bound_holds_under_churn(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    bound = 20_000
    service = await start_service(cache_size=str(bound), source_cache_size="0")
    origin.add("/c.jpg", JPEG)
    seen_entries = 0
    for i in range(40):
        status, _, _ = await service.get(f"/fill/{100 + i}/{80 + i}/{origin.authority}/c.jpg")
        assert status == 200
        on_disk = _disk_bytes(tmp_path / "cache")
        assert on_disk <= bound
        health = json.loads((await service.get("/health"))[2])
        assert health["cache"]["bytes"] == on_disk
        seen_entries = max(seen_entries, health["cache"]["entries"])
    assert seen_entries >= 3  # the bound held several entries, not just one
    assert health["cache"]["entries"] < 40  # and it evicted
    # the most recent preview is still a hit; the first was evicted
    assert (await service.get(f"/fill/139/119/{origin.authority}/c.jpg"))[1]["X-Cache"] == "HIT"
    assert (await service.get(f"/fill/100/80/{origin.authority}/c.jpg"))[1]["X-Cache"] == "MISS"


async def test_recently_used_entries_survive_eviction(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service(cache_max_items="3", source_cache_size="0")
    origin.add("/c.jpg", JPEG)
    paths = [f"/fill/{50 + i}/50/{origin.authority}/c.jpg" for i in range(4)]
    for path in paths[:3]:
        await service.get(path)
    await service.get(paths[0])  # refresh the oldest
    await service.get(paths[3])  # evicts paths[1], the least recently used
    assert (await service.get(paths[0]))[1]["X-Cache"] == "HIT"
    assert (await service.get(paths[2]))[1]["X-Cache"] == "HIT"
    assert (await service.get(paths[1]))[1]["X-Cache"] == "MISS"


async def test_preview_larger_than_the_bound_is_served_not_stored(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    service = await start_service(cache_size="2KB", source_cache_size="0")
    origin.add("/c.jpg", JPEG)
    status, headers, body = await service.get(f"/fill/400/300/{origin.authority}/c.jpg")
    assert status == 200
    assert len(body) > 2000
    assert headers["Cache-Control"].startswith("public")
    assert _cache_files(tmp_path / "cache") == []
    assert (await service.get(f"/fill/400/300/{origin.authority}/c.jpg"))[1]["X-Cache"] == "MISS"


async def test_corrupt_entry_is_dropped_and_rendered_again(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    # with the memory hot set off, so that the hit has to read the damaged file
    service, path, good, entry = await _one_cached_preview(
        start_service, origin, tmp_path, memory_cache_size="0"
    )
    data = bytearray(entry.read_bytes())
    data[HEADER_SIZE + 100] ^= 0xFF
    entry.write_bytes(bytes(data))
    status, headers, body = await service.get(path)
    assert status == 200
    assert headers["X-Cache"] == "MISS"
    assert body == good
    assert origin.hits["/c.jpg"] == 2


async def test_hot_previews_are_served_from_memory(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    """A hit in the hot set reads no file: it is served even with the file gone."""
    service, path, first, entry = await _one_cached_preview(start_service, origin, tmp_path)
    health = json.loads((await service.get("/health"))[2])["cache"]
    assert health["memory_entries"] == 1
    assert health["memory_bytes"] == entry.stat().st_size - HEADER_SIZE == len(first)
    entry.unlink()
    status, headers, body = await service.get(path)
    assert (status, headers["X-Cache"], body) == (200, "HIT", first)
    assert origin.hits["/c.jpg"] == 1


async def test_without_the_hot_set_every_hit_reads_its_file(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    service, path, _, entry = await _one_cached_preview(
        start_service, origin, tmp_path, memory_cache_size="0"
    )
    assert (await service.get(path))[1]["X-Cache"] == "HIT"
    entry.unlink()
    assert (await service.get(path))[1]["X-Cache"] == "MISS"
    assert origin.hits["/c.jpg"] == 2
    assert json.loads((await service.get("/health"))[2])["cache"]["memory_entries"] == 0


async def test_hot_set_holds_the_most_recent_previews_within_its_bound(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    bound = 12_000
    service = await start_service(source_cache_size="0", memory_cache_size=str(bound))
    origin.add("/c.jpg", JPEG)
    paths = [f"/fill/{120 + i}/{100 + i}/{origin.authority}/c.jpg" for i in range(12)]
    for path in paths:
        assert (await service.get(path))[0] == 200
        health = json.loads((await service.get("/health"))[2])["cache"]
        assert 0 < health["memory_bytes"] <= bound
    assert 1 < health["memory_entries"] < len(paths)  # it held several, and evicted
    for entry in _cache_files(tmp_path / "cache"):
        entry.unlink()  # from here on, only the hot set can answer a hit
    assert (await service.get(paths[-1]))[1]["X-Cache"] == "HIT"
    assert (await service.get(paths[0]))[1]["X-Cache"] == "MISS"


async def test_evicted_previews_leave_the_hot_set_too(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service(cache_max_items="2", source_cache_size="0")
    origin.add("/c.jpg", JPEG)
    paths = [f"/fill/{60 + i}/60/{origin.authority}/c.jpg" for i in range(3)]
    for path in paths:
        await service.get(path)
    health = json.loads((await service.get("/health"))[2])["cache"]
    assert (health["entries"], health["memory_entries"]) == (2, 2)
    assert (await service.get(paths[0]))[1]["X-Cache"] == "MISS"


def _fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_cache_persists_across_a_restart(
    service_process: Callable[..., ServiceProcess], nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    args = ["--cache-dir", str(cache), "--allow-private-networks", "--source-cache-size", "0"]
    source = f"{nginx_origin.authority}/_gopher_original_1024x504.jpg"
    paths = [f"/fill/{w}/{h}/{source}" for w, h in ((64, 64), (128, 96), (96, 128))]

    first = service_process(args)
    bodies = {}
    for path in paths:
        status, headers, body = _fetch(first.url + path)
        assert (status, headers["X-Cache"]) == (200, "MISS")
        bodies[path] = body
    assert first.stop() == 0

    # a crash mid-write leaves a temporary file; start-up must clean it
    shard = next(p.parent for p in cache.rglob("*") if p.is_file())
    leftover = shard / ("0" * 64 + ".1234.5678.tmp")
    leftover.write_bytes(b"half-written")

    before = nginx_origin.requests_for("/_gopher_original_1024x504.jpg")
    second = service_process(args)
    assert not leftover.exists()
    for path in paths:
        status, headers, body = _fetch(second.url + path)
        assert (status, headers["X-Cache"]) == (200, "HIT")
        assert body == bodies[path]
    assert nginx_origin.requests_for("/_gopher_original_1024x504.jpg") == before
    assert second.stop() == 0


def test_lowered_bound_at_restart_evicts_least_recently_used(
    service_process: Callable[..., ServiceProcess], nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    args = ["--cache-dir", str(cache), "--allow-private-networks", "--source-cache-size", "0"]
    source = f"{nginx_origin.authority}/_gopher_original_1024x504.jpg"
    paths = [f"/fill/{40 + i}/40/{source}" for i in range(4)]
    first = service_process(args)
    for path in paths:
        _fetch(first.url + path)
    _fetch(first.url + paths[0])  # paths[0] is now the most recent
    assert first.stop() == 0

    second = service_process([*args, "--cache-max-items", "2"])
    hits = [_fetch(second.url + p)[1]["X-Cache"] for p in (paths[0], paths[3])]
    assert hits == ["HIT", "HIT"]
    assert len(_cache_files(cache)) == 2
    assert second.stop() == 0


# --- the source cache ------------------------------------------------------------------


async def test_more_sizes_of_one_source_need_no_second_fetch(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    service = await start_service()
    origin.add("/srcset.jpg", JPEG)
    for width in (320, 640, 960, 1280):
        status, headers, body = await service.get(
            f"/fill/{width}/{width // 2}/{origin.authority}/srcset.jpg"
        )
        assert (status, headers["X-Cache"]) == (200, "MISS")
        assert images.decode(body).width == width
    assert origin.hits["/srcset.jpg"] == 1
    stage = await service.render_stage()
    assert stage["source_hits"] == 3
    assert stage["source_cache"]["entries"] == 1
    assert len(_cache_files(service.source_cache_dir)) == 1


async def test_concurrent_sizes_of_one_source_share_one_fetch(
    start_service: ServiceFactory, origin: Origin
) -> None:
    # four render slots: in broker mode, the worker's prefetch holds all four jobs at once
    service = await start_service(source_cache_size="0", workers="4")
    gate = Gate(JPEG)
    origin.route("/srcset.jpg", gate.handler)
    tasks = [
        asyncio.ensure_future(service.get(f"/fill/{w}/100/{origin.authority}/srcset.jpg"))
        for w in (100, 200, 300, 400)
    ]

    async def all_four_waiting() -> bool:
        return bool(json.loads((await service.get("/health"))[2])["counters"]["misses"] >= 4)

    await until(all_four_waiting)
    gate.release()
    results = await asyncio.gather(*tasks)
    assert [status for status, _, _ in results] == [200] * 4
    assert origin.hits["/srcset.jpg"] == 1


async def test_private_sources_are_not_kept(start_service: ServiceFactory, origin: Origin) -> None:
    service = await start_service()
    origin.add("/private.jpg", JPEG, headers={"Cache-Control": "private"})
    for width in (100, 200):
        await service.get(f"/fill/{width}/100/{origin.authority}/private.jpg")
    assert origin.hits["/private.jpg"] == 2
    assert (await service.render_stage())["source_cache"]["entries"] == 0


async def test_source_cache_bound_holds(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    bound = len(JPEG) * 2 + 500
    service = await start_service(source_cache_size=str(bound))
    for i in range(5):
        origin.add(f"/s{i}.jpg", JPEG)
        await service.get(f"/fill/50/50/{origin.authority}/s{i}.jpg")

    async def all_stored() -> bool:  # sources are stored in the background
        return bool((await service.render_stage())["source_cache"]["stored"] == 5)

    await until(all_stored)
    assert len(_cache_files(service.source_cache_dir)) == 2
    assert _disk_bytes(service.source_cache_dir) <= bound
    await service.get(f"/fill/60/60/{origin.authority}/s4.jpg")
    assert origin.hits["/s4.jpg"] == 1  # the newest source was kept
