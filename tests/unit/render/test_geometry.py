"""previewer.render.geometry: EXIF orientation, cover size, crop boxes and regions, pixel limits."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from previewer.errors import SourceTooLarge
from previewer.render.geometry import (
    COVER_FACTOR,
    MAX_INTERMEDIATE_PIXELS,
    Box,
    Size,
    centre_crop,
    centred,
    check_intermediate,
    check_source_size,
    cover,
    fill_region,
    fit,
    needs_region,
    oriented,
    region_at,
    search_size,
    unoriented,
)

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


# --- thin sources: regions instead of covers ----------------------------------------


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (Size(940, 2), Size(1000, 1000), True),  # the cover would be 470,000x1000
        (Size(1, 50_000), Size(4096, 4096), True),
        (Size(50_000, 1), Size(300, 200), True),
        (Size(3000, 2000), Size(300, 200), False),
        (Size(4000, 3000), Size(300, 200), False),
        (Size(2000, 3000), Size(300, 200), False),  # portrait to landscape: 2.25 times
        (Size(64, 48), Size(2000, 1000), False),  # enlarged, about the same shape
    ],
)
def test_needs_region(source: Size, target: Size, expected: bool) -> None:
    assert needs_region(source, target) is expected


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (Size(940, 2), Size(1000, 1000), Size(2, 2)),
        (Size(1, 50_000), Size(4096, 4096), Size(1, 1)),
        (Size(50_000, 1), Size(300, 200), Size(2, 1)),
        (Size(50_000, 1000), Size(100, 100), Size(1000, 1000)),
        (Size(1, 50_000), Size(1, 4096), Size(1, 4096)),
        (Size(4000, 3000), Size(300, 200), Size(4000, 2667)),
    ],
)
def test_fill_region(source: Size, target: Size, expected: Size) -> None:
    assert fill_region(source, target) == expected


def test_centred() -> None:
    assert centred(Size(940, 2), Size(2, 2)) == Box(469, 0, 2, 2)
    assert centred(Size(1, 50_000), Size(1, 1)) == Box(0, 24_999, 1, 1)


def test_search_image_is_small_and_at_least_32_pixels_each_way() -> None:
    search, window = search_size(Size(1, 50_000), Size(1, 1))
    assert search == Size(32, 256)
    assert window == Size(32, 1)
    search, window = search_size(Size(6000, 4000), Size(4000, 4000))
    assert search == Size(256, 171)
    assert window == Size(171, 171)


def test_region_at_maps_the_window_centre_back_to_the_source() -> None:
    source, region = Size(50_000, 10), Size(10, 10)
    search = Size(256, 32)
    # the last column of the search image covers source columns 49,804 to 50,000
    assert region_at(source, region, search, Box(255, 0, 1, 32)) == Box(49_897, 0, 10, 10)
    assert region_at(source, region, search, Box(0, 0, 1, 32)) == Box(93, 0, 10, 10)
    # a region wider than the distance to the edge stays inside the source
    wide = Size(1000, 10)
    assert region_at(source, wide, search, Box(0, 0, 1, 32)) == Box(0, 0, 1000, 10)
    assert region_at(source, wide, search, Box(255, 0, 1, 32)) == Box(49_000, 0, 1000, 10)
    # in the middle
    assert region_at(source, region, search, Box(127, 0, 2, 32)) == Box(24_995, 0, 10, 10)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (1, Box(10, 20, 30, 40)),
        (2, Box(60, 20, 30, 40)),  # mirrored across: 100 - (10 + 30)
        (3, Box(60, 140, 30, 40)),
        (4, Box(10, 140, 30, 40)),
    ],
)
def test_unoriented_flips(orientation: int, expected: Box) -> None:
    """Upright 100x200 (stored the same size): a box maps to its mirror image."""
    assert unoriented(Box(10, 20, 30, 40), Size(100, 200), orientation) == expected


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (5, Box(20, 10, 40, 30)),  # transposed
        (6, Box(20, 60, 40, 30)),  # stored turned left: upright x runs up the stored rows
        (7, Box(140, 60, 40, 30)),
        (8, Box(140, 10, 40, 30)),
    ],
)
def test_unoriented_quarter_turns(orientation: int, expected: Box) -> None:
    """Upright 100x200 is stored 200x100: width and height of the box swap."""
    assert unoriented(Box(10, 20, 30, 40), Size(100, 200), orientation) == expected


boxes_in = st.tuples(sizes, st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))


@given(spec=boxes_in, orientation=st.integers(1, 8))
def test_unoriented_box_lies_inside_the_stored_image(
    spec: tuple[Size, float, float, float, float], orientation: int
) -> None:
    size, fx, fy, fw, fh = spec
    width = max(1, int(size.width * fw))
    height = max(1, int(size.height * fh))
    box = Box(int((size.width - width) * fx), int((size.height - height) * fy), width, height)
    stored = oriented(size, orientation)  # orienting twice is the identity
    mapped = unoriented(box, size, orientation)
    assert mapped.left >= 0
    assert mapped.top >= 0
    assert mapped.left + mapped.width <= stored.width
    assert mapped.top + mapped.height <= stored.height
    assert mapped.width * mapped.height == box.width * box.height


@given(source=sizes, target=targets)
def test_region_has_the_target_shape_and_lies_inside_the_source(source: Size, target: Size) -> None:
    region = fill_region(source, target)
    assert 1 <= region.width <= source.width
    assert 1 <= region.height <= source.height
    # one side is the source's whole side
    assert region.width == source.width or region.height == source.height
    # the shape is the target's, up to rounding to whole pixels
    assert abs(region.width * target.height - region.height * target.width) <= max(
        target.width, target.height
    )


@given(source=sizes, target=targets)
def test_a_fill_through_the_cover_makes_a_bounded_image(source: Size, target: Size) -> None:
    if not needs_region(source, target):
        assert cover(source, target).pixels <= COVER_FACTOR * target.pixels
        check_intermediate(cover(source, target), target)  # never refused at allowed sizes


def test_intermediates_over_the_bound_are_refused() -> None:
    check_intermediate(Size(MAX_INTERMEDIATE_PIXELS, 1), Size(1000, 1000))
    with pytest.raises(SourceTooLarge):
        check_intermediate(Size(470_000, 1000), Size(1000, 1000))


def test_previews_allowed_beyond_4096_get_a_proportional_bound() -> None:
    """An operator's --max-dimension 16384 allows a 12000x12000 preview: its 1.5x cover
    is allowed, a 5x one is not."""
    target = Size(12_000, 12_000)
    check_intermediate(Size(18_000, 12_000), target)
    with pytest.raises(SourceTooLarge):
        check_intermediate(Size(60_000, 12_000), target)


# --- fit ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "box", "expected"),
    [
        (Size(1024, 504), Size(300, 300), Size(300, 148)),  # landscape: 147.66 rounds up
        (Size(333, 666), Size(300, 300), Size(150, 300)),  # portrait
        (Size(400, 300), Size(200, 150), Size(200, 150)),  # same aspect: the whole box
        (Size(400, 300), Size(200, 300), Size(200, 150)),  # a box taller than the source
        (Size(40, 30), Size(400, 300), Size(400, 300)),  # tiny: enlarged, as fill enlarges
        (Size(40, 30), Size(1000, 1000), Size(1000, 750)),
        (Size(1, 1), Size(7, 3), Size(3, 3)),
        (Size(50_000, 1), Size(1000, 1000), Size(1000, 1)),  # thin: 0.02 is kept as 1
        (Size(2, 940), Size(1000, 1000), Size(2, 1000)),  # 2.13 rounds down
        (Size(3, 2), Size(5, 5), Size(5, 3)),  # 3.33
        (Size(4, 3), Size(2, 2), Size(2, 2)),  # 1.5 rounds half up
    ],
)
def test_fit_sizes(source: Size, box: Size, expected: Size) -> None:
    assert fit(source, box) == expected


@given(source=sizes, box=targets)
def test_fit_lies_in_the_box_with_one_side_touching_it(source: Size, box: Size) -> None:
    fitted = fit(source, box)
    assert 1 <= fitted.width <= box.width
    assert 1 <= fitted.height <= box.height
    assert fitted.width == box.width or fitted.height == box.height


@given(source=sizes, box=targets)
def test_fit_keeps_the_aspect_within_rounding(source: Size, box: Size) -> None:
    """Each side is the source's side times s = min(bw/w, bh/h), rounded to the nearest
    pixel (at least 1): off by half a pixel at most."""
    scale = min(Fraction(box.width, source.width), Fraction(box.height, source.height))
    fitted = fit(source, box)
    for got, exact in (
        (fitted.width, source.width * scale),
        (fitted.height, source.height * scale),
    ):
        assert abs(got - exact) <= Fraction(1, 2) or (got == 1 and exact < 1)


@given(source=sizes, box=targets)
def test_fit_never_makes_more_than_the_box_holds(source: Size, box: Size) -> None:
    """However thin the source, the only image a fit makes is within the box."""
    check_intermediate(fit(source, box), box)
