"""Start-up time of `previewer serve` over a cache of many entries.

    .venv/bin/python bench/startup.py WORK_DIR [--entries 100000] [--trials 3]

Fills WORK_DIR/startup-cache-N once through previewer's storage API, then
times `previewer serve` from exec to serving and to its index loaded, with
the page cache warm and, when this process may drop it, cold; see
docs/benchmarks.md ("Start-up"). Prints a `results.Startup` as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pyvips
from procs import free_port, get, spawn, wait_ready
from results import Startup

from previewer.cache.storage import Entry, Storage, key_digest


def fill(root: Path, entries: int) -> float:
    """Write `entries` cache entries under `root`; returns the seconds it took (0 if kept)."""
    marker = root / f".bench-filled-{entries}"
    if marker.exists():
        return 0.0
    started = time.monotonic()
    body = pyvips.Image.black(64, 64).draw_circle([200, 120, 40], 32, 32, 20).jpegsave_buffer()
    storage = Storage(root)
    entry = Entry.of(body, "image/jpeg")
    for i in range(entries):
        storage.write(key_digest(str(i)), entry)
    marker.write_text("")  # not a digest name, two levels up: scan never sees it
    return time.monotonic() - started


def _drop_page_cache() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def trial(binary: Path, cache: Path, log: Path) -> tuple[float, float, int]:
    """Seconds from exec to /health 200 (serving, hits included) and to the index
    being loaded, and the entry count /health then reports."""
    port = free_port()
    argv = [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--cache-dir", str(cache), "--cache-size", "1GiB"]
    health = f"http://127.0.0.1:{port}/health"
    started = time.monotonic()
    proc = spawn(argv, log)
    try:
        wait_ready(health, [proc], log, within=120)
        serving = time.monotonic() - started
        while True:
            _, _, body = get(health)
            cache_state = json.loads(body)["cache"]
            if cache_state["loaded"]:
                loaded = time.monotonic() - started
                break
            if time.monotonic() - started > 120:
                raise RuntimeError("the index did not load within 120 s")
            time.sleep(0.005)
        entries = int(cache_state["entries"])
    finally:
        proc.terminate()
        proc.wait(30)
    return serving, loaded, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    cache = args.work / f"startup-cache-{args.entries}"
    fill_seconds = fill(cache, args.entries)
    binary = Path(sys.executable).parent / "previewer"
    log = args.work / "startup.log"
    trial(binary, cache, log)  # first run after the fill: not counted
    warm = [trial(binary, cache, log) for _ in range(args.trials)]
    cold = []
    if _drop_page_cache():
        for _ in range(args.trials):
            _drop_page_cache()
            cold.append(trial(binary, cache, log))
    counts = sorted({count for _, _, count in warm + cold})

    def seconds(runs: list[tuple[float, float, int]], i: int) -> list[float]:
        return [round(run[i], 3) for run in runs]

    def median(runs: list[tuple[float, float, int]], i: int) -> float | None:
        return round(statistics.median(run[i] for run in runs), 3) if runs else None

    result = Startup(
        entries=args.entries,
        entries_reported=counts,
        fill_seconds=round(fill_seconds, 1),
        warm_seconds=seconds(warm, 0),
        warm_median=median(warm, 0),
        warm_loaded_seconds=seconds(warm, 1),
        warm_loaded_median=median(warm, 1),
        cold_seconds=seconds(cold, 0),
        cold_median=median(cold, 0),
        cold_loaded_seconds=seconds(cold, 1),
        cold_loaded_median=median(cold, 1),
    )
    print(json.dumps(asdict(result)))
    if counts != [args.entries]:
        raise SystemExit(f"/health reported {counts} entries, expected {args.entries}")


if __name__ == "__main__":
    main()
