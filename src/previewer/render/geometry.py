"""Fill and fit geometry: oriented size, cover and fit sizes, crop regions, pixel limits.

Pure arithmetic; imports nothing that touches the network, the disk or libvips.
`render/imaging.py` works every number out here first, then applies it.

A fill scales the source to cover the target and crops the overflow. For a
source of about the target's shape, the covering image is the cheap way: it
is at most a few times the target's size. For a thin source (940x2 asked at
1000x1000) it is not: the cover would be 470,000x1000. Such a fill instead
picks the region of the source that the preview shows (`fill_region`), in
source coordinates, and scales only that region: the work is bounded by the
output, whatever the aspect ratio.

A fit scales the whole source into the target box (`fit`): nothing is cropped,
and the only image it makes is the preview itself, so a thin source costs no
more than its output either.
"""

from __future__ import annotations

from dataclasses import dataclass

from previewer.errors import SourceTooLarge

# EXIF orientations 5-8 turn the image a quarter, swapping width and height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})

COVER_FACTOR = 4
"""A cover of more than this many times the target's pixels is not made: the
fill crops a region of the source instead."""

MAX_INTERMEDIATE_PIXELS = 4 * 4096 * 4096
"""No image a render makes in memory may have more pixels than this (about
200 MB at 8-bit RGB), or than COVER_FACTOR times the preview when the
operator allows previews beyond 4096x4096; a render that would need one is
refused as too large (a fit never does: its only image is its preview)."""

SEARCH_SIDE = 256
"""The longer side of the image the attention search runs on for a region
fill; libvips's search looks at a 32x32 summary, so more would be wasted."""

_MIN_SEARCH_SIDE = 32


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int


def oriented(size: Size, orientation: int) -> Size:
    """The size after applying an EXIF orientation (1-8; anything else is 1)."""
    if orientation in _QUARTER_TURNS:
        return Size(size.height, size.width)
    return size


def cover(source: Size, target: Size) -> Size:
    """The smallest aspect-preserving scale of `source` that covers `target`.

    One side equals the target's; the other is at least the target's. Sources
    smaller than the target are enlarged.
    """
    scale = max(target.width / source.width, target.height / source.height)
    return Size(
        max(target.width, round(source.width * scale)),
        max(target.height, round(source.height * scale)),
    )


def fit(source: Size, box: Size) -> Size:
    """The size of `source` scaled by s = min(box.width / w, box.height / h).

    The side that limits the scale equals the box's; the other is w·s (or
    h·s) rounded to the nearest whole pixel (halves up), at least 1 and at
    most the box's. Sources smaller than the box are enlarged. Exact integer
    arithmetic: no float rounding can push a side past the box.
    """
    if source.width * box.height >= source.height * box.width:  # width limits
        height = (2 * source.height * box.width + source.width) // (2 * source.width)
        return Size(box.width, min(box.height, max(1, height)))
    width = (2 * source.width * box.height + source.height) // (2 * source.height)
    return Size(min(box.width, max(1, width)), box.height)


def centre_crop(covered: Size, target: Size) -> Box:
    """The target-sized box in the middle of `covered`."""
    return Box(
        left=(covered.width - target.width) // 2,
        top=(covered.height - target.height) // 2,
        width=target.width,
        height=target.height,
    )


def jpeg_shrink(source: Size, covered: Size) -> int:
    """The largest JPEG load scale (1, 2, 4 or 8) whose result still covers `covered`."""
    for shrink in (8, 4, 2):
        if source.width // shrink >= covered.width and source.height // shrink >= covered.height:
            return shrink
    return 1


def check_source_size(size: Size, max_pixels: int) -> None:
    """Refuse a source over the pixel limit before it is decoded."""
    if size.width < 1 or size.height < 1:
        raise SourceTooLarge("The source image has no pixels.", detail=f"source size {size}")
    if size.pixels > max_pixels:
        raise SourceTooLarge(
            f"The source image has more than {max_pixels} pixels.",
            detail=f"source is {size.width}x{size.height}",
        )


