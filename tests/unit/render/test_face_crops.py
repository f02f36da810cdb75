"""The `attention` gravity's face step in the render: real photos, real libvips.

The crop window of each preview is found from its pixels (images.crop_window),
and the face's box is marked by eye (images.PORTRAIT_FACE): what is checked is
what a client would see.
"""

from __future__ import annotations

import pytest
import pyvips

import images
from previewer.render import imaging
from previewer.render.imaging import RenderJob

SHAPES = [(300, 200), (200, 300), (256, 256), (400, 225), (150, 300)]


def render(body: bytes, width: int, height: int, gravity: str) -> pyvips.Image:
    rendered = imaging.render(body, RenderJob(width, height, gravity, 90, 50_000_000))
    return images.decode(rendered.body)


def face_kept(source: pyvips.Image, face: tuple[int, int, int, int], preview: pyvips.Image) -> bool:
    """Whether the face's box, grown by 10% each side, is inside the preview's window."""
    left, top = images.crop_window(source, preview)
    scale = max(preview.width / source.width, preview.height / source.height)
    x, y, w, h = (v * scale for v in face)
    return (
        left <= x - 0.1 * w + 1
        and top <= y - 0.1 * h + 1
        and x + 1.1 * w <= left + preview.width + 1
        and y + 1.1 * h <= top + preview.height + 1
    )


@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_the_default_gravity_keeps_the_face_of_a_portrait(width: int, height: int) -> None:
    source = images.portrait()
    preview = render(source.jpegsave_buffer(Q=90), width, height, "attention")
    assert (preview.width, preview.height) == (width, height)
    assert face_kept(source, images.PORTRAIT_FACE, preview)


@pytest.mark.parametrize(("width", "height"), [(400, 400), (300, 200), (150, 300)])
def test_a_face_beside_a_louder_pattern_is_kept(width: int, height: int) -> None:
    """The squares outscore the portrait in the attention analysis: the face step is
    what keeps the face."""
    source, face = images.face_beside_pattern()
    body = source.jpegsave_buffer(Q=90)
    assert face_kept(source, face, render(body, width, height, "attention"))
    # the analysis alone goes to the squares at the far right
    left, _ = images.crop_window(source, render(body, width, height, "attention-only"))
    scale = height / source.height
    assert left + width > (source.width - 600) * scale


ENCODINGS = {
    "jpeg-q90": lambda image: image.jpegsave_buffer(Q=90),
    "png": lambda image: image.pngsave_buffer(),
    "webp-q80": lambda image: image.webpsave_buffer(Q=80),
}


@pytest.mark.parametrize("gravity", ["attention", "attention-only"])
@pytest.mark.parametrize(
    "name", ["portrait", "face-beside-pattern", "no-face-photo", "no-face-gradient"]
)
@pytest.mark.parametrize(("width", "height"), [(300, 200), (200, 300)])
def test_one_photo_gets_one_crop_whatever_its_encoding(
    gravity: str, name: str, width: int, height: int
) -> None:
    """JPEG q90, PNG and WebP q80 of one photo: windows within 2% of the window."""
    source = {
        "portrait": images.portrait,
        "face-beside-pattern": lambda: images.face_beside_pattern(1200)[0],
        "no-face-photo": lambda: images.photo(900, 600),
        "no-face-gradient": lambda: images.noisy_gradient(600, 900),
    }[name]()
    windows = {
        encoding: images.crop_window(source, render(encode(source), width, height, gravity))
        for encoding, encode in ENCODINGS.items()
    }
    lefts = [left for left, _ in windows.values()]
    tops = [top for _, top in windows.values()]
    assert max(lefts) - min(lefts) <= 0.02 * width, windows
    assert max(tops) - min(tops) <= 0.02 * height, windows
