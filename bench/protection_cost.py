"""The cost of the slow-client protections on the hit path: defaults against all off, side by side.

    .venv/bin/python bench/protection_cost.py [--duration 10] [--reps 5] [--concurrency 16]
                                              [--json] [--report docs/performance.md]

(`make bench` runs it as a stage; `BENCH_ONLY=protections` runs that stage
alone. It needs wrk, from bench/setup.sh.)

Starts an origin on 127.0.0.1 serving JPEGs made here with libvips, and two
`previewer serve` processes through the harness's `peers.start_previewer`:
one with its defaults (the head deadline, the keep-alive and send timeouts
and the connection cap on), one with them all off (`--header-timeout 0
--keepalive-timeout 0 --send-timeout 0 --max-connections 1000000`). Both get
every preview once (misses), then every repetition loads the hit path of
each with wrk (bench/cycle.lua over the same paths) for the same time at the
same concurrency, the two in alternating order, so that whatever else the
machine does falls on both. The figure that counts is the median of the
per-repetition ratios on / off of requests per second (target: at least
0.97); the same median over the quiet rounds (other programs took at most
10% of the CPU on both sides) is given too, and the ratio of the server's
CPU time per hit, on / off. With --report the table goes into that Markdown
file between the `hit-protections` markers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hitpair
import peers
from procs import Server
from writer import write_block

OFF: tuple[str, ...] = ("--header-timeout", "0", "--keepalive-timeout", "0")
OFF += ("--send-timeout", "0", "--max-connections", "1000000")
TARGET = 0.97
QUIET = 10.0  # a round is quiet when other programs took at most this share (%) of the CPU
MARK_BEGIN = "<!-- hit-protections:begin -->"
MARK_END = "<!-- hit-protections:end -->"


def run(work: Path, duration: float, reps: int, concurrency: int) -> dict[str, Any]:
    servers: dict[str, Server] = {}
    with hitpair.origin() as (_, paths):
        try:
            servers["on"] = peers.start_previewer(work, "centre", name="protections-on")
            servers["off"] = peers.start_previewer(work, "centre", OFF, name="protections-off")
            for server in servers.values():
                hitpair.fill(server, paths)
            rows = hitpair.rounds(work, servers, paths, duration, reps, concurrency)
        finally:
            for server in servers.values():
                server.stop()
    quiet = [r for r in rows if max(r["on"]["other_cpu_pct"], r["off"]["other_cpu_pct"]) <= QUIET]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "duration": duration,
        "concurrency": concurrency,
        "paths": len(paths),
        "off_flags": " ".join(OFF),
        "reps": rows,
        **hitpair.medians(rows),
        "cpu_ratio_median": statistics.median(
            r["cpu_ratio"] for r in rows if r["cpu_ratio"] is not None
        ),
        "quiet_rounds": len(quiet),
        "ratio_median_quiet": statistics.median(r["ratio"] for r in quiet) if quiet else None,
        "target": TARGET,
    }


def markdown(result: dict[str, Any]) -> str:
    """The run's table, its medians and the verdict against the target."""
    ratio = result["ratio_median"]
    lines = [
        f"Run of {result['date']}: hit path, c={result['concurrency']}, "
        f"{result['duration']:g} s per run, {result['paths']} previews, "
        f"{len(result['reps'])} rounds in alternating order.",
        "",
        "| round | protections | req/s | p50 ms | p99 ms | errors | server CPU ms/req "
        "| other CPU % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["reps"]:
        for name, shown in (("on", "on (defaults)"), ("off", "off")):
            r = row[name]
            lines.append(
                f"| {row['rep']} | {shown} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['errors']} | {r['cpu_ms_per_request']:.3f} | "
                f"{r['other_cpu_pct']:.0f} |"
            )
    lines += [
        "",
        f"Median: on {result['on_rps_median']:,.0f} req/s, off "
        f"{result['off_rps_median']:,.0f} req/s; **ratio on / off {ratio:.3f}** "
        f"(per round: {', '.join(str(r['ratio']) for r in result['reps'])}); "
        f"target ≥ {result['target']:g}: {'PASS' if ratio >= result['target'] else 'FAIL'}.",
    ]
    lines[-1] += (
        f" Server CPU per hit, on / off: {result['cpu_ratio_median']:.3f} (median of the rounds)."
    )
    quiet = result["ratio_median_quiet"]
    if quiet is not None and result["quiet_rounds"] < len(result["reps"]):
        lines[-1] += (
            f" Over the {result['quiet_rounds']} rounds in which other programs took at most "
            f"{QUIET:g}% of the CPU: {quiet:.3f}."
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    parser.add_argument("--report", type=Path, help="Markdown file to write the table into")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previewer-protection-cost-") as tmp:
        result = run(Path(tmp), args.duration, args.reps, args.concurrency)
    text = markdown(result)
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.report:
        write_block(args.report, text, MARK_BEGIN, MARK_END)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
