"""Start-up time of `previewer serve` over a cache of many entries.

    .venv/bin/python bench/startup.py WORK_DIR [--entries 100000] [--trials 3]

Fills WORK_DIR/startup-cache with that many valid entries through previewer's
public storage API (`Storage(root).write(key_digest(str(i)), body,
"image/jpeg")`), once (a marker file remembers a finished fill), then times
`previewer serve` from exec until `/health` answers 200 (serving: the index
loads in the background, and until it has, hits are read from disk directly)
and until `/health` reports the index loaded, and checks that it then
reports every entry. The entry body is one small real JPEG: start-up scans
names and stats, never bodies, so body size does not change the time. Trials
run with the page cache warm and, when this process may write
/proc/sys/vm/drop_caches, cold as well. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyvips

from previewer.cache.storage import Entry, Storage, key_digest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import free_port, get, spawn, wait_ready


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
    warm: list[tuple[float, float]] = []
    cold: list[tuple[float, float]] = []
    counts = set()
    trial(binary, cache, log)  # first run after the fill: not counted
    for _ in range(args.trials):
        serving, loaded, count = trial(binary, cache, log)
        warm.append((serving, loaded))
        counts.add(count)
    can_drop = _drop_page_cache()
    if can_drop:
        for _ in range(args.trials):
            _drop_page_cache()
            serving, loaded, count = trial(binary, cache, log)
            cold.append((serving, loaded))
            counts.add(count)

    def median(runs: list[tuple[float, float]], i: int) -> float | None:
        return round(statistics.median(r[i] for r in runs), 3) if runs else None

    result = {
        "entries": args.entries,
        "entries_reported": sorted(counts),
        "fill_seconds": round(fill_seconds, 1),
        "warm_seconds": [round(s, 3) for s, _ in warm],
        "warm_median": median(warm, 0),
        "warm_loaded_seconds": [round(s, 3) for _, s in warm],
        "warm_loaded_median": median(warm, 1),
        "cold_seconds": [round(s, 3) for s, _ in cold],
        "cold_median": median(cold, 0),
        "cold_loaded_seconds": [round(s, 3) for _, s in cold],
        "cold_loaded_median": median(cold, 1),
    }
    print(json.dumps(result))
    if counts != {args.entries}:
        raise SystemExit(f"/health reported {sorted(counts)} entries, expected {args.entries}")


if __name__ == "__main__":
    main()
