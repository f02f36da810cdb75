"""attention.place: the attention crop's analysis, on pixels made with real libvips.

libvips's own smartcrop (the analysis previewer ran before) is the reference
the placement is compared with.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import pyvips
from hypothesis import given, settings
from hypothesis import strategies as st

import images
from previewer.render import attention
from previewer.render.geometry import Box, Size


def subject_on_grey(width: int, height: int, cx: int, cy: int, *, seed: int) -> pyvips.Image:
    """Mid-grey with seeded noise, and one saturated red disc centred at (cx, cy)."""
    xyz = pyvips.Image.xyz(width, height)
    noise = pyvips.Image.gaussnoise(width, height, sigma=6, mean=128, seed=seed)
    grey = noise.bandjoin([noise, noise])
    radius = max(2, min(width, height) // 10)
    disc = ((xyz[0] - cx) ** 2 + (xyz[1] - cy) ** 2) < radius * radius
    return disc.ifthenelse([230, 40, 40], grey).cast("uchar").copy(interpretation="srgb")


def pixels(image: pyvips.Image) -> np.ndarray:
    return np.asarray(image.numpy(), dtype=np.uint8).reshape(image.height, image.width, image.bands)


def inside(box: Box, x: int, y: int) -> bool:
    return box.left <= x < box.left + box.width and box.top <= y < box.top + box.height


def libvips_box(image: pyvips.Image, crop: Size) -> Box:
    found = image.copy_memory().smartcrop(crop.width, crop.height, interesting="attention")
    return Box(-found.get("xoffset"), -found.get("yoffset"), crop.width, crop.height)


SHAPES = [((450, 200), (300, 200)), ((300, 450), (300, 200)), ((600, 200), (200, 200))]
SHAPES += [((320, 240), (100, 240)), ((1000, 80), (80, 80))]


@pytest.mark.parametrize(("size", "crop"), SHAPES)
@pytest.mark.parametrize("seed", range(6))
def test_the_crop_goes_over_the_subject(
    size: tuple[int, int], crop: tuple[int, int], seed: int
) -> None:
    width, height = size
    rng = random.Random(seed)
    cx, cy = rng.randrange(width), rng.randrange(height)
    image = subject_on_grey(width, height, cx, cy, seed=seed)
    box = attention.place(pixels(image), Size(*crop))
    assert (box.width, box.height) == crop
    assert inside(box, cx, cy), f"subject at {cx},{cy}, crop {box}"


@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    bands=st.sampled_from([1, 2, 3, 4]),
    data=st.data(),
)
@settings(max_examples=150, deadline=None)
def test_the_box_has_the_crop_size_and_stays_inside(
    width: int, height: int, bands: int, data: st.DataObject
) -> None:
    """Any size, grey or colour, with or without alpha: the box fits the image."""
    crop_width = data.draw(st.integers(1, width))
    crop_height = data.draw(st.integers(1, height))
    seed = data.draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).integers(0, 256, (height, width, bands), dtype=np.uint8)
    box = attention.place(values, Size(crop_width, crop_height))
    assert (box.width, box.height) == (crop_width, crop_height)
    assert 0 <= box.left <= width - crop_width
    assert 0 <= box.top <= height - crop_height


def test_a_crop_of_the_whole_image_is_the_image() -> None:
    values = pixels(images.photo(120, 80))
    assert attention.place(values, Size(120, 80)) == Box(0, 0, 120, 80)


@pytest.mark.parametrize("crop", [(121, 80), (120, 81), (0, 10)])
def test_a_crop_that_does_not_fit_is_refused(crop: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        attention.place(pixels(images.photo(120, 80)), Size(*crop))


def test_grey_pixels_with_and_without_alpha_find_an_edge() -> None:
    """No colour at all: a bright square on black is found by its edges."""
    xyz = pyvips.Image.xyz(400, 100)
    square = (xyz[0] > 320) & (xyz[0] < 360) & (xyz[1] > 30) & (xyz[1] < 70)
    grey = square.ifthenelse(220, 20).cast("uchar")
    for image in (grey, grey.bandjoin(255)):
        box = attention.place(pixels(image), Size(100, 100))
        assert inside(box, 340, 50), box


def test_a_single_band_without_a_band_axis_is_grey() -> None:
    grey = pixels(images.photo(300, 100))[:, :, 0]
    assert grey.ndim == 2
    box = attention.place(grey, Size(100, 100))
    assert box == attention.place(grey[:, :, np.newaxis], Size(100, 100))


def test_alpha_is_ignored() -> None:
    rgb = subject_on_grey(450, 200, 400, 100, seed=3)
    with_alpha = rgb.bandjoin(pyvips.Image.gaussnoise(450, 200, seed=4).cast("uchar"))
    crop = Size(300, 200)
    assert attention.place(pixels(with_alpha), crop) == attention.place(pixels(rgb), crop)


def subject_share(image: pyvips.Image, box: Box) -> float:
    """How much of the crop is photo()'s bright yellow subject (0..1)."""
    crop = image.extract_area(box.left, box.top, box.width, box.height)
    yellow = (crop[0] > 200) & (crop[1] > 200) & (crop[2] < 120)
    return float(yellow.avg()) / 255


def test_it_keeps_the_subject_wherever_libvips_smartcrop_does() -> None:
    """Photo-like seeded images, the subject moved about: the same analysis as libvips's.

    The summaries differ slightly (a box mean here, libvips's Lanczos resize
    there), so where places score alike a box may sit a little elsewhere
    (it goes to the image's edge more readily), but every crop keeps as much
    of the subject as libvips's crop does, and most boxes are the same.
    """
    rng = random.Random(5)
    same = 0
    total = 60
    for seed in range(total):
        width, height = rng.choice([(450, 200), (300, 450), (356, 200), (300, 225), (600, 200)])
        image = images.photo(width, height, seed=seed)
        # photo() puts the subject two thirds across, halfway down: move it about
        image = image.fliphor() if seed % 2 else image
        image = image.embed(0, -height // 3, width, height, extend="mirror") if seed % 3 else image
        image = image.copy_memory()
        crop = Size(300, 200)
        ours = attention.place(pixels(image), crop)
        reference = libvips_box(image, crop)
        assert subject_share(image, ours) >= subject_share(image, reference) - 0.005, seed
        same += (
            abs(ours.left - reference.left) <= width / 32
            and abs(ours.top - reference.top) <= height / 32
        )
    assert same >= total // 2, f"the same box (within a cell) for {same} of {total}"
