"""Where an attention crop goes: a pure function of 8-bit pixels, in numpy.

The analysis is libvips's `smartcrop(interesting="attention")`, the one
previewer used before: summarise the image to about 32x32, score each cell by
its edges (Sobel on CIE lightness), its likeness to skin (the angle of its RGB
vector to a skin tone's, as smartcrop.js does) and its chroma (CIE LCh), the
last two only where the cell is not black; blur the scores with a Gaussian as
wide as a tenth of the crop's diagonal on the summary; centre the crop on the
best cell and keep it inside the image.

libvips builds some 25 operations for this, a fixed 6-7 ms of CPU per render
whatever the image's size. Here it is a few dozen array operations on the
pixels that the fill has in memory anyway, about 1 ms (docs/performance.md).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

from previewer.render.geometry import Box, Size

GRID = 32
"""The summary has at most this many cells a side: the crop is placed to one
cell, a 32nd of the image."""

SAMPLES = 8
"""Pixels each way a cell's mean is taken from, at most: an image larger than
GRID x SAMPLES a side is sampled on a regular grid, so the analysis costs the
same for a 4000x3000 preview as for a 300x200 one."""

TIE = 0.05
"""Cells scoring within this share of the score range (best less worst) of
the best share the choice (`_best_cell`). Without it, two regions scoring
within 1% of each other (the top and the bottom of a portrait) are told
apart by encoding noise, and the same photo as JPEG and as WebP gets crops
from opposite ends."""

_SKIN = np.array([0.78, 0.57, 0.44])
"""smartcrop.js's skin tone, as an RGB direction."""

_DARK = 5.0
"""Cells with CIE L* at or below this are black: no skin, no colour."""

# sRGB (D65) to CIE XYZ, each row divided by the white point's component.
_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
) / np.array([[0.95047], [1.0], [1.08883]])

_Floats = NDArray[np.float64]


def place(pixels: NDArray[np.uint8], crop: Size) -> Box:
    """The box of size `crop` that the attention analysis picks in `pixels`.

    `pixels` is height x width x bands, 8-bit: one or two bands are grey
    (with alpha), three or four are sRGB (with alpha); alpha is ignored.
    `crop` must fit inside the image.
    """
    height, width = pixels.shape[:2]
    if crop.width > width or crop.height > height or crop.width < 1 or crop.height < 1:
        raise ValueError(f"a {crop.width}x{crop.height} crop does not fit {width}x{height}")
    if (crop.width, crop.height) == (width, height):
        return Box(0, 0, width, height)
    cells = _summary(pixels)
    rows, cols = cells.shape[:2]
    scores = _scores(cells)
    xscale, yscale = cols / width, rows / height
    sigma = round(max(math.hypot(crop.width * xscale, crop.height * yscale) / 10, 1.0), 2)
    blurred = _blur_matrix(rows, sigma) @ scores @ _blur_matrix(cols, sigma).T
    row, col = _best_cell(blurred)
    # libvips's placement: the crop's centre on the best cell's first pixel
    left = _clip(col / xscale - crop.width / 2, width - crop.width)
    top = _clip(row / yscale - crop.height / 2, height - crop.height)
    return Box(left, top, crop.width, crop.height)


def _best_cell(scores: _Floats) -> tuple[float, float]:
    """Where the best score is, in cells (row, column), to a fraction of a cell.

    The cells scoring within TIE of the score range of the best are weighed by
    how far they rise above that line, and their centroid is the answer. A
    cell just entering or leaving the band weighs nothing, so the answer moves
    smoothly with the scores: encoding noise moves it a fraction of a cell,
    where picking the single best cell jumps whole cells. Two peaks of about
    the same height pull the answer between them rather than to either.
    """
    best = float(scores.max())
    line = best - TIE * (best - float(scores.min()))
    weights = np.clip(scores - line, 0.0, None)
    total = float(weights.sum())
    if total <= 0.0:  # every cell scores the same
        return (scores.shape[0] - 1) / 2, (scores.shape[1] - 1) / 2
    # as offsets from the best cell: a band of one cell gives that cell exactly
    top, left = np.unravel_index(int(np.argmax(scores)), scores.shape)
    rows = np.arange(scores.shape[0], dtype=np.float64) - top
    cols = np.arange(scores.shape[1], dtype=np.float64) - left
    row = int(top) + float(weights.sum(axis=1) @ rows) / total
    col = int(left) + float(weights.sum(axis=0) @ cols) / total
    return row, col


