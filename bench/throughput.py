"""Renders per second and per file of one engine, in process: shared by bench/inprocess.py
(libvips) and bench/pillow_limit.py (Pillow, in thumbor's venv). Standard library only."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

Engine = Callable[[bytes], bytes]


def rate(engine: Engine, bodies: list[bytes], threads: int, seconds: float) -> float:
    """Previews per second over `seconds`, each thread walking the corpus from its own start."""
    deadline = time.monotonic() + seconds

    def worker(offset: int) -> int:
        done = 0
        while time.monotonic() < deadline:
            engine(bodies[(offset + done) % len(bodies)])
            done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(worker, [n * len(bodies) // threads for n in range(threads)]))
    return sum(counts) / (time.monotonic() - started)


def per_file_ms(engine: Engine, files: dict[str, bytes]) -> dict[str, float]:
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
