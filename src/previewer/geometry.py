"""Fill geometry: oriented size, cover size, centre crop box, pixel limits.

Pure arithmetic; imports nothing that touches the network, the disk or libvips.
`imaging.py` works every number out here first, then applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from previewer.errors import SourceTooLarge

# EXIF orientations 5-8 turn the image a quarter, swapping width and height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


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
