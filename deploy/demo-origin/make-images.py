"""Writes the demo origin's images (deploy/demo-origin/images/) with libvips.

    .venv/bin/python deploy/demo-origin/make-images.py

Seeded noise, so a run makes the same pictures; the files are committed, and
kept small (a few KB each): they only have to be real images of each kind the
service reads, in landscape, portrait and square shapes.
"""

from __future__ import annotations

from pathlib import Path

import pyvips

HERE = Path(__file__).resolve().parent / "images"


def scene(width: int, height: int, seed: int, sigma: float = 10) -> pyvips.Image:
    """Gradients, seeded noise and a bright disc off-centre (a subject to crop around)."""
    xyz = pyvips.Image.xyz(width, height)
    xs, ys = xyz[0], xyz[1]
    red = xs * (255.0 / width)
    green = ys * (255.0 / height)
    blue = (xs + ys) * (128.0 / (width + height)) + 64
    noise = pyvips.Image.gaussnoise(width, height, sigma=sigma, seed=seed)
    image = red.bandjoin([green, blue]) + noise.bandjoin([noise, noise])
    cx, cy, r = width * 2 // 3, height // 2, min(width, height) // 5
    disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < r * r
    return disc.ifthenelse([250, 240, 60], image).cast("uchar").copy(interpretation="srgb")


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    scene(480, 320, seed=1).jpegsave(str(HERE / "landscape.jpg"), Q=70, strip=True)
    scene(240, 360, seed=2).webpsave(str(HERE / "portrait.webp"), Q=60, strip=True)
    badge = scene(160, 160, seed=3, sigma=0)  # PNG: no noise keeps it small
    xyz = pyvips.Image.xyz(160, 160)
    ring = (((xyz[0] - 80) ** 2 + (xyz[1] - 80) ** 2) < 75 * 75).ifthenelse(255, 0)
    badge.bandjoin(ring.cast("uchar")).copy(interpretation="srgb").pngsave(
        str(HERE / "badge.png"), compression=9, strip=True
    )
    for path in sorted(HERE.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
