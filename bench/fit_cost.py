"""Fit against fill on the benchmark corpus: misses per second on one render thread.

    VIPS_CONCURRENCY=1 .venv/bin/python bench/fit_cost.py [CORPUS_DIR] [--repeat N] [--json]

Run by `make bench` (bench/run.py's render stage). For each photo of the
corpus (default bench/.work/corpus), renders the 300x200 preview of every
other benchmark stage with `previewer.render.imaging.render`, in process (no HTTP,
no fetch, no disk): a fill at gravity centre, a fill at gravity attention
(the default), and a fit (the whole photo inside 300x200). After one
warm-up of each, the three kinds alternate render by render, so that all see
the same machine load, `--repeat` times. Per photo and kind it keeps the
median CPU milliseconds (process time, all libvips threads: steadier than
wall time on a shared machine) and the median wall milliseconds. The rate of
a kind is the number of photos over the sum of their medians: the misses
per second one render thread sustains walking the corpus, fetch and store
aside (by CPU: per core; by wall: as it went on this machine). Prints a
Markdown table, or with --json one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from writer import table

from previewer.render import imaging

CORPUS = Path(__file__).resolve().parent / ".work" / "corpus"
WIDTH, HEIGHT, QUALITY = 300, 200, 80
# (label, operation, gravity); a fit has no gravity
KINDS = (
    ("fill centre", "fill", "centre"),
    ("fill attention", "fill", "attention"),
    ("fit", "fit", "centre"),
)


def measure(corpus: Path, repeat: int) -> dict[str, Any]:
    """Each photo's median milliseconds per kind, and each kind's misses per second."""
    photos = json.loads((corpus / "manifest.json").read_text())["photos"]
    imaging.configure()
    jobs = {
        label: imaging.RenderJob(WIDTH, HEIGHT, gravity, QUALITY, 10**9, operation=operation)
        for label, operation, gravity in KINDS
    }
    rows = []
    for photo in photos:
        body = (corpus / photo["file"]).read_bytes()
        fitted = imaging.render(body, jobs["fit"])
        for job in jobs.values():
            imaging.render(body, job)  # warm-up
        cpu: dict[str, list[float]] = {label: [] for label in jobs}
        wall: dict[str, list[float]] = {label: [] for label in jobs}
        for _ in range(repeat):
            for label, job in jobs.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                imaging.render(body, job)
                cpu[label].append((time.process_time() - started_cpu) * 1000)
                wall[label].append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "file": photo["file"],
                "size": f"{photo['width']}x{photo['height']}",
                "fit_size": f"{fitted.width}x{fitted.height}",
                "cpu_ms": {label: round(statistics.median(cpu[label]), 2) for label in jobs},
                "wall_ms": {label: round(statistics.median(wall[label]), 2) for label in jobs},
            }
        )

    def per_second(key: str) -> dict[str, float]:
        return {
            label: round(len(rows) * 1000 / sum(row[key][label] for row in rows), 2)
            for label in jobs
        }

    return {
        "repeat": repeat,
        "target": f"{WIDTH}x{HEIGHT}",
        "kinds": list(jobs),
        "rows": rows,
        "per_second_cpu": per_second("cpu_ms"),
        "per_second_wall": per_second("wall_ms"),
    }


def markdown(result: dict[str, Any]) -> str:
    """The table of a `measure` result (CPU milliseconds), ending with the corpus-wide
    misses per second by CPU and by wall time."""
    kinds: list[str] = result["kinds"]
    body = [
        [row["file"], row["size"], row["fit_size"], *(f"{row['cpu_ms'][k]:.1f}" for k in kinds)]
        for row in result["rows"]
    ]
    for key, what in (("per_second_cpu", "by CPU (per core)"), ("per_second_wall", "by wall time")):
        rates = [f"**{result[key][k]:.1f}**" for k in kinds]
        body.append([f"misses/s on one thread, {what}", "", "", *rates])
    header = ["file", "size", "fit gives", *(f"{k} CPU ms" for k in kinds)]
    return table(header, body, "lll" + "r" * len(kinds)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args.corpus, args.repeat)
    print(json.dumps(result) if args.json else markdown(result), end="\n" if args.json else "")


if __name__ == "__main__":
    main()
