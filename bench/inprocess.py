"""The in-process limit: previews per second with no HTTP, from bodies in memory.

    .venv/bin/python bench/inprocess.py CORPUS_DIR SECONDS [--threads 1,2] [--per-file]

Two engines, each on 1 and on N threads (concurrent.futures; libvips
releases the GIL while it works):

- `pyvips`: `thumbnail_buffer(body, 300, height=200, crop="centre")` then
  `jpegsave_buffer(Q=80, keep="none", optimize_coding=True)`, the plain
  libvips calls;
- `previewer`: `previewer.render.imaging.render` with gravity centre, the engine the
  service runs (sniff, header check, shrink-on-load, crop, encode).

The libvips operation cache is off for both (as previewer configures it), so
no render is answered from memory. Both run under previewer's malloc
settings (`previewer.process.memory`: the script starts again with the same glibc
tunables as `previewer serve`), so the service and its render code are
compared on the same allocator. Each thread walks the corpus from its own
starting point until the time is up. With --per-file, each file is also
rendered three times alone on one thread and its median time reported.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyvips

from previewer.process import memory
from previewer.render import imaging

WIDTH, HEIGHT, QUALITY = 300, 200, 80


def _pyvips(body: bytes) -> bytes:
    image = pyvips.Image.thumbnail_buffer(body, WIDTH, height=HEIGHT, crop="centre")
    out: bytes = image.jpegsave_buffer(Q=QUALITY, keep="none", optimize_coding=True)
    return out


_JOB = imaging.RenderJob(WIDTH, HEIGHT, "centre", QUALITY, 100_000_000)


def _previewer(body: bytes) -> bytes:
    return imaging.render(body, _JOB).body


ENGINES: dict[str, Callable[[bytes], bytes]] = {"pyvips": _pyvips, "previewer": _previewer}


def rate(
    engine: Callable[[bytes], bytes], bodies: list[bytes], threads: int, seconds: float
) -> float:
    """Previews per second over `seconds`, with `threads` threads rendering."""
    deadline = time.monotonic() + seconds
    stop = threading.Event()

    def worker(offset: int) -> int:
        done = 0
        i = offset
        while time.monotonic() < deadline and not stop.is_set():
            engine(bodies[i % len(bodies)])
            done += 1
            i += 1
        return done

    started = time.monotonic()
    offsets = [n * len(bodies) // threads for n in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(worker, offsets))
    elapsed = time.monotonic() - started
    return sum(counts) / elapsed


def per_file_ms(engine: Callable[[bytes], bytes], files: dict[str, bytes]) -> dict[str, float]:
    """Median milliseconds of three single-thread renders of each file."""
    out = {}
    for name, body in files.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            engine(body)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = round(statistics.median(times), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--per-file", action="store_true", help="also time each file once")
    args = parser.parse_args()
    memory.start_again_with_tunables()  # previewer serve's malloc settings
    memory.tune(os.environ)
    imaging.configure()  # the service's libvips set-up: loaders locked, op cache off
    files = {p.name: p.read_bytes() for p in sorted(args.corpus.glob("*.jpg"))}
    bodies = list(files.values())
    if not bodies:
        sys.exit(f"no JPEG files in {args.corpus}")
    for engine in ENGINES.values():  # warm-up: one pass, and a check that each works
        for body in bodies:
            out = engine(body)
            if pyvips.Image.new_from_buffer(out, "").width != WIDTH:
                sys.exit("in-process render gave the wrong width")
    results = {}
    for name, engine in ENGINES.items():
        for threads in sorted({int(t) for t in args.threads.split(",")}):
            results[f"{name}-{threads}t"] = round(rate(engine, bodies, threads, args.seconds), 2)
    costs = (
        {name: per_file_ms(engine, files) for name, engine in ENGINES.items()}
        if args.per_file
        else None
    )
    print(
        json.dumps(
            {
                "previews_per_second": results,
                "per_file_ms": costs,
                "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
                "pyvips": pyvips.__version__,
                "malloc": os.environ.get("GLIBC_TUNABLES") or "mallopt",
                "vips_concurrency": pyvips.concurrency_get()
                if hasattr(pyvips, "concurrency_get")
                else None,
            }
        )
    )


if __name__ == "__main__":
    main()
