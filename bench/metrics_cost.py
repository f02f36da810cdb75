"""The cost of the Prometheus metrics on the hit path: metrics on against off, side by side.

    .venv/bin/python bench/metrics_cost.py [--duration 10] [--reps 5] [--concurrency 16] [--json]

A stage of `make bench` (alone it needs wrk, from bench/setup.sh); the metrics-on server
is scraped every second while it is loaded. docs/operations.md describes the method.
"""

from __future__ import annotations

import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hitpair
from procs import free_port

SCRAPE_INTERVAL = 1.0  # seconds between scrapes of the metrics-on server


@dataclass(frozen=True)
class Metrics(hitpair.Pair):
    """The rounds (off, on) and the scrapes of the metrics-on side in each round."""

    scrape_interval: float
    scrapes: list[int]


def _scrape(url: str, stop: threading.Event, counts: list[int]) -> None:
    while not stop.wait(SCRAPE_INTERVAL):
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
        counts[-1] += 1


def run(work: Path, duration: float, reps: int, concurrency: int) -> Metrics:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    scrapes: list[int] = []

    @contextmanager
    def scraping(name: str) -> Iterator[None]:
        """While the metrics-on side is loaded, scrape it every SCRAPE_INTERVAL seconds."""
        if name != "on":
            yield
            return
        stop = threading.Event()
        scrapes.append(0)
        thread = threading.Thread(target=_scrape, args=(url, stop, scrapes), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    flags = {"off": (), "on": ("--metrics-address", f"127.0.0.1:{port}")}
    pair = hitpair.servers(work, flags, duration, reps, concurrency, during=scraping)
    return Metrics(**vars(pair), scrape_interval=SCRAPE_INTERVAL, scrapes=scrapes)


def markdown(result: Metrics) -> str:
    caption = f"Metrics scraped every {result.scrape_interval:g} s; "
    return hitpair.markdown(result, caption, "metrics", {"off": "off", "on": "on"}, "server") + "."


if __name__ == "__main__":
    sys.exit(hitpair.main(__doc__ or "", 5, run, markdown))
