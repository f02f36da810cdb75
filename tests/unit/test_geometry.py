"""previewer.geometry: EXIF orientation, cover size, centre crop and the pixel limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from previewer.errors import SourceTooLarge
from previewer.geometry import Box, Size, centre_crop, check_source_size, cover, oriented

# --- oriented ---------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [1, 2, 3, 4])
def test_orientations_without_a_quarter_turn_keep_the_size(orientation: int) -> None:
    assert oriented(Size(200, 100), orientation) == Size(200, 100)


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_quarter_turn_orientations_swap_width_and_height(orientation: int) -> None:
    assert oriented(Size(200, 100), orientation) == Size(100, 200)


@pytest.mark.parametrize("orientation", [0, -1, 9, 100])
def test_unknown_orientations_count_as_upright(orientation: int) -> None:
    assert oriented(Size(200, 100), orientation) == Size(200, 100)


# --- cover ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        # downscale: the side with the larger scale factor lands on the target
        (Size(1000, 500), Size(100, 100), Size(200, 100)),
        (Size(500, 1000), Size(100, 100), Size(100, 200)),
        (Size(1000, 500), Size(200, 50), Size(200, 100)),
        (Size(1000, 500), Size(50, 200), Size(400, 200)),
        # exact aspect: no crop needed
        (Size(1000, 500), Size(500, 250), Size(500, 250)),
        (Size(640, 480), Size(320, 240), Size(320, 240)),
        (Size(300, 300), Size(300, 300), Size(300, 300)),
        # enlargement: 1024x504 -> 2000x1000 scales by 1000/504, width 2031.7 -> 2032
        (Size(1024, 504), Size(2000, 1000), Size(2032, 1000)),
        (Size(10, 10), Size(100, 50), Size(100, 100)),
        (Size(1, 1), Size(4096, 4096), Size(4096, 4096)),
        # extreme aspect ratios
        (Size(10000, 1), Size(100, 100), Size(1_000_000, 100)),
        (Size(1, 10000), Size(100, 100), Size(100, 1_000_000)),
        (Size(10000, 1), Size(1, 1), Size(10000, 1)),
        (Size(1, 10000), Size(1, 1), Size(1, 10000)),
    ],
)
def test_cover(source: Size, target: Size, expected: Size) -> None:
    assert cover(source, target) == expected


def test_cover_enlarges_small_sources() -> None:
    covered = cover(Size(1024, 504), Size(2000, 1000))
    assert covered.height == 1000
    assert covered.width >= 2000
    assert covered.width > 1024


# --- centre_crop ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("covered", "target", "expected"),
    [
        (Size(200, 100), Size(100, 100), Box(50, 0, 100, 100)),
        (Size(100, 200), Size(100, 100), Box(0, 50, 100, 100)),
        (Size(100, 100), Size(100, 100), Box(0, 0, 100, 100)),
        (Size(101, 100), Size(100, 100), Box(0, 0, 100, 100)),
        (Size(103, 100), Size(100, 100), Box(1, 0, 100, 100)),
        (Size(2032, 1000), Size(2000, 1000), Box(16, 0, 2000, 1000)),
    ],
)
def test_centre_crop(covered: Size, target: Size, expected: Box) -> None:
    assert centre_crop(covered, target) == expected


def test_centre_crop_margins_differ_by_at_most_one() -> None:
    covered, target = Size(307, 211), Size(100, 100)
    box = centre_crop(covered, target)
    right = covered.width - box.left - box.width
    bottom = covered.height - box.top - box.height
    assert abs(right - box.left) <= 1
    assert abs(bottom - box.top) <= 1


# --- check_source_size ------------------------------------------------------------


def test_size_at_the_pixel_limit_is_allowed() -> None:
    check_source_size(Size(100, 100), 10_000)
    check_source_size(Size(1, 1), 1)


@pytest.mark.parametrize("size", [Size(101, 100), Size(100, 101), Size(10_001, 1), Size(1, 10_001)])
def test_size_over_the_pixel_limit_is_refused(size: Size) -> None:
    with pytest.raises(SourceTooLarge) as info:
        check_source_size(size, 10_000)
    assert "10000" in info.value.public_message


def test_pixel_bomb_is_refused() -> None:
    with pytest.raises(SourceTooLarge):
        check_source_size(Size(60_000, 60_000), 50_000_000)


@pytest.mark.parametrize("size", [Size(0, 0), Size(0, 100), Size(100, 0), Size(-1, 100)])
def test_empty_size_is_refused(size: Size) -> None:
    with pytest.raises(SourceTooLarge):
        check_source_size(size, 10**12)


# --- properties -------------------------------------------------------------------

sizes = st.builds(Size, st.integers(1, 20_000), st.integers(1, 20_000))
targets = st.builds(Size, st.integers(1, 4096), st.integers(1, 4096))


@given(source=sizes, target=targets)
def test_cover_covers_the_target_with_one_side_equal(source: Size, target: Size) -> None:
    covered = cover(source, target)
    assert covered.width >= target.width
    assert covered.height >= target.height
    assert covered.width == target.width or covered.height == target.height
    # the aspect ratio is kept up to rounding of the side that is not the target's:
    # |cw/ch - sw/sh| * ch * sh <= half a pixel times the longer source side
    assert abs(covered.width * source.height - covered.height * source.width) <= (
        max(source.width, source.height) / 2
    )


@given(source=sizes, target=targets)
def test_centre_crop_box_lies_inside_the_covered_size(source: Size, target: Size) -> None:
    covered = cover(source, target)
    box = centre_crop(covered, target)
    assert (box.width, box.height) == (target.width, target.height)
    assert box.left >= 0
    assert box.top >= 0
    assert box.left + box.width <= covered.width
    assert box.top + box.height <= covered.height
    # centred: the margins on either side differ by at most a pixel
    assert abs((covered.width - box.left - box.width) - box.left) <= 1
    assert abs((covered.height - box.top - box.height) - box.top) <= 1


@given(source=sizes, orientation=st.integers(1, 8))
def test_orienting_twice_is_the_identity(source: Size, orientation: int) -> None:
    turned = oriented(source, orientation)
    assert turned.pixels == source.pixels
    assert oriented(turned, orientation) == source
