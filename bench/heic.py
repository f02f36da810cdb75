"""HEIC sources against JPEG sources of the same pixels: misses per second through HTTP.

    .venv/bin/python bench/heic.py [--misses N]        (`make bench-heic`)

A Python origin on 127.0.0.1 serves, for each size, one photo-like image
made here as a JPEG (quality 85) and as a HEIC written as a phone writes
it: 512x512 tiles, x265 at pillow-heif's quality 50, which gives about the
bytes per pixel of an iPhone photo (1.4 MB for 12 MP). `previewer serve`
(the harness's `peers.start_previewer`, centre gravity) is asked for N
previews of each, every one a miss (the query string makes each source
address new, so nothing comes from either cache), two at a time. Prints a
Markdown table: misses per second, CPU milliseconds per miss of the
server, and HEIC's cost against JPEG's. Needs only the project's .venv.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path

import peers
import pillow_heif
from PIL import Image
from procs import Server, cpu_seconds, get
from smoke import _Origin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testkit"))

import images  # the images shared with the test suite

SIZES = ((4032, 3024), (1600, 1200))  # a 12 MP phone photo, and a smaller one
TARGET = (300, 200)
CONCURRENCY = 2


def _sources(width: int, height: int) -> tuple[bytes, bytes]:
    """The same pixels as a JPEG and as a HEIC."""
    image = images.photo(width, height, sigma=6)
    jpeg: bytes = image.jpegsave_buffer(Q=85)
    picture = Image.frombytes("RGB", (width, height), image.write_to_memory())
    buffer = io.BytesIO()
    pillow_heif.options.GRID_TILE_SIZE = 512
    pillow_heif.from_pillow(picture).save(buffer, format="HEIF", quality=50)
    return jpeg, buffer.getvalue()


def _misses(server: Server, authority: str, path: str, count: int) -> tuple[float, float]:
    """(misses per second, server CPU ms per miss) for `count` misses of one source."""
    urls = [
        f"{server.url}/fill/{TARGET[0]}/{TARGET[1]}/{authority}{path}?miss={n}"
        for n in range(count)
    ]

    def one(url: str) -> None:
        status, headers, body = get(url, timeout=60)
        if status != 200 or headers.get("X-Cache") != "MISS":
            raise RuntimeError(f"{url}: HTTP {status} {headers.get('X-Cache')}: {body[:200]!r}")

    one(f"{server.url}/fill/{TARGET[0]}/{TARGET[1]}/{authority}{path}?warm")
    cpu = cpu_seconds(server.roots)
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, urls))
    elapsed = time.perf_counter() - started
    return count / elapsed, (cpu_seconds(server.roots) - cpu) * 1000 / count


def run(work: Path, count: int) -> str:
    files: dict[str, bytes] = {}
    for width, height in SIZES:
        jpeg, heic = _sources(width, height)
        files[f"/{width}x{height}.jpg"] = jpeg
        files[f"/{width}x{height}.heic"] = heic
    _Origin.files = files
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    authority = f"127.0.0.1:{origin.server_address[1]}"
    server = peers.start_previewer(work, "centre")
    lines = [
        "| source | bytes | misses/s | CPU ms/miss | against JPEG |",
        "|---|---|---|---|---|",
    ]
    try:
        for width, height in SIZES:
            figures = {}
            for kind in ("jpg", "heic"):
                path = f"/{width}x{height}.{kind}"
                figures[kind] = _misses(server, authority, path, count)
                rate, cpu = figures[kind]
                ratio = f"{cpu / figures['jpg'][1]:.1f}x the CPU" if kind == "heic" else ""
                lines.append(
                    f"| {width}x{height} {'HEIC' if kind == 'heic' else 'JPEG'} "
                    f"| {len(files[path]):,} | {rate:.1f} | {cpu:.0f} | {ratio} |"
                )
    finally:
        server.stop()
        origin.shutdown()
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=40, help="misses per source")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previewer-bench-heic-") as tmp:
        print(run(Path(tmp), args.misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
