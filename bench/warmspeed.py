"""`previewer warm` against wrk on the same service: the hit rate each one reaches.

    .venv/bin/python bench/warmspeed.py [--duration 10] [--reps 3] [--concurrency 16] [--json]

A stage of `make bench` (alone it needs wrk, from bench/setup.sh); docs/warm.md describes
the method. Its CPU column is the client's own CPU time per request.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import hitpair
import peers
from hitpair import SIZES, SOURCES, Side
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


def run(work: Path, duration: float, reps: int, concurrency: int) -> hitpair.Pair:
    urls = work / "urls.txt"
    with hitpair.origin() as (authority, paths):
        urls.write_text("".join(f"{authority}/photo-{i}.jpg\n" for i in range(SOURCES)))
        server = peers.start_previewer(work, "centre")
        try:
            filled = _warm(server.url, urls, [])
            again = _warm(server.url, urls, [])
            if filled["cache"]["misses"] != len(paths) or again["cache"]["hits"] != len(paths):
                raise RuntimeError(f"the cache did not fill as expected: {filled} then {again}")

            def by_warm() -> tuple[int, Side]:
                args = ["--duration", f"{duration:g}", "--concurrency", str(concurrency)]
                s = _warm(server.url, urls, [*args, "--seed", "1"])
                latency = s["latency_ms"]
                rps, errors = s["requests_per_second"], s["errors"]
                return s["requests"], Side(rps, latency["p50"], latency["p99"], errors, 0, 0)

            def load(name: str, rep: int) -> Side:
                """A client's run, its own CPU per request, the others' CPU meanwhile."""
                cpu_before = _children_cpu()
                with OtherCpu(server.roots) as other:
                    if name == "wrk":
                        result = hitpair.wrk(work, server, paths, duration, concurrency, rep)
                        requests, side = result.requests, Side.of(result)
                    else:
                        requests, side = by_warm()
                cpu = round((_children_cpu() - cpu_before) * 1000 / max(1, requests), 4)
                return replace(side, cpu_ms_per_request=cpu, other_cpu_pct=round(other.percent, 1))

            return hitpair.compare(("wrk", "warm"), load, paths, duration, reps, concurrency)
        finally:
            server.stop()


def markdown(result: hitpair.Pair) -> str:
    return hitpair.markdown(result, "", "client", {"wrk": "wrk", "warm": "warm"}, "client") + "."


if __name__ == "__main__":
    sys.exit(hitpair.main(__doc__ or "", 3, run, markdown))
