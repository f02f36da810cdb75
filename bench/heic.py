"""HEIC sources against JPEG sources of the same pixels: misses per second through HTTP.

    .venv/bin/python bench/heic.py [--misses N]        (`make bench-heic`)

Prints the table of docs/imaging.md ("Cost", under HEIC), which describes the method.
Needs only the project's .venv.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import loopback
import peers
import pillow_heif
from PIL import Image
from procs import cpu_seconds, get
from writer import table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testkit"))

import images  # the images shared with the test suite

SIZES = ((4032, 3024), (1600, 1200))  # a 12 MP phone photo, and a smaller one
CONCURRENCY = 2


@dataclass(frozen=True)
class Source:
    name: str  # "4032x3024 HEIC"
    bytes: int
    misses_per_second: float
    cpu_ms_per_miss: float  # the server's
    cpu_vs_jpeg: float | None  # a HEIC's CPU per miss over the JPEG's of the same pixels


def _sources(width: int, height: int) -> dict[str, bytes]:
    """The same pixels as a JPEG (quality 85) and as a HEIC written as a phone writes it."""
    image = images.photo(width, height, sigma=6)
    picture = Image.frombytes("RGB", (width, height), image.write_to_memory())
    heic = io.BytesIO()
    pillow_heif.options.GRID_TILE_SIZE = 512
    pillow_heif.from_pillow(picture).save(heic, format="HEIF", quality=50)
    return {
        f"/{width}x{height}.jpg": image.jpegsave_buffer(Q=85),
        f"/{width}x{height}.heic": heic.getvalue(),
    }


def _miss(url: str) -> None:
    status, headers, body = get(url, timeout=60)
    if status != 200 or headers.get("X-Cache") != "MISS":
        raise RuntimeError(f"{url}: HTTP {status} {headers.get('X-Cache')}: {body[:200]!r}")


def run(work: Path, count: int) -> list[Source]:
    """`count` misses of each source (after one to warm up), two at a time."""
    files = {path: body for size in SIZES for path, body in _sources(*size).items()}
    found: list[Source] = []
    with loopback.serving(files) as authority:
        server = peers.start_previewer(work, "centre")
        try:
            for path, body in files.items():
                url = f"{server.url}/fill/300/200/{authority}{path}"
                _miss(f"{url}?warm")
                cpu = cpu_seconds(server.roots)
                started = time.perf_counter()
                with ThreadPoolExecutor(CONCURRENCY) as pool:
                    list(pool.map(_miss, [f"{url}?miss={n}" for n in range(count)]))
                rate = count / (time.perf_counter() - started)
                cpu_ms = (cpu_seconds(server.roots) - cpu) * 1000 / count
                vs = cpu_ms / found[-1].cpu_ms_per_miss if path.endswith(".heic") else None
                name = path[1:].replace(".jpg", " JPEG").replace(".heic", " HEIC")
                found.append(Source(name, len(body), rate, cpu_ms, vs))
        finally:
            server.stop()
    return found


def markdown(sources: list[Source]) -> str:
    body = []
    for s in sources:
        against = f"{s.cpu_vs_jpeg:.1f}x the CPU" if s.cpu_vs_jpeg else ""
        cells = [s.name, f"{s.bytes:,}", f"{s.misses_per_second:.1f}", f"{s.cpu_ms_per_miss:.0f}"]
        body.append([*cells, against])
    return table(["source", "bytes", "misses/s", "CPU ms/miss", "against JPEG"], body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=40, help="misses per source")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previewer-bench-heic-") as tmp:
        print(markdown(run(Path(tmp), args.misses)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
