"""PreviewService.get as the whole request: the hot set, the time limit, the index load.

The service is built from its real parts (fetcher, render pool, disk caches)
and asked directly, against a real origin on loopback.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import images
from origin import Origin
from previewer.cache.disk import DiskCache
from previewer.cache.index import CacheIndex
from previewer.cache.storage import Entry, ScannedEntry, Storage, key_digest
from previewer.config.settings import load
from previewer.errors import RequestTimeout
from previewer.fetch.fetcher import Fetcher
from previewer.options import PreviewOptions, parse_request
from previewer.render.renderer import EmbeddedRenderer
from previewer.service import PreviewService
from waiting import until

JPEG = images.jpeg(400, 300)


class HeldScan(Storage):
    """A cache directory whose scan lasts until the test releases it.

    It stands in for the scan of a very large index (minutes of `lstat`s on a
    slow disk), so that "the load has not ended" is a fact, not a race.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.scanning = threading.Event()
        self.release = threading.Event()

    def scan(self) -> list[ScannedEntry]:
        self.scanning.set()
        self.release.wait(60)
        return super().scan()


Build = Callable[..., Awaitable[PreviewService]]


@pytest.fixture
async def build(tmp_path: Path) -> AsyncIterator[Build]:
    """Build and start a service over `storage` (default: tmp_path/cache)."""
    settings = load({}, {"allow-private-networks": "true", "workers": "2"})
    fetcher = Fetcher(settings.fetch)
    await fetcher.start()
    executor = ThreadPoolExecutor(2)
    started: list[PreviewService] = []

    async def make(
        storage: Storage | None = None,
        memory_bytes: int = 10**6,
        touch_interval: float = CacheIndex.TOUCH_INTERVAL,
        start: bool = True,
    ) -> PreviewService:
        root = tmp_path / "cache"
        index: CacheIndex[Entry] = CacheIndex(10**7, memory_bytes=memory_bytes)
        index.TOUCH_INTERVAL = touch_interval  # how often a hit from memory is written down
        service = PreviewService(
            previews=DiskCache("preview", storage or Storage(root), index),
            renderer=EmbeddedRenderer(
                config=settings.imaging,
                fetcher=fetcher,
                sources=DiskCache("source", Storage(root / "sources"), CacheIndex(10**6)),
                executor=executor,
            ),
            disk_budget=11 * 10**6,
        )
        if start:
            await service.start()
            started.append(service)
        return service

    yield make
    for service in started:
        await service.stop()
    await fetcher.close()
    executor.shutdown(wait=True)


def _options(origin: Origin, width: int = 64) -> PreviewOptions:
    origin.add("/c.jpg", JPEG)
    return parse_request(
        f"/fill/{width}/48/{origin.authority}/c.jpg",
        max_dimension=4096,
        gravity="centre",
        quality=80,
    )


async def test_a_miss_is_answered_while_the_index_loads_and_stored_after(
    build: Build, origin: Origin, tmp_path: Path
) -> None:
    root = tmp_path / "cache"
    earlier = Storage(root)
    for i in range(200):  # an earlier run's entries, to be counted by the load
        earlier.write(key_digest(f"earlier {i}"), Entry.of(b"x" * 100, "image/jpeg"))
    storage = HeldScan(root)
    service = await build(storage)
    assert await asyncio.to_thread(storage.scanning.wait, 30)

    options = _options(origin)
    preview = await service.get(options, [], "127.0.0.1", 30)
    assert (preview.hit, preview.shareable) == (False, True)
    assert images.decode(preview.body).width == 64
    health = service.health()
    assert health.cache.loaded is False  # answered while the load was still going
    assert health.cache.pending == 1  # its write waits for the load
    entry_file = storage.path_for(key_digest(options.cache_key()))
    assert not entry_file.exists()  # not written yet
    again = await service.get(options, [], "127.0.0.1", 30)
    assert (again.hit, again.etag) == (True, preview.etag)  # the pending preview is found

    storage.release.set()
    await service.wait_loaded()

    async def stored() -> bool:
        return service.health().cache.pending == 0

    await until(stored)
    health = service.health()
    assert (health.cache.entries, health.counters.stored) == (201, 1)
    assert entry_file.is_file()
    assert origin.hits["/c.jpg"] == 1


async def test_a_hit_from_memory_needs_no_time(build: Build, origin: Origin) -> None:
    service = await build()
    options = _options(origin)
    first = await service.get(options, [], "127.0.0.1", 30)
    hit = await service.get(options, [], "127.0.0.1", 1e-6)  # the limit covers the slow path
    assert (hit.hit, hit.body) == (True, first.body)


async def test_the_time_limit_covers_the_disk_lookup(build: Build, origin: Origin) -> None:
    service = await build(memory_bytes=0)  # every hit reads its file
    options = _options(origin)
    await service.get(options, [], "127.0.0.1", 30)
    with pytest.raises(RequestTimeout):
        await service.get(options, [], "127.0.0.1", 1e-6)
    assert (await service.get(options, [], "127.0.0.1", 30)).hit


async def test_health_is_a_value_of_both_caches_and_the_render_stage(
    build: Build, origin: Origin
) -> None:
    service = await build()
    for width in (64, 80):
        await service.get(_options(origin, width), [], "127.0.0.1", 30)

    async def source_kept() -> bool:
        sources = service.health().source_cache
        return sources is not None and sources.stored == 1

    await until(source_kept)
    health = service.health()
    assert health.source_cache is not None
    assert health.disk.bytes == health.cache.bytes + health.source_cache.bytes
    assert health.disk.max_bytes == 11 * 10**6
    assert (health.counters.misses, health.counters.fetches, health.counters.source_hits) == (
        2,
        1,
        1,
    )
    assert (health.renders_in_progress, health.renders_waiting) == (0, 0)


async def test_without_a_time_limit_a_miss_is_rendered(build: Build, origin: Origin) -> None:
    service = await build()
    preview = await service.get(_options(origin), [], "127.0.0.1")
    assert (preview.hit, images.decode(preview.body).width) == (False, 64)


async def test_a_hit_from_memory_writes_its_use_to_disk_when_one_is_due(
    build: Build, origin: Origin, tmp_path: Path
) -> None:
    service = await build(touch_interval=0.0)  # every hit's use is due at once
    options = _options(origin)
    await service.get(options, [], "127.0.0.1", 30)
    path = Storage(tmp_path / "cache").path_for(key_digest(options.cache_key()))
    await until(lambda: service.health().cache.pending == 0 and path.is_file())
    os.utime(path, (1_000_000, 1_000_000))
    hit = await service.get(options, [], "127.0.0.1", 30)
    assert hit.hit
    await until(lambda: path.stat().st_mtime > 1_000_000)  # written by a thread


async def test_a_service_not_started_is_not_ready(build: Build) -> None:
    service = await build(start=False)
    assert service.readiness().reasons == ("index_load_not_started",)
    service.drain()
    assert not service.readiness().ready
    assert service.readiness().reasons == ("shutting_down", "index_load_not_started")
