"""`previewer warm` against wrk on the same service: the hit rate each one reaches.

    .venv/bin/python bench/warmspeed.py [--duration 10] [--reps 3] [--concurrency 16] [--json]

(`make bench` runs it as a stage; alone it needs wrk, from bench/setup.sh.)

Starts an origin on 127.0.0.1 serving JPEGs made here with libvips, and
`previewer serve` through the harness's `peers.start_previewer`. `previewer
warm` fills the cache with every source at every size (and must see only
misses, then only hits). Then, per repetition, wrk (bench/cycle.lua over the
same paths) and `previewer warm --duration` (a random mix of the same paths)
each load the hit path for the same time at the same concurrency, in
alternating order; both clients share the machine with the server, as a
user's would. Reported per client: req/s, p50/p99, the client's own CPU time
per request, and the CPU the rest of the machine took meanwhile. The figure
that counts is the median of the per-repetition ratios warm / wrk.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hitpair
import peers
from hitpair import SIZES, SOURCES
from load import measure
from procs import OtherCpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _warm(url: str, urls: Path, extra: list[str]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "previewer", "warm", url, "--urls", str(urls)]
    argv += ["--sizes", ",".join(SIZES), "--json", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"previewer warm failed ({done.returncode}): {done.stderr[-800:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _timed(client: Callable[[], dict[str, Any]], roots: list[int]) -> dict[str, Any]:
    cpu_before = _children_cpu()
    with OtherCpu(roots) as other:
        row = client()
    row["client_cpu_ms_per_request"] = round(
        (_children_cpu() - cpu_before) * 1000 / max(1, row["requests"]), 4
    )
    row["other_cpu_pct"] = round(other.percent, 1)
    return row


def run(work: Path, duration: float, reps: int, concurrency: int) -> dict[str, Any]:
    with hitpair.origin() as (authority, paths):
        return _run(work, authority, paths, duration, reps, concurrency)


def _run(
    work: Path, authority: str, paths: list[str], duration: float, reps: int, concurrency: int
) -> dict[str, Any]:
    urls = work / "urls.txt"
    urls.write_text("".join(f"{authority}/photo-{i}.jpg\n" for i in range(SOURCES)))
    server = peers.start_previewer(work, "centre")
    try:
        filled = _warm(server.url, urls, [])
        again = _warm(server.url, urls, [])
        if filled["cache"]["misses"] != len(paths) or again["cache"]["hits"] != len(paths):
            raise RuntimeError(f"the cache did not fill as expected: {filled} then {again}")
        rows: list[dict[str, Any]] = []
        for rep in range(1, reps + 1):

            def by_wrk(rep: int = rep) -> dict[str, Any]:
                result = measure(
                    peer="wrk",
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
                return {
                    "requests": result.requests,
                    "rps": result.rps,
                    "p50_ms": result.p50_ms,
                    "p99_ms": result.p99_ms,
                    "errors": result.errors,
                }

            def by_warm() -> dict[str, Any]:
                args = ["--duration", f"{duration:g}", "--concurrency", str(concurrency)]
                summary = _warm(server.url, urls, [*args, "--seed", "1"])
                return {
                    "requests": summary["requests"],
                    "rps": summary["requests_per_second"],
                    "p50_ms": summary["latency_ms"]["p50"],
                    "p99_ms": summary["latency_ms"]["p99"],
                    "errors": summary["errors"],
                    "hit_ratio": summary["cache"]["hit_ratio"],
                }

            order = [("wrk", by_wrk), ("warm", by_warm)]
            if rep % 2 == 0:
                order.reverse()
            row: dict[str, Any] = {"rep": rep}
            for name, client in order:
                row[name] = _timed(client, server.roots)
            row["ratio"] = round(row["warm"]["rps"] / row["wrk"]["rps"], 3)
            rows.append(row)
    finally:
        server.stop()
    return {
        "duration": duration,
        "concurrency": concurrency,
        "paths": len(paths),
        "reps": rows,
        "wrk_rps_median": statistics.median(r["wrk"]["rps"] for r in rows),
        "warm_rps_median": statistics.median(r["warm"]["rps"] for r in rows),
        "ratio_median": statistics.median(r["ratio"] for r in rows),
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"hit path, c={result['concurrency']}, {result['duration']:g} s per run, "
        f"{result['paths']} previews",
        "| rep | client | req/s | p50 ms | p99 ms | client CPU ms/req | other CPU % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["reps"]:
        for name in ("wrk", "warm"):
            r = row[name]
            lines.append(
                f"| {row['rep']} | {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['client_cpu_ms_per_request']:.3f} | "
                f"{r['other_cpu_pct']:.0f} |"
            )
    lines.append(
        f"median: wrk {result['wrk_rps_median']:,.0f} req/s, warm "
        f"{result['warm_rps_median']:,.0f} req/s, ratio warm/wrk {result['ratio_median']:.2f} "
        f"(per rep: {', '.join(str(r['ratio']) for r in result['reps'])})"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previewer-warmspeed-") as tmp:
        result = run(Path(tmp), args.duration, args.reps, args.concurrency)
    print(_table(result), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
