"""Check the peers' previews and score them against a full-decode reference.

    .venv/bin/python bench/quality.py CORPUS_DIR OUTPUTS_DIR

OUTPUTS_DIR holds one directory of previews per peer, named as the corpus
files. Prints one JSON object, a `results.Quality` per peer; the method is in
docs/benchmarks.md ("Quality").
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyvips
from results import Quality

WIDTH, HEIGHT = 300, 200
CENTRE_PEERS = ("thumbor", "image_filter", "previewer-centre", "pillow")


Plane = npt.NDArray[np.float64]  # one image plane, one float per pixel


def luma(image: Any) -> Plane:
    if image.hasalpha():
        image = image.flatten()
    grey = image.colourspace("b-w").cast("uchar")
    if grey.bands > 1:
        grey = grey[0]
    data = np.frombuffer(grey.write_to_memory(), dtype=np.uint8)
    return data.reshape(grey.height, grey.width).astype(np.float64)


def _gaussian(size: int = 11, sigma: float = 1.5) -> Plane:
    x = np.arange(size) - (size - 1) / 2
    kernel: Plane = np.exp(-(x**2) / (2 * sigma**2))
    normalised: Plane = kernel / kernel.sum()
    return normalised


_KERNEL = _gaussian()


def _blur(image: Plane) -> Plane:
    """Separable Gaussian filter, 'valid' region only."""
    rows = np.lib.stride_tricks.sliding_window_view(image, _KERNEL.size, axis=1) @ _KERNEL
    blurred: Plane = np.lib.stride_tricks.sliding_window_view(rows, _KERNEL.size, axis=0) @ _KERNEL
    return blurred


def ssim(a: Plane, b: Plane) -> float:
    """Mean structural similarity of two greyscale images of one size (0..255)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _blur(a), _blur(b)
    var_a = _blur(a * a) - mu_a**2
    var_b = _blur(b * b) - mu_b**2
    cov = _blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def covered_reference(body: bytes) -> Plane:
    """Luma of the full-size decode resized (lanczos3) to cover the target, uncropped."""
    full = pyvips.Image.new_from_buffer(body, "")  # no shrink-on-load: every pixel decoded
    scale = max(WIDTH / full.width, HEIGHT / full.height)
    cover_w = max(WIDTH, round(full.width * scale))
    cover_h = max(HEIGHT, round(full.height * scale))
    resized = full.resize(cover_w / full.width, vscale=cover_h / full.height, kernel="lanczos3")
    return luma(resized)


def best_ssim(reference: Plane, preview: Plane) -> float:
    """SSIM against the centre crop of `reference`, best over one-pixel shifts."""
    height, width = reference.shape
    left, top = (width - WIDTH) // 2, (height - HEIGHT) // 2
    best = -1.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            x, y = left + dx, top + dy
            if x < 0 or y < 0 or x + WIDTH > width or y + HEIGHT > height:
                continue
            best = max(best, ssim(reference[y : y + HEIGHT, x : x + WIDTH], preview))
    return best


def check(path: Path) -> tuple[str | None, Any]:
    """A problem with the preview at `path`, or None, and the decoded image."""
    try:
        image = pyvips.Image.new_from_file(str(path))
        image.avg()  # decode every pixel
    except pyvips.Error as exc:
        return f"does not decode: {exc.message.strip()}", None
    loader = image.get("vips-loader")
    if not loader.startswith("jpegload"):
        return f"not a JPEG ({loader})", image
    if (image.width, image.height) != (WIDTH, HEIGHT):
        return f"{image.width}x{image.height}, not {WIDTH}x{HEIGHT}", image
    return None, image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("outputs", type=Path)
    args = parser.parse_args()
    references: dict[str, Plane] = {}
    report: dict[str, Quality] = {}
    for peer_dir in sorted(p for p in args.outputs.iterdir() if p.is_dir()):
        problems: dict[str, str] = {}
        scores: dict[str, float] = {}
        for preview in sorted(peer_dir.glob("*.jpg")):
            problem, image = check(preview)
            if problem is not None:
                problems[preview.name] = problem
                continue
            if peer_dir.name not in CENTRE_PEERS:
                continue
            if preview.name not in references:
                body = (args.corpus / preview.name).read_bytes()
                references[preview.name] = covered_reference(body)
            scores[preview.name] = round(best_ssim(references[preview.name], luma(image)), 4)
        values = list(scores.values())
        report[peer_dir.name] = Quality(
            checked=len(list(peer_dir.glob("*.jpg"))),
            problems=problems,
            ssim=scores,
            ssim_mean=round(sum(values) / len(values), 4) if values else None,
            ssim_min=min(values) if values else None,
        )
    print(json.dumps({peer: asdict(q) for peer, q in report.items()}))
    if any(not math.isfinite(v) for r in report.values() for v in r.ssim.values()):
        raise SystemExit("SSIM gave a non-finite value")


if __name__ == "__main__":
    main()