def _clip(position: float, most: int) -> int:
    return min(max(0, round(position)), most)


def _summary(pixels: NDArray[np.uint8]) -> _Floats:
    """The mean RGB of each cell of an at most GRID x GRID grid, as floats 0-255."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    colour = pixels[:, :, :3] if pixels.shape[2] >= 3 else pixels[:, :, :1]
    # a large image is sampled: SAMPLES pixels a cell each way are plenty for a mean
    rows_step = max(1, colour.shape[0] // (GRID * SAMPLES))
    cols_step = max(1, colour.shape[1] // (GRID * SAMPLES))
    colour = colour[::rows_step, ::cols_step]
    height, width = colour.shape[:2]
    rows, cols = min(GRID, height), min(GRID, width)
    row_edges = (np.arange(rows) * height) // rows
    col_edges = (np.arange(cols) * width) // cols
    # integer sums (a cell of a 8-bit image never reaches 2**32), columns first: fastest
    sums = np.add.reduceat(colour, col_edges, axis=1, dtype=np.uint32)
    sums = np.add.reduceat(sums, row_edges, axis=0)
    counts = np.outer(np.diff(np.append(row_edges, height)), np.diff(np.append(col_edges, width)))
    cells: _Floats = sums / counts[:, :, np.newaxis]
    if cells.shape[2] == 1:
        cells = np.repeat(cells, 3, axis=2)
    return cells


def _scores(cells: _Floats) -> _Floats:
    """Edges + skin + chroma for each cell of the summary."""
    lightness, a, b = _lab(cells)
    padded = np.pad(lightness, 1, mode="edge")
    across = (padded[:-2, 2:] + 2 * padded[1:-1, 2:] + padded[2:, 2:]) - (
        padded[:-2, :-2] + 2 * padded[1:-1, :-2] + padded[2:, :-2]
    )
    down = (padded[2:, :-2] + 2 * padded[2:, 1:-1] + padded[2:, 2:]) - (
        padded[:-2, :-2] + 2 * padded[:-2, 1:-1] + padded[:-2, 2:]
    )
    edges = np.abs(across) + np.abs(down)
    lengths = np.sqrt(np.sum(cells * cells, axis=2, keepdims=True))
    directions = cells / np.maximum(lengths, 1e-9)
    skin = 100.0 - 100.0 * np.sqrt(np.sum((directions - _SKIN) ** 2, axis=2))
    chroma = np.hypot(a, b)
    lit = lightness > _DARK
    scores: _Floats = edges + np.where(lit, skin + chroma, 0.0)
    return scores


def _lab(cells: _Floats) -> tuple[_Floats, _Floats, _Floats]:
    """CIE L*a*b* (D65) of sRGB cells."""
    srgb = cells / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _TO_XYZ.T
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    lightness = 116.0 * f[:, :, 1] - 16.0
    a = 500.0 * (f[:, :, 0] - f[:, :, 1])
    b = 200.0 * (f[:, :, 1] - f[:, :, 2])
    return lightness, a, b


@functools.lru_cache(maxsize=64)
def _blur_matrix(size: int, sigma: float) -> _Floats:
    """The Gaussian blur of a line of `size` cells as a matrix, edges repeated.

    Cached: a service makes the same few preview shapes over and over. The
    matrix is read-only.
    """
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    matrix = np.zeros((size, size))
    rows = np.arange(size)
    for offset, weight in zip(offsets, weights, strict=True):
        matrix[rows, np.clip(rows + offset, 0, size - 1)] += weight
    matrix.flags.writeable = False
    return matrix
