"""framing.place: where a crop goes to keep the faces (pure; properties and cases)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from previewer.render import framing
from previewer.render.geometry import Box, Size


def inside(face: Box, crop: Box, margin: float = 0.0) -> bool:
    dx, dy = margin * face.width, margin * face.height
    return (
        crop.left <= face.left - dx
        and crop.top <= face.top - dy
        and face.left + face.width + dx <= crop.left + crop.width
        and face.top + face.height + dy <= crop.top + crop.height
    )


def grown_fits(faces: list[Box], crop: Size) -> bool:
    """Whether all the faces with their full margins fit in the crop together."""
    left = min(f.left - framing.SIDES * f.width for f in faces)
    right = max(f.left + f.width + framing.SIDES * f.width for f in faces)
    top = min(f.top - framing.HEADROOM * f.height for f in faces)
    bottom = max(f.top + f.height + framing.CHIN * f.height for f in faces)
    return right - left <= crop.width and bottom - top <= crop.height


@st.composite
def scenes(draw: st.DrawFn) -> tuple[Size, Size, list[Box]]:
    width = draw(st.integers(20, 1200))
    height = draw(st.integers(20, 1200))
    crop = Size(draw(st.integers(1, width)), draw(st.integers(1, height)))
    faces = []
    for _ in range(draw(st.integers(0, 6))):
        w = draw(st.integers(1, max(1, width // 2)))
        h = draw(st.integers(1, max(1, height // 2)))
        faces.append(Box(draw(st.integers(0, width - w)), draw(st.integers(0, height - h)), w, h))
    return Size(width, height), crop, faces


@given(scenes())
@settings(max_examples=400, deadline=None)
def test_the_crop_has_the_size_asked_and_lies_in_the_image(
    scene: tuple[Size, Size, list[Box]],
) -> None:
    image, crop, faces = scene
    box = framing.place(image, crop, faces)
    if not faces:
        assert box is None
        return
    assert box is not None
    assert (box.width, box.height) == (crop.width, crop.height)
    assert 0 <= box.left <= image.width - crop.width
    assert 0 <= box.top <= image.height - crop.height


@given(scenes())
@settings(max_examples=400, deadline=None)
def test_faces_that_fit_together_with_their_margins_are_all_kept_whole(
    scene: tuple[Size, Size, list[Box]],
) -> None:
    image, crop, faces = scene
    if not faces or not grown_fits(faces, crop):
        return
    box = framing.place(image, crop, faces)
    assert box is not None
    for face in faces:
        assert inside(face, box), (face, box)


@given(scenes())
@settings(max_examples=400, deadline=None)
def test_the_largest_face_is_kept_whole_whenever_it_fits_alone(
    scene: tuple[Size, Size, list[Box]],
) -> None:
    """The winner keeps the most face area, and a group holding the largest face is
    always a candidate: so a face that fits alone is only lost to a group of
    more face area, never to a smaller face."""
    image, crop, faces = scene
    if not faces:
        return
    largest = max(faces, key=lambda f: f.width * f.height)
    if largest.width > crop.width or largest.height > crop.height:
        return
    box = framing.place(image, crop, faces)
    assert box is not None
    kept = [f for f in faces if inside(f, box)]
    assert largest in kept or sum(f.width * f.height for f in kept) >= largest.width * (
        largest.height
    )


def test_a_portrait_crop_keeps_the_head_with_room_above() -> None:
    """A face near the top of a tall image, cropped to a wide window: the window
    starts above the forehead by the headroom, not at the image's middle."""
    face = Box(200, 300, 100, 120)
    box = framing.place(Size(500, 1000), Size(500, 333), [face])
    assert box is not None
    assert inside(face, box, 0.1)
    assert box.top <= face.top - framing.HEADROOM * face.height


def test_faces_too_far_apart_keep_the_larger() -> None:
    big, small = Box(20, 100, 120, 150), Box(860, 100, 60, 75)
    box = framing.place(Size(1000, 400), Size(300, 400), [small, big])
    assert box is not None
    assert inside(big, box)
    assert not inside(small, box)


def test_a_group_outweighs_a_single_face_of_less_area() -> None:
    """Three faces side by side at the right beat one slightly larger face at the
    left: more face area is kept."""
    single = Box(20, 150, 90, 100)
    group = [Box(600, 150, 70, 80), Box(690, 150, 70, 80), Box(780, 150, 70, 80)]
    box = framing.place(Size(1000, 400), Size(320, 400), [single, *group])
    assert box is not None
    assert all(inside(face, box) for face in group)


def test_a_face_larger_than_the_crop_is_centred_on() -> None:
    face = Box(300, 100, 400, 500)
    box = framing.place(Size(1000, 800), Size(200, 200), [face])
    assert box == Box(400, 250, 200, 200)


def test_the_same_faces_in_any_order_give_the_same_crop() -> None:
    faces = [Box(10, 10, 50, 60), Box(400, 20, 55, 60), Box(800, 30, 50, 65)]
    first = framing.place(Size(1000, 300), Size(400, 300), faces)
    assert framing.place(Size(1000, 300), Size(400, 300), faces[::-1]) == first


def test_a_crop_larger_than_the_image_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        framing.place(Size(100, 100), Size(101, 50), [Box(10, 10, 20, 20)])
