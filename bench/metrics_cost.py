"""The cost of the Prometheus metrics on the hit path: metrics on against off, side by side.

    .venv/bin/python bench/metrics_cost.py [--duration 10] [--reps 5] [--concurrency 16] [--json]

(`make bench` runs it as a stage; alone it needs wrk, from bench/setup.sh.)

Starts an origin on 127.0.0.1 serving JPEGs made here with libvips, and two
`previewer serve` processes through the harness's `peers.start_previewer`:
one as shipped (metrics off), one with `--metrics-address`, scraped once a
second while it is loaded (fifteen times Prometheus's default interval).
Both get every preview once (misses), then every repetition loads the hit
path of each with wrk (bench/cycle.lua over the same paths) for the same
time at the same concurrency, the two in alternating order, so that
whatever else the machine does falls on both. The figure that counts is the
median of the per-repetition ratios on / off of requests per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hitpair
import peers
from procs import Server, free_port, get

SCRAPE_INTERVAL = 1.0  # seconds between scrapes of the metrics-on server


class _Scraper:
    """Scrapes `url` every SCRAPE_INTERVAL seconds while in a `with` block; counts per block."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.counts: list[int] = []

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(SCRAPE_INTERVAL):
            with urllib.request.urlopen(self._url, timeout=10) as resp:
                resp.read()
            self.counts[-1] += 1

    @contextmanager
    def scraping(self, name: str) -> Iterator[None]:
        if name != "on":
            yield
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(stop,), daemon=True)
        self.counts.append(0)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def run(work: Path, duration: float, reps: int, concurrency: int) -> dict[str, Any]:
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    servers: dict[str, Server] = {}
    scraper = _Scraper(metrics_url)
    with hitpair.origin() as (_, paths):
        try:
            servers["off"] = peers.start_previewer(work, "centre", name="metrics-off")
            on = ("--metrics-address", f"127.0.0.1:{metrics_port}")
            servers["on"] = peers.start_previewer(work, "centre", on, name="metrics-on")
            for server in servers.values():
                hitpair.fill(server, paths)
            rows = hitpair.rounds(
                work, servers, paths, duration, reps, concurrency, scraper.scraping
            )
            _, _, body = get(metrics_url)
        finally:
            for server in servers.values():
                server.stop()
    for row, scrapes in zip(rows, scraper.counts, strict=True):
        row["scrapes"] = scrapes
    served = sum(
        float(line.split()[-1])
        for line in body.decode().splitlines()
        if line.startswith("previewer_requests_total{")
    )
    return {
        "duration": duration,
        "concurrency": concurrency,
        "paths": len(paths),
        "scrape_interval": SCRAPE_INTERVAL,
        "requests_counted_by_metrics_on": served,
        "reps": rows,
        **hitpair.medians(rows),
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"hit path, c={result['concurrency']}, {result['duration']:g} s per run, "
        f"{result['paths']} previews, metrics scraped every {result['scrape_interval']:g} s",
        "| rep | metrics | req/s | p50 ms | p99 ms | server CPU ms/req | other CPU % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["reps"]:
        for name in ("off", "on"):
            r = row[name]
            lines.append(
                f"| {row['rep']} | {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['cpu_ms_per_request']:.3f} | {r['other_cpu_pct']:.0f} |"
            )
    lines.append(
        f"median: off {result['off_rps_median']:,.0f} req/s, on "
        f"{result['on_rps_median']:,.0f} req/s, ratio on/off {result['ratio_median']:.3f} "
        f"(per rep: {', '.join(str(r['ratio']) for r in result['reps'])})"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previewer-metrics-cost-") as tmp:
        result = run(Path(tmp), args.duration, args.reps, args.concurrency)
    print(_table(result), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
