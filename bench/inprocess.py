"""The in-process limit: previews per second with no HTTP, from bodies in memory.

    .venv/bin/python bench/inprocess.py CORPUS_DIR SECONDS [--threads 1,2] [--per-file]

Engines `pyvips` (the plain libvips calls) and `previewer` (the service's
`previewer.render.imaging.render`), each on 1 and N threads, under previewer's
malloc settings with the libvips operation cache off; docs/benchmarks.md
("In-process limit") has the details. Prints a `results.Limits` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pyvips
from results import Limits
from throughput import per_file_ms, rate

from previewer.process import memory
from previewer.render import imaging

WIDTH, HEIGHT, QUALITY = 300, 200, 80


def _pyvips(body: bytes) -> bytes:
    image = pyvips.Image.thumbnail_buffer(body, WIDTH, height=HEIGHT, crop="centre")
    out: bytes = image.jpegsave_buffer(Q=QUALITY, keep="none", optimize_coding=True)
    return out


_JOB = imaging.RenderJob(WIDTH, HEIGHT, "centre", QUALITY, 100_000_000)


def _previewer(body: bytes) -> bytes:
    return imaging.render(body, _JOB).body


ENGINES: dict[str, Callable[[bytes], bytes]] = {"pyvips": _pyvips, "previewer": _previewer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    parser.add_argument("--per-file", action="store_true", help="also time each file alone")
    args = parser.parse_args()
    memory.start_again_with_tunables()  # previewer serve's malloc settings
    memory.tune(os.environ)
    imaging.configure()  # the service's libvips set-up: loaders locked, op cache off
    files = {p.name: p.read_bytes() for p in sorted(args.corpus.glob("*.jpg"))}
    if not files:
        sys.exit(f"no JPEG files in {args.corpus}")
    for engine in ENGINES.values():  # warm-up: one pass, and a check that each works
        for body in files.values():
            if pyvips.Image.new_from_buffer(engine(body), "").width != WIDTH:
                sys.exit("in-process render gave the wrong width")
    threads = sorted({int(t) for t in args.threads.split(",")})
    limits = Limits(
        previews_per_second={
            f"{name}-{n}t": round(rate(engine, list(files.values()), n, args.seconds), 2)
            for name, engine in ENGINES.items()
            for n in threads
        },
        per_file_ms={name: per_file_ms(engine, files) for name, engine in ENGINES.items()}
        if args.per_file
        else None,
        libvips=f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        pyvips=pyvips.__version__,
        malloc=os.environ.get("GLIBC_TUNABLES") or "mallopt",
        vips_concurrency=pyvips.concurrency_get() if hasattr(pyvips, "concurrency_get") else None,
    )
    print(json.dumps(asdict(limits)))


if __name__ == "__main__":
    main()
