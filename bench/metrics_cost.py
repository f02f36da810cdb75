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
import statistics
import sys
import tempfile
import threading
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import peers
from load import measure
from procs import free_port, get
from warmspeed import SIZES, SOURCES, _jpeg, _Origin

SCRAPE_INTERVAL = 1.0  # seconds between scrapes of the metrics-on server


class _Scraper:
    """Scrapes `url` every SCRAPE_INTERVAL seconds while in its `with` block."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.scrapes = 0

    def _run(self) -> None:
        while not self._stop.wait(SCRAPE_INTERVAL):
            with urllib.request.urlopen(self._url, timeout=10) as resp:
                resp.read()
            self.scrapes += 1

    def __enter__(self) -> _Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(work: Path, duration: float, reps: int, concurrency: int) -> dict[str, Any]:
    _Origin.files = {f"/photo-{i}.jpg": _jpeg(1600, 1000, i) for i in range(SOURCES)}
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    authority = f"127.0.0.1:{origin.server_address[1]}"
    paths = [
        f"/fill/{size.replace('x', '/')}/{authority}{name}"
        for name in _Origin.files
        for size in SIZES
    ]
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    off = peers.start_previewer(work, "centre", name="metrics-off")
    on = None
    try:
        on = peers.start_previewer(
            work,
            "centre",
            ("--metrics-address", f"127.0.0.1:{metrics_port}"),
            name="metrics-on",
        )
        servers = {"off": off, "on": on}
        for server in servers.values():
            for path in paths:
                status, headers, _ = get(server.url + path)
                if status != 200 or headers.get("X-Cache") != "MISS":
                    raise RuntimeError(f"{server.url}{path}: {status} {headers}")
        rows: list[dict[str, Any]] = []
        for rep in range(1, reps + 1):
            order = ["off", "on"] if rep % 2 else ["on", "off"]
            row: dict[str, Any] = {"rep": rep}
            for name in order:
                server = servers[name]
                scraper = _Scraper(metrics_url)
                with scraper if name == "on" else _Nothing():
                    result = measure(
                        peer=f"previewer-metrics-{name}",
                        path="hit",
                        rep=rep,
                        url=server.url,
                        paths=paths,
                        concurrency=concurrency,
                        duration=duration,
                        roots=server.roots,
                        origin_roots=[],
                        work=work,
                        nonce=None,
                    )
                row[name] = {
                    "rps": result.rps,
                    "p50_ms": result.p50_ms,
                    "p99_ms": result.p99_ms,
                    "errors": result.errors,
                    "cpu_ms_per_request": result.cpu_ms_per_request,
                    "other_cpu_pct": result.other_cpu_pct,
                }
                if name == "on":
                    row["scrapes"] = scraper.scrapes
            row["ratio"] = round(row["on"]["rps"] / row["off"]["rps"], 3)
            rows.append(row)
        status, _, body = get(metrics_url)
        served = sum(
            float(line.split()[-1])
            for line in body.decode().splitlines()
            if line.startswith("previewer_requests_total{")
        )
    finally:
        off.stop()
        if on is not None:
            on.stop()
        origin.shutdown()
    return {
        "duration": duration,
        "concurrency": concurrency,
        "paths": len(paths),
        "scrape_interval": SCRAPE_INTERVAL,
        "requests_counted_by_metrics_on": served,
        "reps": rows,
        "off_rps_median": statistics.median(r["off"]["rps"] for r in rows),
        "on_rps_median": statistics.median(r["on"]["rps"] for r in rows),
        "ratio_median": statistics.median(r["ratio"] for r in rows),
    }


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


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
