"""What glibc malloc settings cost per render, in process (no HTTP).

    .venv/bin/python bench/malloc_cost.py CORPUS_DIR [--repeat N] [--json]

Renders each corpus photo as a 300x200 centre fill on one thread with
previewer's imaging pipeline, under each malloc setting of `SETTINGS` in a
process of its own (glibc reads its tunables only at start), and reports the
median CPU milliseconds and minor page faults per render. The settings:
previewer's own (`previewer.process.memory`: two arenas, a 1 MiB mapping threshold,
huge pages for those mappings), the same without huge pages, and glibc's
defaults. Run by `make bench` (bench/run.py's render stage).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import corpus
from writer import table

from previewer.process import memory
from previewer.render import imaging

WIDTH, HEIGHT, QUALITY = 300, 200, 80
OURS = ":".join(f"{name}={value}" for name, value in memory.TUNABLES)
SETTINGS = {
    "previewer": OURS,
    "previewer without huge pages": ":".join(
        f"{name}={value}" for name, value in memory.TUNABLES if name != "glibc.malloc.hugetlb"
    ),
    # any glibc.malloc tunable hands malloc to glibc; hugetlb=0 is glibc's own default
    "glibc defaults": "glibc.malloc.hugetlb=0",
}


def measure_here(folder: Path, repeat: int) -> dict[str, Any]:
    """Median CPU ms and minor faults of one render per file, in this process."""
    imaging.configure()
    job = imaging.RenderJob(WIDTH, HEIGHT, "centre", QUALITY, 100_000_000)
    rows = []
    for photo in corpus.load(folder):
        body = (folder / photo.file).read_bytes()
        imaging.render(body, job)  # warm-up
        cpu, faults = [], []
        for _ in range(repeat):
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
            imaging.render(body, job)
            cpu.append((time.process_time() - started) * 1000)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before.ru_minflt)
        rows.append(
            {
                "file": photo.file,
                "progressive": photo.progressive,
                "cpu_ms": round(statistics.median(cpu), 1),
                "faults": int(statistics.median(faults)),
            }
        )
    return {"tunables": os.environ.get("GLIBC_TUNABLES"), "rows": rows}


def measure(folder: Path, repeat: int) -> dict[str, Any]:
    """Each setting in a process of its own, one after the other."""
    found: dict[str, Any] = {}
    for name, tunables in SETTINGS.items():
        environ = {**os.environ, "GLIBC_TUNABLES": tunables}
        argv = [sys.executable, __file__, str(folder), "--repeat", str(repeat), "--child"]
        done = subprocess.run(
            argv, env=environ, capture_output=True, text=True, timeout=1800, check=True
        )
        found[name] = json.loads(done.stdout.splitlines()[-1])
    return {"repeat": repeat, "thp": memory.thp_mode(), "settings": found}


def totals(setting: dict[str, Any]) -> tuple[float, float]:
    """Mean CPU ms and mean faults per render over the corpus."""
    rows = setting["rows"]
    return (
        statistics.mean(r["cpu_ms"] for r in rows),
        statistics.mean(r["faults"] for r in rows),
    )


def markdown(result: dict[str, Any]) -> str:
    """A summary table, then one row per file."""
    names = list(result["settings"])
    settings = result["settings"]
    body = []
    for name in names:
        cpu, faults = totals(settings[name])
        body.append([name, f"{cpu:.1f}", f"{faults:,.0f}"])
    head = ["malloc setting", "CPU ms per render (mean)", "minor faults per render (mean)"]
    files = []
    for i, row in enumerate(settings[names[0]]["rows"]):
        others = [settings[n]["rows"][i] for n in names]
        cells = [f"{o['cpu_ms']:.1f} / {o['faults']:,}" for o in others]
        files.append([row["file"], "yes" if row["progressive"] else "no", *cells])
    per_file = ["file", "progressive", *(f"{n}: ms / faults" for n in names)]
    return table(head, body) + "\n\n" + table(per_file, files)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_here(args.corpus, args.repeat)))
        return
    result = measure(args.corpus, args.repeat)
    print(json.dumps(result) if args.json else markdown(result))


if __name__ == "__main__":
    main()