def needs_region(source: Size, target: Size) -> bool:
    """Whether a fill must crop a region of the source rather than make the cover."""
    return cover(source, target).pixels > COVER_FACTOR * target.pixels


def fill_region(source: Size, target: Size) -> Size:
    """The size of the largest region of `source` with the target's aspect ratio.

    At least one pixel each way: a 1x50000 source asked at 1000x1000 shows
    one of its pixels, enlarged.
    """
    width = min(source.width, max(1, round(source.height * target.width / target.height)))
    height = min(source.height, max(1, round(source.width * target.height / target.width)))
    return Size(width, height)


def centred(outer: Size, inner: Size) -> Box:
    """`inner` placed in the middle of `outer`."""
    return Box((outer.width - inner.width) // 2, (outer.height - inner.height) // 2, *_wh(inner))


def _wh(size: Size) -> tuple[int, int]:
    return size.width, size.height


def search_size(source: Size, region: Size) -> tuple[Size, Size]:
    """The image the attention search runs on for a region fill, and its window.

    The source is scaled so that its longer side is SEARCH_SIDE (never
    enlarged), each side kept at 32 pixels at least (a thin source is
    stretched across: only the position along its length matters); the
    window is the region scaled the same way, at least one pixel.
    """
    scale = min(1.0, SEARCH_SIDE / max(source.width, source.height))
    search = Size(
        max(_MIN_SEARCH_SIDE, round(source.width * scale)),
        max(_MIN_SEARCH_SIDE, round(source.height * scale)),
    )
    window = Size(
        min(search.width, max(1, round(region.width * search.width / source.width))),
        min(search.height, max(1, round(region.height * search.height / source.height))),
    )
    return search, window


def region_at(source: Size, region: Size, search: Size, found: Box) -> Box:
    """The region of `source` under the window the search `found` in the `search` image.

    The region is centred on where the window's centre falls in the source,
    and kept inside the source.
    """
    centre_x = (found.left + found.width / 2) * source.width / search.width
    centre_y = (found.top + found.height / 2) * source.height / search.height
    left = min(max(0, round(centre_x - region.width / 2)), source.width - region.width)
    top = min(max(0, round(centre_y - region.height / 2)), source.height - region.height)
    return Box(left, top, region.width, region.height)


def unoriented(box: Box, size: Size, orientation: int) -> Box:
    """Where `box`, in the upright image of `size`, lies in the stored (unrotated) image.

    EXIF orientation says how the stored image is turned or flipped for
    display; a region chosen upright is extracted from the stored pixels
    before any turning, which keeps the load sequential.
    """
    right, bottom = box.left + box.width, box.top + box.height
    width, height = size.width, size.height
    # (left, top, right, bottom) of the box in stored coordinates, per orientation
    edges = {
        2: (width - right, box.top, width - box.left, bottom),
        3: (width - right, height - bottom, width - box.left, height - box.top),
        4: (box.left, height - bottom, right, height - box.top),
        5: (box.top, box.left, bottom, right),
        6: (box.top, width - right, bottom, width - box.left),
        7: (height - bottom, width - right, height - box.top, width - box.left),
        8: (height - bottom, box.left, height - box.top, right),
    }.get(orientation, (box.left, box.top, right, bottom))
    left, top, right, bottom = edges
    return Box(left, top, right - left, bottom - top)


def check_intermediate(size: Size, target: Size) -> None:
    """Refuse a render of `target` that would hold an image of `size` (see
    MAX_INTERMEDIATE_PIXELS)."""
    if size.pixels > max(MAX_INTERMEDIATE_PIXELS, COVER_FACTOR * target.pixels):
        raise SourceTooLarge(
            "The preview would need too large an intermediate image.",
            detail=f"intermediate {size.width}x{size.height}",
        )
