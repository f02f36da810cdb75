"""Per-file render time and SSIM: plain libvips thumbnail against previewer's pipeline.

    .venv/bin/python bench/fastpath.py [CORPUS_DIR]

For each photo of the benchmark corpus (built by `make bench`, default
bench/.work/corpus), times one 300x200 centre fill made with a plain
`pyvips.Image.thumbnail_buffer` and one made with `previewer.imaging.render`
(which takes the DC-only path for large progressive JPEGs), best of three,
and scores both against bench/quality.py's full-decode reference. Run with
VIPS_CONCURRENCY=1 for one-thread figures. Prints a Markdown table.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyvips
from quality import _luma, best_ssim, covered_reference

from previewer import imaging


def _best_of_three(make: Callable[[], bytes]) -> tuple[bytes, float]:
    times, body = [], b""
    for _ in range(3):
        started = time.perf_counter()
        body = make()
        times.append((time.perf_counter() - started) * 1000)
    return body, min(times)


def main() -> None:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/.work/corpus")
    photos = json.loads((corpus / "manifest.json").read_text())["photos"]
    imaging.configure()
    job = imaging.RenderJob(300, 200, "centre", 80, 10**9)
    print("| file | size | progressive | thumbnail ms | SSIM | previewer ms | SSIM |")
    print("|---|---|---|---|---|---|---|")
    totals = [0.0, 0.0]
    scores: list[list[float]] = [[], []]
    for photo in photos:
        body = (corpus / photo["file"]).read_bytes()
        reference = covered_reference(body)
        plain, plain_ms = _best_of_three(
            lambda b=body: pyvips.Image.thumbnail_buffer(
                b, 300, height=200, crop="centre"
            ).jpegsave_buffer(Q=80)
        )
        ours, ours_ms = _best_of_three(lambda b=body: imaging.render(b, job).body)
        plain_ssim = best_ssim(reference, _luma(pyvips.Image.new_from_buffer(plain, "")))
        ours_ssim = best_ssim(reference, _luma(pyvips.Image.new_from_buffer(ours, "")))
        totals[0] += plain_ms
        totals[1] += ours_ms
        scores[0].append(plain_ssim)
        scores[1].append(ours_ssim)
        print(
            f"| {photo['file']} | {photo['width']}x{photo['height']} | {photo['progressive']} "
            f"| {plain_ms:.1f} | {plain_ssim:.4f} | {ours_ms:.1f} | {ours_ssim:.4f} |"
        )
    print(
        f"| all | | | {totals[0]:.0f} | mean {sum(scores[0]) / len(scores[0]):.4f}, "
        f"min {min(scores[0]):.4f} | {totals[1]:.0f} | mean {sum(scores[1]) / len(scores[1]):.4f}, "
        f"min {min(scores[1]):.4f} |"
    )


if __name__ == "__main__":
    main()
