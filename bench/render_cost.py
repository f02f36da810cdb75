"""Cost of one fill render by crop gravity, in process (no HTTP).

    .venv/bin/python bench/render_cost.py [--repeat N]

Renders photo-like JPEGs made here (no files needed) with previewer's own
imaging pipeline, for each gravity, and prints the median milliseconds per
render on one thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import images  # the test suite's image generator
from previewer import imaging
from previewer.config import GRAVITIES

SOURCES = [(1024, 504), (2000, 1333), (4000, 3000)]
TARGETS = [(300, 200), (1024, 252), (200, 700)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    imaging.configure()
    print("| source | target | " + " | ".join(f"{g} ms" for g in GRAVITIES) + " | ratio |")
    print("|---|---|" + "---|" * (len(GRAVITIES) + 1))
    for sw, sh in SOURCES:
        body = images.jpeg(sw, sh)
        for tw, th in TARGETS:
            medians = []
            for gravity in GRAVITIES:
                job = imaging.RenderJob(tw, th, gravity, 80, 100_000_000)
                imaging.render(body, job)  # warm-up
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    imaging.render(body, job)
                    times.append((time.perf_counter() - started) * 1000)
                medians.append(statistics.median(times))
            cells = " | ".join(f"{m:.1f}" for m in medians)
            print(f"| {sw}x{sh} | {tw}x{th} | {cells} | {medians[0] / medians[1]:.2f} |")


if __name__ == "__main__":
    main()
