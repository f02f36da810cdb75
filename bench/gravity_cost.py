"""Cost of one fill render, gravity centre against attention, in process (no HTTP).

    .venv/bin/python bench/gravity_cost.py [--repeat N] [--json]

Renders seeded photo-like JPEGs made here (gradients, noise and a bright
off-centre subject) with previewer's own imaging pipeline, alternating the
two gravities render by render so that both see the same machine load, and
prints the median CPU milliseconds per render (process time, all libvips
threads: steadier than wall time on a shared machine), the ratio
attention/centre for each source, and how much of each preview is the bright
subject (the attention crop should keep it). One source carries an embedded
sRGB profile and one a Display P3 profile: the cost of colour management.

Run it against another checkout's code with PYTHONPATH=that/src to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import pyvips

from previewer.render import imaging

SOURCES = [(3000, 2000, ""), (4000, 3000, ""), (2000, 3000, ""), (6000, 4000, "")]
SOURCES += [(4000, 3000, "srgb"), (4000, 3000, "p3")]
TARGET = (300, 200)


def photo_jpeg(width: int, height: int, seed: int, profile: str = "") -> bytes:
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
    if profile:  # libvips's built-in profiles: the pixels are converted and it is embedded
        image = image.icc_transform(profile, input_profile="srgb")
    data: bytes = image.jpegsave_buffer(Q=85)
    return data


def subject_share(body: bytes) -> float:
    """How much of the preview is the bright yellow subject (0..1)."""
    image = pyvips.Image.new_from_buffer(body, "")
    yellow = (image[0] > 200) & (image[1] > 200) & (image[2] < 120)
    return float(yellow.avg()) / 255


def measure(repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n, (width, height, profile) in enumerate(SOURCES):
        body = photo_jpeg(width, height, seed=n + 1, profile=profile)
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
                started = time.process_time()
                imaging.render(body, job)
                times[gravity].append((time.process_time() - started) * 1000)
        centre = statistics.median(times["centre"])
        attention = statistics.median(times["attention"])
        rows.append(
            {
                "source": f"{width}x{height}" + (f" {profile}" if profile else ""),
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
        "| source | target | centre CPU ms | attention CPU ms | attention/centre "
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
