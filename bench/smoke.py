"""Smoke run of the benchmark harness: previewer and a loopback origin, a few seconds.

    .venv/bin/python bench/smoke.py        (`make bench-smoke`, part of `make test`)

Each preview of two sources (a baseline and a progressive JPEG) is asked twice: a miss,
then a hit with the same bytes, both a JPEG of the requested size; a burst of misses
follows under the harness's process-tree sampler. Prints one summary line; exits non-zero
on any failure. Needs only the project's .venv.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import loopback
import peers
import pyvips
from procs import TreeSampler, cpu_seconds, get

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testkit"))

import images  # the images shared with the test suite

SIZES = ((300, 200), (120, 160))
BURST = 12


class SmokeFailure(Exception):
    pass


def _check(url: str, size: tuple[int, int], expect_cache: str) -> tuple[bytes, float]:
    started = time.perf_counter()
    status, headers, body = get(url, timeout=30)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise SmokeFailure(f"{url}: HTTP {status}: {body[:200]!r}")
    if headers.get("X-Cache") != expect_cache:
        raise SmokeFailure(f"{url}: X-Cache {headers.get('X-Cache')}, expected {expect_cache}")
    image = pyvips.Image.new_from_buffer(body, "")
    if not image.get("vips-loader").startswith("jpegload"):
        raise SmokeFailure(f"{url}: not a JPEG")
    if (image.width, image.height) != size:
        raise SmokeFailure(f"{url}: {image.width}x{image.height}, expected {size[0]}x{size[1]}")
    return body, elapsed


def run(work: Path) -> str:
    files: dict[str, bytes] = {
        "/baseline.jpg": images.noisy_gradient(1600, 1000, sigma=30).jpegsave_buffer(Q=85),
        "/progressive.jpg": images.noisy_gradient(1200, 1600, sigma=30).jpegsave_buffer(
            Q=85, interlace=True
        ),
    }
    with loopback.serving(files) as authority:
        server = peers.start_previewer(work, "centre")
        try:
            misses, hits = [], []
            for name in files:
                for width, height in SIZES:
                    url = f"{server.url}/fill/{width}/{height}/{authority}{name}"
                    first, miss = _check(url, (width, height), "MISS")
                    again, hit = _check(url, (width, height), "HIT")
                    if first != again:
                        raise SmokeFailure(f"{url}: the hit's bytes differ from the miss's")
                    misses.append(miss)
                    hits.append(hit)
            cpu_before = cpu_seconds(server.roots)
            with TreeSampler(server.roots) as sampler, ThreadPoolExecutor(4) as pool:
                urls = [
                    f"{server.url}/fill/300/200/{authority}/baseline.jpg?burst={n}"
                    for n in range(BURST)
                ]
                list(pool.map(lambda u: _check(u, (300, 200), "MISS"), urls))
            cpu_ms = (cpu_seconds(server.roots) - cpu_before) * 1000 / BURST
            if sampler.peak <= 0:
                raise SmokeFailure("the RSS sampler saw no memory for the server")
        finally:
            server.stop()
    return (
        f"bench-smoke: ok: {len(misses)} misses (median {statistics.median(misses) * 1000:.0f} ms),"
        f" {len(hits)} hits (median {statistics.median(hits) * 1000:.1f} ms), burst of {BURST}"
        f" misses at {cpu_ms:.0f} CPU ms each, peak RSS {sampler.peak / 2**20:.0f} MB"
    )


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="previewer-bench-smoke-") as tmp:
        try:
            line = run(Path(tmp))
        except (SmokeFailure, RuntimeError, OSError) as exc:
            print(f"bench-smoke: FAILED: {exc}", file=sys.stderr)
            return 1
    print(f"{line}, {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
