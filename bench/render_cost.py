"""Cost of one fill render by crop gravity, in process (no HTTP).

    .venv/bin/python bench/render_cost.py [--repeat N] [--json]

Renders photo-like JPEGs made here (no files needed) with previewer's own
imaging pipeline, for each gravity, and prints the median milliseconds per
render on one thread: a Markdown table, or with --json one JSON object.
Run by `make bench` (bench/run.py's render stage).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testkit"))

from writer import table

import images  # the images shared with the test suite
from previewer.options import GRAVITIES
from previewer.render import imaging

SOURCES = [(1024, 504), (2000, 1333), (4000, 3000)]
TARGETS = [(300, 200), (1024, 252), (200, 700)]


def measure(repeat: int) -> dict[str, Any]:
    """Median milliseconds of one render, per source size, target size and gravity."""
    imaging.configure()
    rows = []
    for sw, sh in SOURCES:
        body = images.jpeg(sw, sh)
        for tw, th in TARGETS:
            medians = {}
            for gravity in GRAVITIES:
                job = imaging.RenderJob(tw, th, gravity, 80, 100_000_000)
                imaging.render(body, job)  # warm-up
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    imaging.render(body, job)
                    times.append((time.perf_counter() - started) * 1000)
                medians[gravity] = round(statistics.median(times), 2)
            rows.append({"source": f"{sw}x{sh}", "target": f"{tw}x{th}", "ms": medians})
    return {"repeat": repeat, "gravities": list(GRAVITIES), "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    """Milliseconds per gravity; the ratio is the first gravity's time over the second's."""
    gravities: list[str] = result["gravities"]
    body = []
    for row in result["rows"]:
        ms = [row["ms"][g] for g in gravities]
        body.append(
            [row["source"], row["target"], *(f"{m:.1f}" for m in ms), f"{ms[0] / ms[1]:.2f}"]
        )
    return table(["source", "target", *(f"{g} ms" for g in gravities), "ratio"], body)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args.repeat)
    if args.json:
        print(json.dumps(result))
        return
    print(markdown(result))


if __name__ == "__main__":
    main()
