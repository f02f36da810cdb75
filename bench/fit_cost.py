"""Fit against fill on the benchmark corpus: misses per second on one render thread.

    VIPS_CONCURRENCY=1 .venv/bin/python bench/fit_cost.py [CORPUS] [--repeat N] [--json]
                                                          [--docs DIR]

Part of `make bench`'s render stage; docs/benchmarks.md ("One render on one thread")
describes the method, and --docs writes the table there (its `fit` block).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from writer import table, write_block

from previewer.render import imaging

CORPUS = Path(__file__).resolve().parent / ".work" / "corpus"
WIDTH, HEIGHT, QUALITY = 300, 200, 80
JOBS = {  # a fit has no gravity
    "fill centre": imaging.RenderJob(WIDTH, HEIGHT, "centre", QUALITY, 10**9, operation="fill"),
    "fill attention": imaging.RenderJob(WIDTH, HEIGHT, "attention", QUALITY, 10**9),
    "fit": imaging.RenderJob(WIDTH, HEIGHT, "centre", QUALITY, 10**9, operation="fit"),
}


@dataclass(frozen=True)
class Photo:
    file: str
    size: str
    fit_size: str
    cpu_ms: dict[str, float]  # median per kind
    wall_ms: dict[str, float]


@dataclass(frozen=True)
class FitCost:
    repeat: int
    rows: list[Photo]
    per_second_cpu: dict[str, float]  # photos over the sum of their medians, per kind
    per_second_wall: dict[str, float]


def measure(corpus: Path, repeat: int) -> FitCost:
    """Each photo's median milliseconds per kind, the kinds alternating render by render."""
    imaging.configure()
    rows = []
    for photo in json.loads((corpus / "manifest.json").read_text())["photos"]:
        body = (corpus / photo["file"]).read_bytes()
        fitted = imaging.render(body, JOBS["fit"])
        for job in JOBS.values():
            imaging.render(body, job)  # warm-up
        cpu: dict[str, list[float]] = {label: [] for label in JOBS}
        wall: dict[str, list[float]] = {label: [] for label in JOBS}
        for _ in range(repeat):
            for label, job in JOBS.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                imaging.render(body, job)
                cpu[label].append((time.process_time() - started_cpu) * 1000)
                wall[label].append((time.perf_counter() - started) * 1000)
        rows.append(
            Photo(
                photo["file"],
                f"{photo['width']}x{photo['height']}",
                f"{fitted.width}x{fitted.height}",
                {label: round(statistics.median(ms), 2) for label, ms in cpu.items()},
                {label: round(statistics.median(ms), 2) for label, ms in wall.items()},
            )
        )

    def per_second(key: str) -> dict[str, float]:
        return {k: round(len(rows) * 1000 / sum(getattr(r, key)[k] for r in rows), 2) for k in JOBS}

    return FitCost(repeat, rows, per_second("cpu_ms"), per_second("wall_ms"))


def markdown(result: FitCost) -> str:
    """The table (CPU milliseconds), ending with the misses per second by CPU and by wall."""
    body = [
        [r.file, r.size, r.fit_size, *(f"{r.cpu_ms[k]:.1f}" for k in JOBS)] for r in result.rows
    ]
    rates = {"by CPU (per core)": result.per_second_cpu, "by wall time": result.per_second_wall}
    for what, rate in rates.items():
        body.append(
            [f"misses/s on one thread, {what}", "", "", *(f"**{rate[k]:.1f}**" for k in JOBS)]
        )
    text = table(["file", "size", "fit gives", *(f"{k} CPU ms" for k in JOBS)], body, "lllrrr")
    return f"Target {WIDTH}x{HEIGHT}, {result.repeat} renders each.\n\n{text}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    parser.add_argument("--docs", type=Path, help="write the table into DOCS/benchmarks.md")
    args = parser.parse_args()
    result = measure(args.corpus, args.repeat)
    text = markdown(result)
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.docs:
        marks = ("<!-- make bench: fit -->", "<!-- make bench: fit end -->")
        write_block(args.docs / "benchmarks.md", text, *marks)
    if args.json:
        print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
