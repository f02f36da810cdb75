"""bench/cropwindow.py: the window found from a preview's pixels, and what it keeps."""

from __future__ import annotations

import numpy as np
import pytest
from cropwindow import Window, agree, ceiling, find_offset, kept, source_window


def _noise(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (height, width)).astype(np.float32)


@pytest.mark.parametrize(("shape", "at"), [((240, 300), (0, 17)), ((200, 420), (93, 0))])
def test_the_offset_is_found_despite_encoding_noise(shape: tuple[int, int], at: tuple[int, int]):
    cover = _noise(*shape, seed=1)
    left, top = at
    preview = cover[top : top + 200, left : left + 300] + _noise(200, 300, seed=2) / 25
    assert find_offset(cover, preview) == (left, top)


def test_a_preview_larger_than_the_cover_is_refused():
    with pytest.raises(ValueError, match="smaller than the preview"):
        find_offset(_noise(100, 100, seed=1), _noise(100, 120, seed=2))


def test_the_window_is_scaled_back_to_source_pixels():
    window = source_window((0, 30), (300, 200), (300, 450), (1000, 1500))
    assert (window.left, window.width) == (0.0, 1000.0)
    assert (window.top, window.height) == pytest.approx((100.0, 2000 / 3))


def test_a_face_is_kept_only_with_its_margin_inside():
    window = Window(0, 100, 300, 200)
    assert kept([100, 150, 50, 50], window, (300, 600))
    assert not kept([100, 104, 50, 50], window, (300, 600))  # the 10% margin crosses the top
    assert not kept([100, 260, 50, 50], window, (300, 600))


def test_the_margin_is_clipped_at_the_photo_edge():
    assert kept([0, 0, 50, 50], Window(0, 0, 300, 200), (300, 600))


def test_the_ceiling_counts_the_faces_one_window_can_hold():
    faces = [[10, 20, 40, 40], [10, 400, 40, 40], [10, 480, 40, 40]]
    assert ceiling(faces, (300, 600), (300.0, 200.0)) == 2
    assert ceiling([], (300, 600), (300.0, 200.0)) == 0


def test_windows_agree_within_two_percent():
    a = Window(0, 100, 300, 200)
    assert agree(a, Window(0, 104, 300, 200))
    assert not agree(a, Window(0, 105, 300, 200))
