"""faces.detect: the YuNet detector on a real photograph of a person, and on
images without people (real libvips pixels, nothing mocked)."""

from __future__ import annotations

import threading

import pytest
import pyvips

import images
from previewer.render import faces
from previewer.render.geometry import Box


def rgb(image: pyvips.Image) -> tuple[bytes, int, int]:
    image = image.copy_memory()
    return bytes(image.write_to_memory()), image.width, image.height


def small(image: pyvips.Image, side: int = faces.DETECT_SIDE) -> pyvips.Image:
    return image.resize(side / max(image.width, image.height))


def overlap(a: Box, b: Box) -> float:
    """Intersection over union."""
    dx = min(a.left + a.width, b.left + b.width) - max(a.left, b.left)
    dy = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    shared = max(0, dx) * max(0, dy)
    return shared / (a.width * a.height + b.width * b.height - shared)


def test_the_face_in_a_portrait_is_found_where_it_is() -> None:
    image = small(images.portrait())
    scale = image.width / 512
    found = faces.detect(*rgb(image))
    assert len(found) == 1
    truth = Box(*(round(v * scale) for v in images.PORTRAIT_FACE))
    assert overlap(found[0].box, truth) > 0.6, (found[0].box, truth)
    assert found[0].confidence >= faces.MIN_CONFIDENCE


@pytest.mark.parametrize(
    "image",
    [
        images.photo(224, 150),
        images.noisy_gradient(224, 224),
        images.checkerboard(224, 160),
        images.solid(200, 120, [200, 170, 150]),  # a skin-toned wall
    ],
    ids=["photo-like", "gradient", "checkerboard", "skin-tone"],
)
def test_images_without_people_have_no_faces(image: pyvips.Image) -> None:
    assert faces.detect(*rgb(image)) == []


def portrait_in_corner(face_pixels: int) -> pyvips.Image:
    """The portrait shrunk so that its face is `face_pixels` high, on a dark square."""
    tiny = images.portrait().resize(face_pixels / images.PORTRAIT_FACE[3])
    side = faces.DETECT_SIDE
    return (pyvips.Image.black(side, side, bands=3) + 60).insert(tiny, 40, 40).cast("uchar")


def test_a_face_under_the_least_side_is_left_out() -> None:
    image = rgb(portrait_in_corner(40))  # a face about 18% of the image's side
    assert len(faces.detect(*image)) == 1
    assert len(faces.detect(*image, least_side=0.15)) == 1
    assert faces.detect(*image, least_side=0.25) == []


def test_a_detection_under_the_least_confidence_is_left_out() -> None:
    """A face 14 px high is at the edge of what YuNet sees: it answers with a low
    confidence, which the default threshold refuses."""
    image = rgb(portrait_in_corner(14))
    weak = faces.detect(*image, least_confidence=1, least_side=0)
    assert len(weak) == 1
    assert weak[0].confidence < faces.MIN_CONFIDENCE
    assert faces.detect(*image) == []


def test_faces_are_given_largest_first() -> None:
    """Two copies of the portrait, one at half the size: the larger comes first."""
    portrait = images.portrait()
    big, half = portrait.resize(150 / 600), portrait.resize(75 / 600)
    canvas = (pyvips.Image.black(224, 150, bands=3) + 60).insert(big, 0, 0).insert(half, 150, 40)
    found = faces.detect(*rgb(canvas.cast("uchar")))
    assert len(found) == 2
    assert found[0].box.width > found[1].box.width
    assert found[0].box.left < 100 < found[1].box.left


def test_a_buffer_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="RGB"):
        faces.detect(bytes(10), 4, 4)


def test_render_threads_detecting_at_once_get_the_answers_of_one() -> None:
    """The render pool runs detections side by side: each gets what it gets alone."""
    inputs = [rgb(small(images.portrait(), side)) for side in (120, 160, 200, 224)]
    expected = [faces.detect(*data) for data in inputs]
    wrong: list[int] = []

    def run(index: int) -> None:
        for _ in range(20):
            if faces.detect(*inputs[index]) != expected[index]:
                wrong.append(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert all(len(found) == 1 for found in expected)
