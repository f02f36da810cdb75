"""The cost of the slow-client protections on the hit path: defaults against all off, side by side.

    .venv/bin/python bench/protection_cost.py [--duration 10] [--reps 5] [--concurrency 16]
                                              [--json] [--docs docs]

A stage of `make bench` (`BENCH_ONLY=protections` runs it alone; it needs wrk, from
bench/setup.sh). docs/performance.md describes the method; --docs writes the table there.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hitpair

OFF: tuple[str, ...] = ("--header-timeout", "0", "--keepalive-timeout", "0")
OFF += ("--send-timeout", "0", "--max-connections", "1000000")
TARGET = 0.97
QUIET = 10.0  # a round is quiet when other programs took at most this share (%) of the CPU
BLOCK = ("performance.md", "<!-- hit-protections:begin -->", "<!-- hit-protections:end -->")


@dataclass(frozen=True)
class Protections(hitpair.Pair):
    """The rounds (off, on) and the verdict against the target."""

    date: str
    off_flags: str
    on_rps_median: float
    off_rps_median: float
    cpu_ratio_median: float
    quiet_rounds: int
    ratio_median_quiet: float | None
    target: float


def run(work: Path, duration: float, reps: int, concurrency: int) -> Protections:
    flags = {"on": (), "off": OFF}
    pair = hitpair.servers(work, flags, duration, reps, concurrency)
    quiet = [r.ratio for r in pair.reps if max(s.other_cpu_pct for s in r.sides.values()) <= QUIET]
    return Protections(
        **vars(pair),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        off_flags=" ".join(OFF),
        on_rps_median=pair.rps_median("on"),
        off_rps_median=pair.rps_median("off"),
        cpu_ratio_median=statistics.median(
            r.cpu_ratio for r in pair.reps if r.cpu_ratio is not None
        ),
        quiet_rounds=len(quiet),
        ratio_median_quiet=statistics.median(quiet) if quiet else None,
        target=TARGET,
    )


def markdown(result: Protections) -> str:
    """The rounds' table, the medians and the verdict against the target."""
    labels = {"on": "on (defaults)", "off": "off"}
    text = hitpair.markdown(result, f"Run of {result.date}: ", "protections", labels, "server")
    verdict = "PASS" if result.ratio_median >= result.target else "FAIL"
    text += f"; target ≥ {result.target:g}: {verdict}. Server CPU per hit, on / off: "
    text += f"{result.cpu_ratio_median:.3f} (median of the rounds)."
    quiet = result.ratio_median_quiet
    if quiet is not None and result.quiet_rounds < len(result.reps):
        text += (
            f" Over the {result.quiet_rounds} rounds in which other programs took at most "
            f"{QUIET:g}% of the CPU: {quiet:.3f}."
        )
    return text


if __name__ == "__main__":
    sys.exit(hitpair.main(__doc__ or "", 5, run, markdown, BLOCK))
