"""The in-process rate of Pillow, for comparison with libvips: no HTTP, bodies in memory.

    bench/.work/thumbor-venv/bin/python bench/pillow_limit.py CORPUS SECONDS OUT_DIR

Pillow's fastest path (JPEG `draft`, `ImageOps.fit`, quality 80) on 1 and N
threads, each file timed alone and its preview written to OUT_DIR for
bench/quality.py. Runs in thumbor's venv, which has Pillow; prints one JSON
object, which bench/run.py adds to `results.Limits`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import PIL
from PIL import Image, ImageOps, features
from throughput import per_file_ms, rate

SIZE = (300, 200)


def render(body: bytes) -> bytes:
    source = Image.open(io.BytesIO(body))
    source.draft("RGB", SIZE)
    image = ImageOps.fit(source.convert("RGB"), SIZE, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("seconds", type=float)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    args = parser.parse_args()
    files = {p.name: p.read_bytes() for p in sorted(args.corpus.glob("*.jpg"))}
    args.out.mkdir(parents=True, exist_ok=True)
    per_file = per_file_ms(render, files)
    for name, body in files.items():
        (args.out / name).write_bytes(render(body))
    bodies = list(files.values())
    rates = {
        f"pillow-{t}t": round(rate(render, bodies, t, args.seconds), 2)
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
