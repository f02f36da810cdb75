"""The face step of the default gravity, over HTTP, in the embedded and the broker mode.

The windows are found from the previews' pixels (images.crop_window) and the
face's box was marked by eye (images.PORTRAIT_FACE).
"""

from __future__ import annotations

import pytest

import images
from conftest import ServiceFactory
from origin import Origin

pytestmark = pytest.mark.both_modes

FACE_BESIDE_PATTERN, FACE = images.face_beside_pattern()


def face_kept(width: int, height: int, window: tuple[int, int]) -> bool:
    source = FACE_BESIDE_PATTERN
    scale = max(width / source.width, height / source.height)
    x, y, w, h = (v * scale for v in FACE)
    left, top = window
    return (
        left <= x - 0.1 * w + 1
        and top <= y - 0.1 * h + 1
        and x + 1.1 * w <= left + width + 1
        and y + 1.1 * h <= top + height + 1
    )


@pytest.mark.parametrize(("width", "height"), [(400, 400), (300, 200), (150, 300)])
async def test_the_default_gravity_keeps_the_face_the_analysis_alone_misses(
    start_service: ServiceFactory, origin: Origin, width: int, height: int
) -> None:
    origin.add("/people.jpg", FACE_BESIDE_PATTERN.jpegsave_buffer(Q=90))
    path = f"/fill/{width}/{height}/{origin.authority}/people.jpg"
    service = await start_service()  # the default gravity: attention, with faces
    status, headers, body = await service.get(path)
    assert (status, headers["X-Cache"]) == (200, "MISS"), body
    window = images.crop_window(FACE_BESIDE_PATTERN, images.decode(body))
    assert face_kept(width, height, window), window


async def test_the_attention_only_gravity_is_the_analysis_without_faces(
    start_service: ServiceFactory, origin: Origin
) -> None:
    origin.add("/people.jpg", FACE_BESIDE_PATTERN.jpegsave_buffer(Q=90))
    service = await start_service(gravity="attention-only")
    status, _, body = await service.get(f"/fill/400/400/{origin.authority}/people.jpg")
    assert status == 200, body
    left, _ = images.crop_window(FACE_BESIDE_PATTERN, images.decode(body))
    assert not face_kept(400, 400, (left, 0))
    assert left + 400 > (FACE_BESIDE_PATTERN.width - 600) * 400 / 600  # on the squares


async def test_one_portrait_in_three_encodings_gets_one_crop(
    start_service: ServiceFactory, origin: Origin
) -> None:
    """What a page gets when the same photo is uploaded as JPEG, PNG and WebP."""
    portrait = images.portrait()
    origin.add("/hopper.jpg", portrait.jpegsave_buffer(Q=90))
    origin.add("/hopper.png", portrait.pngsave_buffer())
    origin.add("/hopper.webp", portrait.webpsave_buffer(Q=80))
    service = await start_service()
    windows = []
    for name in ("hopper.jpg", "hopper.png", "hopper.webp"):
        status, _, body = await service.get(f"/fill/300/200/{origin.authority}/{name}")
        assert status == 200, body
        windows.append(images.crop_window(portrait, images.decode(body)))
    tops = [top for _, top in windows]
    assert max(tops) - min(tops) <= 0.02 * 200, windows
