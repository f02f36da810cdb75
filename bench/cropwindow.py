"""Crop windows of fill previews: where a preview lies in its source, and what it keeps.

Pure arithmetic on numpy arrays and boxes (bench/crops.py does the I/O). Boxes are
(left, top, width, height) in pixels of the upright source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.float32]  # height x width

MARGIN = 0.10  # a face is kept when its box grown by this share on each side is inside
AGREE = 0.02  # two windows agree when their offsets differ by at most this share of them


@dataclass(frozen=True)
class Window:
    """A crop window in source pixels (floats: the cover scale rarely divides evenly)."""

    left: float
    top: float
    width: float
    height: float


def find_offset(cover: Pixels, preview: Pixels) -> tuple[int, int]:
    """(left, top) in `cover` where `preview` differs least (mean absolute difference).

    `cover` is at least as large as `preview`; ties go to the smaller offset.
    """
    ch, cw = cover.shape[:2]
    ph, pw = preview.shape[:2]
    if ch < ph or cw < pw:
        raise ValueError(f"cover {cw}x{ch} is smaller than the preview {pw}x{ph}")
    best = (np.inf, 0, 0)
    for top in range(ch - ph + 1):
        for left in range(cw - pw + 1):
            diff = float(np.abs(cover[top : top + ph, left : left + pw] - preview).mean())
            if diff < best[0]:
                best = (diff, left, top)
    return best[1], best[2]


def source_window(
    offset: tuple[int, int],
    target: tuple[int, int],
    cover: tuple[int, int],
    source: tuple[int, int],
) -> Window:
    """The window of `target` size at `offset` in the cover, in source pixels."""
    sx, sy = source[0] / cover[0], source[1] / cover[1]
    return Window(offset[0] * sx, offset[1] * sy, target[0] * sx, target[1] * sy)


def grown(face: Sequence[int]) -> Window:
    left, top, width, height = face
    return Window(
        left - MARGIN * width,
        top - MARGIN * height,
        width * (1 + 2 * MARGIN),
        height * (1 + 2 * MARGIN),
    )


def kept(face: Sequence[int], window: Window, source: tuple[int, int]) -> bool:
    """Whether the grown face box, clipped to the source (a face at the edge has no
    margin to give there), lies inside `window`."""
    box = grown(face)
    left, top = max(box.left, 0.0), max(box.top, 0.0)
    right = min(box.left + box.width, float(source[0]))
    bottom = min(box.top + box.height, float(source[1]))
    slack = 1e-6
    return (
        left >= window.left - slack
        and top >= window.top - slack
        and right <= window.left + window.width + slack
        and bottom <= window.top + window.height + slack
    )


def ceiling(
    faces: Sequence[Sequence[int]], source: tuple[int, int], window_size: tuple[float, float]
) -> int:
    """The most faces any window of `window_size` sliding along the free axis keeps whole.

    Only offsets where an edge meets a grown face's edge can change the count, so
    those are tried, plus both ends.
    """
    width, height = window_size
    horizontal = width < source[0] - 1e-6
    size = width if horizontal else height
    span = max((source[0] - width) if horizontal else (source[1] - height), 0.0)
    candidates = {0.0, span}
    for face in faces:
        box = grown(face)
        start, length = (box.left, box.width) if horizontal else (box.top, box.height)
        candidates |= {start, start + length - size}
    best = 0
    for at in candidates:
        at = min(max(at, 0.0), span)
        window = Window(at, 0.0, width, height) if horizontal else Window(0.0, at, width, height)
        best = max(best, sum(kept(face, window, source) for face in faces))
    return best


def agree(a: Window, b: Window) -> bool:
    """Whether two windows of one preview lie within AGREE of the window apart."""
    return abs(a.left - b.left) <= AGREE * a.width and abs(a.top - b.top) <= AGREE * a.height
