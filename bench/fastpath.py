"""Per-file render time and SSIM: plain libvips thumbnail against previewer's pipeline.

    VIPS_CONCURRENCY=1 .venv/bin/python bench/fastpath.py [CORPUS_DIR] [--json]

Run by `make bench` (one thread, bench/run.py's render stage). For each photo
of the benchmark corpus (default bench/.work/corpus), times one 300x200 centre
fill made with a plain `pyvips.Image.thumbnail_buffer` and one made with
`previewer.render.imaging.render` (which takes the DC-only path for large progressive
JPEGs), best of three, and scores both against bench/quality.py's full-decode
reference. Prints a Markdown table, or with --json one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyvips
from quality import best_ssim, covered_reference, luma
from writer import table

from previewer.render import imaging


def _best_of_three(make: Callable[[], bytes]) -> tuple[bytes, float]:
    times, body = [], b""
    for _ in range(3):
        started = time.perf_counter()
        body = make()
        times.append((time.perf_counter() - started) * 1000)
    return body, min(times)


def measure(corpus: Path) -> dict[str, Any]:
    """Each photo's milliseconds and SSIM by both paths."""
    photos = json.loads((corpus / "manifest.json").read_text())["photos"]
    imaging.configure()
    job = imaging.RenderJob(300, 200, "centre", 80, 10**9)
    rows = []
    for photo in photos:
        body = (corpus / photo["file"]).read_bytes()
        reference = covered_reference(body)

        def plain(body: bytes = body) -> bytes:
            image = pyvips.Image.thumbnail_buffer(body, 300, height=200, crop="centre")
            out: bytes = image.jpegsave_buffer(Q=80)
            return out

        def ours(body: bytes = body) -> bytes:
            return imaging.render(body, job).body

        plain_body, plain_ms = _best_of_three(plain)
        ours_body, ours_ms = _best_of_three(ours)
        rows.append(
            {
                "file": photo["file"],
                "size": f"{photo['width']}x{photo['height']}",
                "megabytes": photo["bytes"] / 1e6,
                "progressive": photo["progressive"],
                "thumbnail_ms": round(plain_ms, 1),
                "thumbnail_ssim": best_ssim(reference, luma(_decode(plain_body))),
                "previewer_ms": round(ours_ms, 1),
                "previewer_ssim": best_ssim(reference, luma(_decode(ours_body))),
            }
        )
    return {"photos": rows}


def _decode(body: bytes) -> Any:
    return pyvips.Image.new_from_buffer(body, "")


def markdown(result: dict[str, Any]) -> str:
    """The table of a `measure` result, with a line for the whole corpus."""
    rows = result["photos"]
    body = [
        [
            r["file"],
            f"{r['size']}, {r['megabytes']:.1f} MB",
            "yes" if r["progressive"] else "no",
            f"{r['thumbnail_ms']:.0f} ms, SSIM {r['thumbnail_ssim']:.4f}",
            f"{r['previewer_ms']:.0f} ms, SSIM {r['previewer_ssim']:.4f}",
        ]
        for r in rows
    ]

    def whole(path: str) -> str:
        ms = sum(r[f"{path}_ms"] for r in rows)
        ssims = [r[f"{path}_ssim"] for r in rows]
        return f"{ms:.0f} ms, mean SSIM {sum(ssims) / len(ssims):.4f}, min {min(ssims):.4f}"

    if rows:
        body.append(["whole corpus", "", "", whole("thumbnail"), whole("previewer")])
    header = ["file", "size", "progressive", "plain `thumbnail_buffer`", "previewer"]
    return table(header, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=Path("bench/.work/corpus"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args.corpus)
    print(json.dumps(result) if args.json else markdown(result))


if __name__ == "__main__":
    main()
