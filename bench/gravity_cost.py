"""Cost of one fill render, gravity centre against attention, in process (no HTTP).

    .venv/bin/python bench/gravity_cost.py [--repeat N] [--json]

Renders seeded photo-like JPEGs made here (gradients, noise and a bright
off-centre subject) with previewer's own imaging pipeline, alternating the
two gravities render by render so that both see the same machine load, and
prints the median milliseconds per render on one thread, the ratio
attention/centre for each source size, and whether attention chose the
bright subject.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import pyvips

from previewer import imaging

SOURCES = [(3000, 2000), (4000, 3000), (2000, 3000), (6000, 4000)]
TARGET = (300, 200)


def photo_jpeg(width: int, height: int, seed: int) -> bytes:
    """A photo-like JPEG: smooth gradients, seeded noise, a bright disc at 2/3 across."""
    xyz = pyvips.Image.xyz(width, height)
    xs, ys = xyz[0], xyz[1]
    red = xs * (255.0 / width)
    green = ys * (255.0 / height)
    blue = (xs + ys) * (128.0 / (width + height)) + 64
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, seed=seed)
    image = red.bandjoin([green, blue]) + noise.bandjoin([noise, noise])
    cx, cy, r = width * 2 // 3, height // 2, min(width, height) // 6
    disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < r * r
    image = disc.ifthenelse([250, 240, 60], image).cast("uchar").copy(interpretation="srgb")
    data: bytes = image.jpegsave_buffer(Q=85)
    return data


def subject_share(body: bytes) -> float:
    """How much of the preview is the bright yellow subject (0..1)."""
    image = pyvips.Image.new_from_buffer(body, "")
    yellow = (image[0] > 200) & (image[1] > 200) & (image[2] < 120)
    return float(yellow.avg()) / 255


def measure(repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n, (width, height) in enumerate(SOURCES):
        body = photo_jpeg(width, height, seed=n + 1)
        jobs = {
            gravity: imaging.RenderJob(TARGET[0], TARGET[1], gravity, 80, 100_000_000)
            for gravity in ("centre", "attention")
        }
        times: dict[str, list[float]] = {gravity: [] for gravity in jobs}
        shares = {
            gravity: subject_share(imaging.render(body, job).body) for gravity, job in jobs.items()
        }
        for _ in range(repeat):
            for gravity, job in jobs.items():
                started = time.perf_counter()
                imaging.render(body, job)
                times[gravity].append((time.perf_counter() - started) * 1000)
        centre = statistics.median(times["centre"])
        attention = statistics.median(times["attention"])
        rows.append(
            {
                "source": f"{width}x{height}",
                "target": f"{TARGET[0]}x{TARGET[1]}",
                "centre_ms": round(centre, 1),
                "attention_ms": round(attention, 1),
                "ratio": round(attention / centre, 3),
                "subject_share_centre": round(shares["centre"], 3),
                "subject_share_attention": round(shares["attention"], 3),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    imaging.configure()
    rows = measure(args.repeat)
    if args.json:
        print(json.dumps({"rows": rows, "libvips": pyvips.version(0) * 100 + pyvips.version(1)}))
        return
    print(
        "| source | target | centre ms | attention ms | attention/centre "
        "| subject in crop (centre / attention) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['source']} | {row['target']} | {row['centre_ms']} | {row['attention_ms']} "
            f"| {row['ratio']:.2f} | {row['subject_share_centre']:.2f} "
            f"/ {row['subject_share_attention']:.2f} |"
        )


if __name__ == "__main__":
    main()
