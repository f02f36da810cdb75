"""Where a crop goes to keep the faces in it: a pure function of boxes.

The rule, in order:

1. Each face is grown to the part of the head a preview should show: its
   box plus HEADROOM of its height above (hair), CHIN below and SIDES on
   each side. When that does not fit, the face with a 10% margin all round
   (TIGHT), and last the detector's box alone.
2. Every group of faces is a candidate whose grown boxes fit in the crop
   together: all the faces, or, when they do not fit, for each face the
   faces nearest to it, added nearest first while the group still fits.
3. The candidate that keeps the most face area wins (a large face outweighs
   several small ones in the background); between equal areas, the one with
   the larger margins; then the one nearer the image's centre.
4. The crop is centred on the winner's grown boxes, then moved inside the
   image. Along an axis where the crop is as long as the image it stays put.

A face larger than the crop even without margins (an extreme close-up) is
kept as well as it can be: the crop is centred on it.

No faces: `place` returns None and the attention analysis decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from previewer.render.geometry import Box, Size

HEADROOM = 0.45
"""Grown above a face, as a share of its height: the detector's box ends at
the forehead, and a crop through the hair looks like a mistake."""

CHIN = 0.2
"""Grown below a face, as a share of its height: the chin and the neck."""

SIDES = 0.15
"""Grown left and right, as a share of the face's width: the ears."""

TIGHT = 0.1
"""The margin all round a face when the full margins do not fit."""

MOST_FACES = 16
"""The largest faces considered; more (a crowd) would only cost time."""


@dataclass(frozen=True)
class _Span:
    """A box as float edges."""

    left: float
    top: float
    right: float
    bottom: float

    def union(self, other: _Span) -> _Span:
        return _Span(
            min(self.left, other.left),
            min(self.top, other.top),
            max(self.right, other.right),
            max(self.bottom, other.bottom),
        )

    def fits(self, crop: Size) -> bool:
        return self.right - self.left <= crop.width and self.bottom - self.top <= crop.height

    @property
    def centre(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2


# the margins tried, widest first: (above, below, each side), as shares of the face
_MARGINS = ((HEADROOM, CHIN, SIDES), (TIGHT, TIGHT, TIGHT), (0.0, 0.0, 0.0))


def place(image: Size, crop: Size, faces: Sequence[Box]) -> Box | None:
    """The box of size `crop` in `image` that keeps the most of `faces` (see above).

    `faces` are boxes in `image`'s pixels; `crop` must fit in `image`.
    Returns None when there are no faces.
    """
    if crop.width > image.width or crop.height > image.height:
        raise ValueError(f"a {crop.width}x{crop.height} crop does not fit {image}")
    if not faces:
        return None
    largest = sorted(faces, key=lambda f: (-f.width * f.height, f.top, f.left))[:MOST_FACES]
    best: tuple[float, int, float] | None = None
    chosen: _Span | None = None
    for rank, margins in enumerate(_MARGINS):
        grown = [_grown(face, *margins) for face in largest]
        for group in _groups(largest, grown, crop):
            span = _union([grown[i] for i in group])
            area = sum(largest[i].width * largest[i].height for i in group)
            score = (area, -rank, -_distance(span.centre, image))
            if best is None or score > best:
                best, chosen = score, span
    if chosen is None:  # not even the largest face fits: centre on it
        chosen = _grown(largest[0], 0.0, 0.0, 0.0)
    return _centred(chosen, image, crop)


def _grown(face: Box, above: float, below: float, side: float) -> _Span:
    return _Span(
        face.left - side * face.width,
        face.top - above * face.height,
        face.left + face.width + side * face.width,
        face.top + face.height + below * face.height,
    )


def _groups(faces: Sequence[Box], grown: Sequence[_Span], crop: Size) -> list[tuple[int, ...]]:
    """The candidate groups (indices into `faces`) whose grown boxes fit in `crop`."""
    everyone = tuple(range(len(faces)))
    if _union([grown[i] for i in everyone]).fits(crop):
        return [everyone]
    groups: list[tuple[int, ...]] = []
    for anchor in everyone:
        if not grown[anchor].fits(crop):
            continue
        centre = grown[anchor].centre
        nearest = sorted(
            (i for i in everyone if i != anchor),
            key=lambda i: (math.dist(centre, grown[i].centre), i),
        )
        group = [anchor]
        span = grown[anchor]
        for other in nearest:
            wider = span.union(grown[other])
            if wider.fits(crop):
                group.append(other)
                span = wider
        groups.append(tuple(sorted(group)))
    return groups


def _union(spans: Sequence[_Span]) -> _Span:
    span = spans[0]
    for other in spans[1:]:
        span = span.union(other)
    return span


def _distance(point: tuple[float, float], image: Size) -> float:
    return math.dist(point, (image.width / 2, image.height / 2))


def _centred(span: _Span, image: Size, crop: Size) -> Box:
    """The crop centred on `span`, moved inside the image."""
    x, y = span.centre
    left = min(max(0, round(x - crop.width / 2)), image.width - crop.width)
    top = min(max(0, round(y - crop.height / 2)), image.height - crop.height)
    return Box(left, top, crop.width, crop.height)
