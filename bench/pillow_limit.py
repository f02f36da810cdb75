"""The in-process rate of Pillow, for comparison with libvips: no HTTP, bodies in memory.

    bench/.work/thumbor-venv/bin/python bench/pillow_limit.py CORPUS SECONDS OUT_DIR

The fastest Pillow path: JPEG `draft("RGB", (300, 200))` (libjpeg
decodes at 1/2, 1/4 or 1/8 scale, never below the requested size), then
`ImageOps.fit` to 300x200 with LANCZOS at the centre, then JPEG quality 80 with
optimised Huffman tables. Runs on 1 and N threads (Pillow releases the GIL
while it decodes, resizes and encodes), times each file once, and writes each
file's preview to OUT_DIR for bench/quality.py to score. Runs in thumbor's
venv, which has Pillow; standard library otherwise. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import PIL
from PIL import Image, ImageOps, features

SIZE = (300, 200)


def render(body: bytes) -> bytes:
    source = Image.open(io.BytesIO(body))
    source.draft("RGB", SIZE)
    image = ImageOps.fit(source.convert("RGB"), SIZE, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


def rate(bodies: list[bytes], threads: int, seconds: float) -> float:
    """Previews per second over `seconds` with `threads` threads."""
    deadline = time.monotonic() + seconds
    stop = threading.Event()

    def worker(offset: int) -> int:
        done, i = 0, offset
        while time.monotonic() < deadline and not stop.is_set():
            render(bodies[i % len(bodies)])
            done, i = done + 1, i + 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        counts = list(pool.map(worker, [n * len(bodies) // threads for n in range(threads)]))
    return sum(counts) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("seconds", type=float)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    args = parser.parse_args()
    files = {p.name: p.read_bytes() for p in sorted(args.corpus.glob("*.jpg"))}
    args.out.mkdir(parents=True, exist_ok=True)
    per_file = {}
    for name, body in files.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            preview = render(body)
            times.append((time.perf_counter() - started) * 1000)
        per_file[name] = round(statistics.median(times), 1)
        (args.out / name).write_bytes(preview)
    bodies = list(files.values())
    rates = {
        f"pillow-{t}t": round(rate(bodies, t, args.seconds), 2)
        for t in sorted({int(t) for t in args.threads.split(",")})
    }
    print(
        json.dumps(
            {
                "previews_per_second": rates,
                "per_file_ms": {"pillow": per_file},
                "pillow": PIL.__version__,
                "libjpeg": features.version("jpg"),
                "libjpeg_turbo": bool(features.check_feature("libjpeg_turbo")),
            }
        )
    )


if __name__ == "__main__":
    main()
