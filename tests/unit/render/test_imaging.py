"""previewer.render.imaging with real libvips, on images made here; results are decoded,
never compared as bytes."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import images
from previewer.errors import BadImage, RequestTimeout, SourceTooLarge
from previewer.render import formats, imaging
from previewer.render.geometry import Size, fit
from previewer.render.imaging import Rendered, RenderJob, render, sniff

Image = Any  # pyvips ships no type information


@pytest.fixture(scope="module", autouse=True)
def _configured() -> None:
    imaging.configure()


# --- images -----------------------------------------------------------------------


def solid(width: int, height: int, colour: list[int]) -> Image:
    return pyvips.Image.black(width, height).new_from_image(colour).copy(interpretation="srgb")


def photo(width: int = 400, height: int = 300) -> Image:
    """Smooth gradients plus noise, 8-bit sRGB."""
    return images.photo(width, height, sigma=10, subject=False)


def halves(width: int, height: int, white_fraction: float = 0.5) -> Image:
    """White on the left `white_fraction` of the width, black on the rest."""
    xyz = pyvips.Image.xyz(width, height)
    white = xyz[0] < int(width * white_fraction)
    return white.ifthenelse([255, 255, 255], [0, 0, 0]).cast("uchar").copy(interpretation="srgb")


def with_orientation(image: Image, orientation: int) -> Image:
    tagged = image.copy()
    tagged.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return tagged


def decode(body: bytes) -> Image:
    return pyvips.Image.new_from_buffer(body, "")


def job(
    width: int,
    height: int,
    *,
    gravity: str = "centre",
    quality: int = 80,
    max_pixels: int = 50_000_000,
) -> RenderJob:
    return RenderJob(width, height, gravity, quality, max_pixels)


def check_output(rendered: Rendered, width: int, height: int) -> Image:
    """The decoded preview, after checking it is what `rendered` says it is."""
    out = decode(rendered.body)
    assert (out.width, out.height) == (width, height)
    assert (rendered.width, rendered.height) == (width, height)
    assert out.format == "uchar"
    if rendered.content_type == "image/jpeg":
        assert sniff(rendered.body) == "jpeg"
        assert out.bands == 3
    else:
        assert rendered.content_type == "image/png"
        assert sniff(rendered.body) == "png"
        assert out.bands == 4
    return out


ENCODERS: dict[str, Callable[[Image], bytes]] = {
    "jpeg": lambda image: image.jpegsave_buffer(Q=90),
    "png": lambda image: image.pngsave_buffer(),
    "gif": lambda image: image.gifsave_buffer(),
    "webp": lambda image: image.webpsave_buffer(Q=90),
    "avif": lambda image: image.heifsave_buffer(compression="av1", Q=90),
    "tiff": lambda image: image.tiffsave_buffer(),
}


# --- sniff ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODERS)
def test_sniff_recognises_each_format(name: str) -> None:
    assert sniff(ENCODERS[name](photo(40, 30))) == name


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"hello world",
        b"\xff\xd8",  # too short for the JPEG signature
        b"\x89PNG\r\n",
        b"GIF88a" + bytes(20),
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"BM" + bytes(60),
        b"II\x2a\x01" + bytes(20),  # byte order, but not 42 in it
        b"MM\x00\x2b\x00\x09" + bytes(20),  # BigTIFF needs an 8-byte offset size: MM 0 43 0 8
        b"%PDF-1.7\n",
        b"\x00\x00\x00\x1cftypavif",  # the ftyp box is longer than the data
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",  # an MP4 video
        b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ",  # a QuickTime movie
        b"\x00\x00\x00\x10ftyp" + bytes(8),
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"<svg/>",
        b"  \xff\xd8\xff",  # signature not at the start
    ],
)
def test_sniff_rejects_everything_else(body: bytes) -> None:
    assert sniff(body) is None


def test_configure_blocks_other_loaders() -> None:
    ppm = b"P6\n2 2\n255\n" + bytes(12)
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(ppm, "")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(svg, "")


# --- JPEG sizes and gravities -----------------------------------------------------


@pytest.mark.parametrize("gravity", ["centre", "attention"])
@pytest.mark.parametrize(
    ("width", "height"),
    [(100, 100), (320, 200), (200, 320), (50, 300), (399, 1), (1, 1), (400, 300), (133, 77)],
)
def test_jpeg_renders_to_the_exact_size(gravity: str, width: int, height: int) -> None:
    source = photo(400, 300).jpegsave_buffer(Q=90)
    rendered = render(source, job(width, height, gravity=gravity))
    assert rendered.content_type == "image/jpeg"
    assert rendered.source_format == "jpeg"
    check_output(rendered, width, height)


@pytest.mark.parametrize("gravity", ["centre", "attention"])
@pytest.mark.parametrize(("width", "height"), [(300, 200), (2000, 1000), (64, 480), (1000, 10)])
def test_small_sources_are_enlarged(gravity: str, width: int, height: int) -> None:
    source = photo(64, 48).jpegsave_buffer(Q=90)
    check_output(render(source, job(width, height, gravity=gravity)), width, height)


def test_1024x504_enlarges_to_2000x1000() -> None:
    source = photo(1024, 504).jpegsave_buffer(Q=85)
    check_output(render(source, job(2000, 1000)), 2000, 1000)


def test_centre_gravity_keeps_the_middle() -> None:
    stripes = (
        solid(100, 100, [255, 0, 0])
        .join(solid(100, 100, [0, 255, 0]), "horizontal")
        .join(solid(100, 100, [0, 0, 255]), "horizontal")
    )
    out = check_output(render(stripes.pngsave_buffer(), job(50, 50)), 50, 50)
    red, green, blue = (out[band].avg() for band in range(3))
    assert green > 200
    assert red < 40
    assert blue < 40


def test_centre_gravity_keeps_the_middle_vertically() -> None:
    bands = (
        solid(100, 100, [255, 0, 0])
        .join(solid(100, 100, [0, 255, 0]), "vertical")
        .join(solid(100, 100, [0, 0, 255]), "vertical")
    )
    out = check_output(render(bands.pngsave_buffer(), job(100, 100)), 100, 100)
    assert out[1].avg() > 200
    assert out[0].avg() < 40
    assert out[2].avg() < 40


@pytest.mark.parametrize("space", ["rgb16", "grey16", "cmyk"])
def test_attention_on_other_pixel_kinds_finds_the_subject(space: str) -> None:
    """16-bit, grey and CMYK sources: the analysis reads them as 8-bit sRGB, and the
    preview is 8-bit sRGB with the bright disc in it."""
    xyz = pyvips.Image.xyz(400, 100)
    disc = ((xyz[0] - 360) ** 2 + (xyz[1] - 50) ** 2) < 30 * 30
    image = disc.ifthenelse([230, 230, 230], [40, 40, 40]).cast("uchar")
    image = image.copy(interpretation="srgb").colourspace(space)
    source = image.tiffsave_buffer()
    centre = check_output(render(source, job(100, 100, gravity="centre")), 100, 100)
    out = check_output(render(source, job(100, 100, gravity="attention")), 100, 100)
    assert (out.format, out.interpretation) == ("uchar", "srgb")
    assert out.avg() > centre.avg() + 40  # the disc, not only the dark around it


def test_attention_gravity_finds_the_subject() -> None:
    """A saturated disc near the right edge: centre misses it, attention does not."""
    xyz = pyvips.Image.xyz(400, 100)
    disc = ((xyz[0] - 360) ** 2 + (xyz[1] - 50) ** 2) < 30 * 30
    image = disc.ifthenelse([230, 40, 40], [60, 60, 60]).cast("uchar").copy(interpretation="srgb")
    source = image.pngsave_buffer()
    centre = check_output(render(source, job(100, 100, gravity="centre")), 100, 100)
    attention = check_output(render(source, job(100, 100, gravity="attention")), 100, 100)
    assert centre[0].avg() < 70  # only the grey background
    assert attention[0].avg() > centre[0].avg() + 20


def test_exact_aspect_needs_no_crop() -> None:
    out = check_output(render(halves(200, 100).pngsave_buffer(), job(100, 50)), 100, 50)
    assert out(5, 25)[0] > 200  # the white left edge survived
    assert out(94, 25)[0] < 50  # and the black right edge


def test_quality_is_applied() -> None:
    source = photo(400, 300).jpegsave_buffer(Q=95)
    low = render(source, job(300, 200, quality=10))
    high = render(source, job(300, 200, quality=95))
    assert len(low.body) < len(high.body)


# --- PNG variants -----------------------------------------------------------------


def test_png_with_alpha_stays_png_with_alpha() -> None:
    image = photo(120, 80).bandjoin(128).copy(interpretation="srgb")
    rendered = render(image.pngsave_buffer(), job(60, 60))
    assert rendered.content_type == "image/png"
    assert rendered.source_format == "png"
    out = check_output(rendered, 60, 60)
    assert out.hasalpha()
    assert 100 < out[3].avg() < 156


def test_opaque_png_becomes_jpeg() -> None:
    rendered = render(photo(120, 80).pngsave_buffer(), job(60, 60))
    assert rendered.content_type == "image/jpeg"
    check_output(rendered, 60, 60)


def test_palette_png_becomes_three_band_jpeg() -> None:
    source = photo(120, 80).pngsave_buffer(palette=True)
    rendered = render(source, job(50, 40))
    assert rendered.content_type == "image/jpeg"
    check_output(rendered, 50, 40)


def test_palette_png_with_transparency_keeps_alpha() -> None:
    image = photo(120, 80).bandjoin(0).copy(interpretation="srgb")
    source = image.insert(solid(60, 80, [0, 0, 0]).bandjoin(255), 0, 0).pngsave_buffer(palette=True)
    rendered = render(source, job(50, 40))
    assert rendered.content_type == "image/png"
    check_output(rendered, 50, 40)


def test_greyscale_png_becomes_srgb_jpeg() -> None:
    grey = (pyvips.Image.black(80, 60) + 200).cast("uchar").copy(interpretation="b-w")
    rendered = render(grey.pngsave_buffer(), job(40, 30))
    assert rendered.content_type == "image/jpeg"
    out = check_output(rendered, 40, 30)
    assert out.interpretation == "srgb"
    for band in range(3):
        assert abs(out[band].avg() - 200) < 3


def test_greyscale_png_with_alpha_becomes_rgba_png() -> None:
    grey = pyvips.Image.black(80, 60) + 100
    image = grey.bandjoin(50).cast("uchar").copy(interpretation="b-w")
    rendered = render(image.pngsave_buffer(), job(40, 30))
    assert rendered.content_type == "image/png"
    out = check_output(rendered, 40, 30)
    assert abs(out[3].avg() - 50) < 2


def test_16_bit_grey_png_is_scaled_to_8_bit() -> None:
    grey16 = (pyvips.Image.black(50, 50) + 32768).cast("ushort").copy(interpretation="grey16")
    rendered = render(grey16.pngsave_buffer(), job(20, 20))
    assert rendered.content_type == "image/jpeg"
    out = check_output(rendered, 20, 20)
    for band in range(3):
        assert abs(out[band].avg() - 128) < 3


def test_16_bit_rgb_png_is_scaled_to_8_bit() -> None:
    rgb16 = pyvips.Image.black(50, 50).cast("ushort").new_from_image([65535, 0, 32768])
    rendered = render(rgb16.copy(interpretation="rgb16").pngsave_buffer(), job(20, 20))
    out = check_output(rendered, 20, 20)
    red, green, blue = (out[band].avg() for band in range(3))
    assert red > 245
    assert green < 10
    assert abs(blue - 128) < 5


def test_16_bit_rgba_png_is_8_bit_png() -> None:
    rgba16 = pyvips.Image.black(50, 50).cast("ushort").new_from_image([65535, 0, 0, 32768])
    rendered = render(rgba16.copy(interpretation="rgb16").pngsave_buffer(), job(20, 20))
    assert rendered.content_type == "image/png"
    out = check_output(rendered, 20, 20)
    assert abs(out[3].avg() - 128) < 3


def test_cmyk_jpeg_becomes_srgb() -> None:
    cmyk = photo(120, 80).icc_transform("cmyk", input_profile="srgb")
    assert cmyk.bands == 4
    rendered = render(cmyk.jpegsave_buffer(), job(60, 40))
    assert rendered.content_type == "image/jpeg"
    out = check_output(rendered, 60, 40)
    assert out.interpretation == "srgb"


# --- GIF and WebP -----------------------------------------------------------------


def test_gif_renders() -> None:
    rendered = render(photo(120, 80).gifsave_buffer(), job(50, 50))
    assert rendered.source_format == "gif"
    check_output(rendered, 50, 50)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = solid(60, 40, [255, 255, 255]).join(solid(60, 40, [0, 0, 0]), "vertical").copy()
    frames.set_type(pyvips.GValue.gint_type, "page-height", 40)
    frames.set_type(pyvips.GValue.array_int_type, "delay", [100, 100])
    source = frames.gifsave_buffer()
    # the pixel limit applies to one frame, not the whole strip
    rendered = render(source, job(30, 20, max_pixels=60 * 40))
    out = check_output(rendered, 30, 20)
    assert out[0].avg() > 240
    assert out[1].avg() > 240


def test_opaque_gif_gives_jpeg() -> None:
    # libvips may load an opaque GIF with an alpha band; it must not become PNG
    source = solid(60, 40, [100, 100, 100]).gifsave_buffer()
    assert pyvips.Image.new_from_buffer(source, "").bands == 4
    rendered = render(source, job(30, 20))
    assert rendered.content_type == "image/jpeg"
    assert check_output(rendered, 30, 20).bands == 3


@pytest.mark.parametrize("gravity", ["centre", "attention"])
@pytest.mark.parametrize(("width", "height"), [(200, 100), (50, 50), (20, 80), (400, 30), (3, 3)])
def test_a_transparent_gif_is_png_at_every_size(gravity: str, width: int, height: int) -> None:
    """Only a 10x10 corner is transparent: crops without it are PNG all the same."""
    rendered = render(images.gif_transparent_corner(), job(width, height, gravity=gravity))
    assert rendered.content_type == "image/png"
    check_output(rendered, width, height)


def test_a_gif_whose_transparent_colour_is_unused_is_jpeg() -> None:
    source = solid(60, 40, [100, 100, 100]).gifsave_buffer()
    assert formats.gif_transparent(source)  # libvips's GIF writer declares one always
    assert render(source, job(30, 20)).content_type == "image/jpeg"


def test_a_decode_to_nothing_is_bad() -> None:
    """libtiff reads this old-style JPEG-in-TIFF as zeros, alpha included, and says nothing."""
    source = images.ojpeg_tiff()
    assert decode(source).max() == 0
    assert decode(source).bands == 4
    with pytest.raises(BadImage) as info:
        render(source, job(30, 20))
    assert info.value.public_message == "The source decodes to an empty image."


def test_a_transparent_image_is_not_a_decode_to_nothing() -> None:
    clear = pyvips.Image.black(40, 30, bands=4).copy(interpretation="srgb")
    for source in (clear.pngsave_buffer(), clear.tiffsave_buffer()):
        rendered = render(source, job(20, 20))
        assert rendered.content_type == "image/png"
        assert check_output(rendered, 20, 20).max() == 0


def test_transparent_gif_keeps_alpha() -> None:
    image = photo(60, 40).bandjoin(pyvips.Image.xyz(60, 40)[0] > 30).cast("uchar")
    source = image.copy(interpretation="srgb").gifsave_buffer()
    rendered = render(source, job(60, 40))
    assert rendered.content_type == "image/png"
    out = check_output(rendered, 60, 40)
    assert out[3].min() == 0
    assert out[3].max() == 255


def test_webp_renders_as_jpeg() -> None:
    rendered = render(photo(120, 80).webpsave_buffer(Q=80), job(70, 30))
    assert rendered.source_format == "webp"
    assert rendered.content_type == "image/jpeg"
    check_output(rendered, 70, 30)


def test_webp_with_alpha_renders_as_png() -> None:
    image = photo(120, 80).bandjoin(100).copy(interpretation="srgb")
    rendered = render(image.webpsave_buffer(Q=80), job(70, 30))
    assert rendered.content_type == "image/png"
    check_output(rendered, 70, 30)


# --- EXIF orientation -------------------------------------------------------------


def test_orientation_6_turns_the_image_upright() -> None:
    """200x100, white left half, tagged 6 (turn 90 degrees clockwise): the white goes on top."""
    source = with_orientation(halves(200, 100), 6).jpegsave_buffer(Q=95)
    assert decode(source).get("orientation") == 6
    out = check_output(render(source, job(100, 200)), 100, 200)
    for x in (5, 50, 94):
        assert out(x, 10)[0] > 200, "top should be white"
        assert out(x, 190)[0] < 50, "bottom should be black"


def test_orientation_6_source_is_treated_as_portrait() -> None:
    """White on the left quarter only: upright it is the top quarter, which a square centre
    crop of the portrait cuts away; squashing the landscape into the square would not."""
    source = with_orientation(halves(200, 100, 0.25), 6).jpegsave_buffer(Q=95)
    out = check_output(render(source, job(100, 100)), 100, 100)
    assert out.crop(0, 0, 100, 10).avg() < 40


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_libvips_autorot(orientation: int) -> None:
    """Gradients along both axes: any flip, turn or stretch shows in the pixels."""
    xyz = pyvips.Image.xyz(200, 100)
    gradients = (xyz[0] * (255 / 200)).bandjoin([xyz[1] * (255 / 100), 128])
    source = with_orientation(gradients.cast("uchar").copy(interpretation="srgb"), orientation)
    body = source.jpegsave_buffer(Q=95)
    upright = decode(body).autorot()
    assert (upright.width, upright.height) == ((100, 200) if orientation >= 5 else (200, 100))
    out = check_output(
        render(body, job(upright.width, upright.height)), upright.width, upright.height
    )
    assert (out - upright).abs().avg() < 4


# --- metadata ---------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [False, True])
def test_metadata_is_stripped(alpha: bool) -> None:
    image = photo(120, 80)
    if alpha:
        image = image.bandjoin(200).copy(interpretation="srgb")
    image = with_orientation(image, 1)
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "Someone Private")
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-ImageDescription", "home address")
    source = (
        image.pngsave_buffer(profile="srgb")
        if alpha
        else image.jpegsave_buffer(Q=90, profile="srgb")
    )
    source_image = decode(source)
    assert source_image.get_typeof("exif-data") != 0
    assert source_image.get_typeof("icc-profile-data") != 0

    out = decode(render(source, job(60, 40)).body)
    assert out.get_typeof("exif-data") == 0
    assert out.get_typeof("xmp-data") == 0
    assert out.get_typeof("icc-profile-data") == 0
    assert out.get_typeof("exif-ifd0-Artist") == 0


# --- refusals ---------------------------------------------------------------------


def test_pixel_bomb_is_refused_before_decoding() -> None:
    source = photo(400, 300).jpegsave_buffer()
    with pytest.raises(SourceTooLarge):
        render(source, job(10, 10, max_pixels=400 * 300 - 1))
    check_output(render(source, job(10, 10, max_pixels=400 * 300)), 10, 10)


@pytest.mark.parametrize("name", ENCODERS)
def test_pixel_limit_applies_to_every_format(name: str) -> None:
    source = ENCODERS[name](photo(100, 100))
    with pytest.raises(SourceTooLarge):
        render(source, job(10, 10, max_pixels=5000))


def _declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares `width` x `height` pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_declared_huge_png_is_refused() -> None:
    source = _declared_png(60_000, 60_000)
    assert len(source) < 1000
    with pytest.raises(SourceTooLarge):
        render(source, job(100, 100))


@pytest.mark.parametrize(
    "body",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
        b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
        b'\xef\xbb\xbf<svg xmlns="http://www.w3.org/2000/svg"/>',
        b"This is a text file, not an image.\n",
        b"",
        b"<html><body>404</body></html>",
    ],
)
def test_svg_and_text_are_bad_images(body: bytes) -> None:
    with pytest.raises(BadImage):
        render(body, job(10, 10))


@pytest.mark.parametrize(
    "body",
    [
        b"P6\n2 2\n255\n" + bytes(12),  # PPM
        b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        b"BM" + bytes(60),  # BMP
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64),  # MP4
    ],
)
def test_blocked_formats_are_bad_images(body: bytes) -> None:
    with pytest.raises(BadImage):
        render(body, job(10, 10))


def _render_or_bad(body: bytes) -> None:
    """A damaged source is either refused as BadImage or renders to a valid preview."""
    try:
        rendered = render(body, job(40, 30))
    except (BadImage, SourceTooLarge):
        return
    check_output(rendered, 40, 30)


JPEG = photo(200, 150).jpegsave_buffer(Q=90)


@pytest.mark.parametrize(
    "body",
    [
        JPEG[:3],
        JPEG[:20],
        JPEG[:200],
        JPEG[: len(JPEG) // 2],
        JPEG[:-2],
        JPEG[:-200],
        b"\xff\xd8\xff" + b"garbage" * 100,
        b"\xff\xd8\xff\xe0" + bytes(1000),
        JPEG[:600] + b"\x00" * 2000,
        JPEG[:600] + bytes(range(256)) * 8,
        JPEG + b"trailing junk after the end of image",
    ],
)
def test_damaged_jpeg_is_bad_or_decodable(body: bytes) -> None:
    _render_or_bad(body)


@pytest.mark.parametrize("name", ENCODERS)
def test_signature_followed_by_junk_is_a_bad_image(name: str) -> None:
    valid = ENCODERS[name](photo(40, 30))
    signature = valid[:12]
    with pytest.raises(BadImage):
        render(signature + b"\x00junk" * 50, job(10, 10))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(ENCODERS)),
    cut=st.floats(min_value=0.0, max_value=1.0),
    junk=st.binary(max_size=64),
)
def test_truncated_sources_never_raise_anything_else(name: str, cut: float, junk: bytes) -> None:
    valid = ENCODERS[name](photo(60, 40))
    _render_or_bad(valid[: max(12, int(len(valid) * cut))] + junk)


# --- frame limit ------------------------------------------------------------------


def test_frames_up_to_the_limit_render_the_first_frame() -> None:
    check_output(render(images.gif_frames(imaging.MAX_FRAMES), job(10, 10)), 10, 10)


def test_more_frames_than_the_limit_are_refused() -> None:
    with pytest.raises(SourceTooLarge) as info:
        render(images.gif_frames(imaging.MAX_FRAMES + 1), job(10, 10))
    assert str(imaging.MAX_FRAMES) in info.value.public_message


def test_ten_thousand_frames_are_refused_from_a_cheap_header_read() -> None:
    source = images.gif_frames(10_000)
    assert len(source) < 250_000

    def refusal() -> float:
        started = time.perf_counter()
        with pytest.raises(SourceTooLarge):
            render(source, job(100, 100))
        return time.perf_counter() - started

    def decoding_every_frame() -> float:
        started = time.perf_counter()
        pyvips.Image.new_from_buffer(source, "", n=-1).avg()
        return time.perf_counter() - started

    # the baseline, measured side by side: what reading every frame costs (about 20
    # to 40 times the refusal); the least of three runs of each filters out stalls
    refused = min(refusal() for _ in range(3))
    decoded = min(decoding_every_frame() for _ in range(3))
    assert refused < decoded / 4, f"refused in {refused:.4f}s, frames decode in {decoded:.4f}s"


# --- cancellation -----------------------------------------------------------------


class Polls:
    """A `cancelled` callable that turns true after `after` polls, counting them."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.count = 0

    def __call__(self) -> bool:
        self.count += 1
        return self.count > self.after


def test_a_render_cancelled_from_the_start_does_no_work() -> None:
    polls = Polls(after=0)
    with pytest.raises(RequestTimeout):
        render(photo(200, 150).jpegsave_buffer(), job(50, 50), polls)
    assert polls.count == 1


@pytest.mark.parametrize("after", range(1, len(imaging.STEPS) + 1))
def test_cancellation_is_checked_between_steps(after: int) -> None:
    """Centre gravity on a JPEG: every step is lazy, so each poll before the encode is
    one of the between-step checks, and the render stops at the one that says so."""
    polls = Polls(after=after)
    with pytest.raises(RequestTimeout):
        render(photo(200, 150).jpegsave_buffer(), job(50, 50), polls)
    assert polls.count == after + 1


@pytest.mark.parametrize("gravity", ["centre", "attention"])
def test_a_render_that_is_never_cancelled_is_unchanged(gravity: str) -> None:
    rendered = render(photo(400, 300).jpegsave_buffer(), job(90, 60, gravity=gravity), Polls(10**9))
    check_output(rendered, 90, 60)


@pytest.fixture(scope="module")
def large_jpeg() -> bytes:
    """6000x6000 gradients: about half a second to fill 4000x3000 on the build machine."""
    xyz = pyvips.Image.xyz(6000, 6000)
    image = (xyz[0] * (255 / 6000)).bandjoin([xyz[1] * (255 / 6000), xyz[0] * (128 / 6000)])
    data: bytes = image.cast("uchar").copy(interpretation="srgb").jpegsave_buffer(Q=90)
    return data


@pytest.mark.parametrize("gravity", ["centre", "attention"])
def test_cancelling_a_long_render_stops_libvips_midway(large_jpeg: bytes, gravity: str) -> None:
    """The cancel comes while libvips is computing pixels (one long evaluation), not at a
    step boundary; the evaluation is killed and the render ends long before its time.

    Work is counted in polls, not seconds: libvips asks at each step of its progress
    (a few hundred times for this render), so the count measures pixels computed,
    whatever else the machine is doing."""
    target = job(4000, 3000, gravity=gravity)
    polls = 0

    def counting() -> bool:
        nonlocal polls
        polls += 1
        return False

    check_output(render(large_jpeg, target, counting), 4000, 3000)
    full = polls
    # a quarter of the way through: well past the step boundaries, inside libvips
    cancel_at = full // 4
    assert cancel_at > len(imaging.STEPS) + 1
    polls = 0

    def cancelled() -> bool:
        nonlocal polls
        polls += 1
        return polls >= cancel_at

    with pytest.raises(RequestTimeout):
        render(large_jpeg, target, cancelled)
    after = polls - cancel_at
    assert after < full // 10, f"{after} more polls after the cancel, of {full} in all"
    # and libvips is left in a state that renders the next source normally
    check_output(render(photo(200, 150).jpegsave_buffer(), job(50, 50)), 50, 50)


def _noise_jpeg(seed: int) -> bytes:
    data: bytes = images.photo(200, 150, sigma=10, subject=False, seed=seed).jpegsave_buffer(Q=85)
    return data


def test_complete_and_truncated_sources_are_told_apart() -> None:
    source = _noise_jpeg(images.SEED)
    complete = render(source, job(50, 40))
    assert complete.complete is True
    for cut in (source[: len(source) // 2], source[:-2]):
        rendered = render(cut, job(50, 40))
        assert rendered.complete is False
        check_output(rendered, 50, 40)


def test_a_jpeg_missing_only_its_end_marker_but_no_coded_bit_is_whole() -> None:
    # The entropy-coded data of this source ends where libjpeg never has to read
    # past its last byte (true of about 1 noise image in 25; with libvips's encoder,
    # of seed 11 at this size): without its end marker it decodes in full, without
    # a warning, to exactly the complete source's preview.
    source = _noise_jpeg(11)
    complete = render(source, job(50, 40))
    no_end = render(source[:-2], job(50, 40))
    assert no_end.complete is True
    assert no_end.body == complete.body


# --- colour profiles --------------------------------------------------------------

COLOUR = [40, 200, 90]


def mean_colour(image: Image) -> list[float]:
    return [image[band].avg() for band in range(image.bands)]


def reference(source: bytes) -> list[float]:
    """The source's mean colour converted to sRGB through its own profile by libvips."""
    return mean_colour(decode(source).icc_transform("srgb", embedded=True))


def profiled_sources() -> dict[str, bytes]:
    return {
        "display-p3": images.p3_jpeg(COLOUR),
        "adobe-rgb": images.with_profile(
            solid(120, 80, COLOUR), images.adobe_rgb_profile()
        ).jpegsave_buffer(Q=95),
        "adobe-rgb-png": images.with_profile(
            solid(120, 80, COLOUR), images.adobe_rgb_profile()
        ).pngsave_buffer(),
        "grey-linear": images.with_profile(
            images.solid(120, 80, [128], "b-w"), images.grey_profile(1.0)
        ).jpegsave_buffer(Q=95),
        "cmyk-profile": solid(120, 80, COLOUR)
        .icc_transform("cmyk", input_profile="srgb")
        .jpegsave_buffer(Q=95),
    }


@pytest.mark.parametrize("name", list(profiled_sources()))
@pytest.mark.parametrize(("width", "height"), [(60, 40), (30, 30), (4, 400)])
@pytest.mark.parametrize("gravity", ["centre", "attention"])
def test_embedded_profiles_are_applied(name: str, width: int, height: int, gravity: str) -> None:
    """The preview's colour is the source's converted through its profile, on both fill
    paths (4x400 from a 120x80 source crops a region); no profile is left in it."""
    source = profiled_sources()[name]
    assert decode(source).get_typeof("icc-profile-data") != 0
    rendered = render(source, job(width, height, gravity=gravity))
    out = check_output(rendered, width, height)
    assert out.get_typeof("icc-profile-data") == 0
    assert out.interpretation == "srgb"
    expected = reference(source)
    if len(expected) == 1:
        expected = expected * 3
    for got, want in zip(mean_colour(out), expected, strict=True):
        assert abs(got - want) <= 3, (mean_colour(out), expected)


@pytest.mark.parametrize("name", ["display-p3", "adobe-rgb", "grey-linear"])
def test_ignoring_the_profile_would_be_seen(name: str) -> None:
    """The test sources are far enough from sRGB that dropping the profile would fail."""
    source = profiled_sources()[name]
    raw = mean_colour(decode(source))
    converted = reference(source)
    assert max(abs(a - b) for a, b in zip(raw, converted, strict=False)) > 15


@pytest.mark.parametrize(("width", "height"), [(60, 40), (4, 400)])
def test_a_source_without_a_profile_keeps_its_srgb_values(width: int, height: int) -> None:
    source = solid(120, 80, COLOUR).jpegsave_buffer(Q=95)
    assert decode(source).get_typeof("icc-profile-data") == 0
    out = check_output(render(source, job(width, height)), width, height)
    for got, want in zip(mean_colour(out), COLOUR, strict=True):
        assert abs(got - want) <= 2


def test_16_bit_source_with_a_profile_becomes_8_bit_srgb() -> None:
    rgb16 = (solid(50, 50, COLOUR) * 257).cast("ushort").copy(interpretation="rgb16")
    source = images.with_profile(rgb16, images.adobe_rgb_profile()).pngsave_buffer()
    out = check_output(render(source, job(20, 20)), 20, 20)
    expected = mean_colour(decode(source).icc_transform("srgb", embedded=True, depth=8))
    for got, want in zip(mean_colour(out), expected, strict=True):
        assert abs(got - want) <= 3


# --- AVIF, HEIF and TIFF sources ----------------------------------------------------


def test_avif_renders() -> None:
    rendered = render(images.avif(120, 80), job(60, 40))
    assert rendered.source_format == "avif"
    assert rendered.content_type == "image/jpeg"
    check_output(rendered, 60, 40)


def test_avif_with_alpha_renders_as_png() -> None:
    image = photo(120, 80).bandjoin(100).copy(interpretation="srgb")
    rendered = render(images.avif(image=image), job(60, 40))
    assert rendered.content_type == "image/png"
    check_output(rendered, 60, 40)


def test_heic_renders_through_pillow_heif() -> None:
    source = images.heic(image=solid(120, 80, [200, 100, 50]).cast("uchar"))
    assert sniff(source) == "heic"
    rendered = render(source, job(60, 40))
    assert rendered.source_format == "heic"
    assert rendered.content_type == "image/jpeg"
    out = check_output(rendered, 60, 40)
    assert all(abs(a - b) <= 4 for a, b in zip(mean_colour(out), [200, 100, 50], strict=True))


@pytest.mark.parametrize("gravity", ["centre", "attention"])
@pytest.mark.parametrize(("width", "height"), [(60, 40), (30, 90), (4, 80)])
def test_heic_alpha_is_kept(gravity: str, width: int, height: int) -> None:
    alpha = (pyvips.Image.xyz(120, 80)[1] < 40).ifthenelse(255, 0)
    image = solid(120, 80, [40, 200, 90]).bandjoin(alpha).cast("uchar")
    rendered = render(images.heic(image=image.copy(interpretation="srgb")), job(width, height))
    assert rendered.content_type == "image/png"
    out = check_output(rendered, width, height)
    assert out[3].max() == 255  # the opaque top half is in every crop


@pytest.mark.parametrize("orientation", [2, 3, 5, 6, 7, 8])
@pytest.mark.parametrize(("width", "height"), [(50, 100), (100, 50), (4, 300)])
def test_heic_orientation_is_applied_once(orientation: int, width: int, height: int) -> None:
    """pillow-heif writes the turn as `irot`/`imir` and keeps it in EXIF, as iPhones do:
    the preview matches a JPEG with that EXIF orientation, turned once."""
    stored = halves(200, 100, 0.3)
    heic = render(images.heic(image=stored, orientation=orientation), job(width, height))
    jpeg = render(with_orientation(stored, orientation).jpegsave_buffer(Q=95), job(width, height))
    difference = (decode(heic.body).cast("float") - decode(jpeg.body)).abs().avg()
    assert difference < 12


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_heic_exif_orientation_without_a_container_turn(orientation: int) -> None:
    stored = halves(200, 100, 0.3)
    source = images.exif_turn_only(images.heic(image=stored, orientation=orientation))
    assert b"irot" not in source
    heic = render(source, job(50, 100))
    jpeg = render(with_orientation(stored, orientation).jpegsave_buffer(Q=95), job(50, 100))
    assert (decode(heic.body).cast("float") - decode(jpeg.body)).abs().avg() < 12


def test_grey_heic() -> None:
    source = images.heic(image=solid(60, 40, [128, 128, 128]).cast("uchar"), grey=True)
    out = check_output(render(source, job(30, 20)), 30, 20)
    assert all(abs(value - 128) <= 4 for value in mean_colour(out))


def test_heic_nclx_display_p3_is_converted_to_srgb() -> None:
    """No ICC profile, but nclx colour primaries 12: Display P3, as Android phones write."""
    colour = [40, 200, 90]
    source = images.heic(image=solid(120, 80, colour).cast("uchar"), nclx_primaries=12)
    got = mean_colour(check_output(render(source, job(60, 40)), 60, 40))
    expected = solid(1, 1, colour).cast("uchar").icc_transform("srgb", input_profile="p3")(0, 0)
    assert all(abs(a - b) <= 4 for a, b in zip(got, expected, strict=True)), (got, expected)


def test_heic_decode_is_abandoned_with_the_render() -> None:
    source = images.heic(320, 240)
    with pytest.raises(RequestTimeout):
        render(source, job(60, 40), cancelled=lambda: True)
    polls = iter(range(1000))
    with pytest.raises(RequestTimeout):  # given up while the HEVC decode ran
        render(source, job(60, 40), cancelled=lambda: next(polls) >= 2)


def test_heic_display_p3_is_converted_to_srgb() -> None:
    colour = [40, 200, 90]
    p3 = solid(1, 1, [0, 0, 0]).icc_transform("p3", input_profile="srgb").get("icc-profile-data")
    source = images.heic(image=solid(120, 80, colour).cast("uchar"), profile=p3)
    out = check_output(render(source, job(60, 40)), 60, 40)
    reference = images.with_profile(solid(1, 1, colour).cast("uchar"), p3)
    expected = reference.icc_transform("srgb", embedded=True)(0, 0)
    got = mean_colour(out)
    assert all(abs(a - b) <= 4 for a, b in zip(got, expected, strict=True)), (got, expected)
    assert any(abs(a - b) > 15 for a, b in zip(got, colour, strict=True))  # not the raw values


def test_heic_over_the_pixel_limit_is_refused_before_decoding() -> None:
    with pytest.raises(SourceTooLarge):
        render(images.heic(120, 80), job(30, 20, max_pixels=120 * 80 - 1))
    # a clean aperture would show 64x48 of a declared 20000x20000: the declared size counts
    with pytest.raises(SourceTooLarge):
        render(images.declaring(images.heic(64, 48), 20_000, 20_000), job(30, 20))


def test_heic_that_declares_more_than_it_holds_is_bad() -> None:
    with pytest.raises(BadImage):
        render(images.declaring(images.heic(64, 48), 128, 96), job(30, 20))


@pytest.mark.parametrize("fraction", [0.005, 0.1, 0.5, 0.8, 0.95, 0.99])
def test_truncated_heic_is_bad(fraction: float) -> None:
    """pillow-heif decodes an image whole or not at all: a HEIC cut short anywhere,
    in its boxes or in its coded data, is refused."""
    source = images.heic(320, 240)
    with pytest.raises(BadImage):
        render(source[: int(len(source) * fraction)], job(60, 40))


def test_avif_sequence_gives_its_first_frame() -> None:
    source = images.avif_sequence([[255, 0, 0], [0, 0, 255], [0, 255, 0]])
    assert source[8:12] == b"avis"
    assert sniff(source) == "avif"
    red, green, blue = mean_colour(check_output(render(source, job(30, 20)), 30, 20))
    assert red > 240
    assert green < 15
    assert blue < 15


def test_avif_sequence_frame_limit() -> None:
    source = images.avif_sequence([[255, 0, 0], [0, 0, 255]])
    check_output(render(source, job(8, 8)), 8, 8)
    with pytest.raises(SourceTooLarge):  # counted from the track, before anything is decoded
        render(images.frames_declared(source, imaging.MAX_FRAMES + 1), job(8, 8))


def test_tiff_renders() -> None:
    rendered = render(images.tiff(), job(60, 40))
    assert rendered.source_format == "tiff"
    check_output(rendered, 60, 40)


def test_bigtiff_renders() -> None:
    source = images.tiff(bigtiff=True)
    assert source[:4] == b"II+\x00"
    check_output(render(source, job(60, 40)), 60, 40)


def test_multipage_tiff_gives_its_first_page() -> None:
    source = images.multipage_tiff([[255, 0, 0], [0, 0, 255], [0, 255, 0]])
    assert decode(source).get("n-pages") == 3
    out = check_output(render(source, job(30, 20)), 30, 20)
    red, green, blue = mean_colour(out)
    assert red > 240
    assert green < 15
    assert blue < 15


@pytest.mark.parametrize(("width", "height"), [(50, 100), (4, 300)])
def test_tiff_orientation_is_applied(width: int, height: int) -> None:
    """Stored 200x100, white left half, orientation 6: upright the white half is on top."""
    source = with_orientation(halves(200, 100), 6).tiffsave_buffer()
    assert decode(source).get("orientation") == 6
    out = check_output(render(source, job(width, height)), width, height)
    assert out.crop(0, 0, width, height // 5).avg() > 200, "top should be white"
    assert out.crop(0, height * 4 // 5, width, height // 5).avg() < 50, "bottom should be black"


@pytest.mark.parametrize("keep", ["icc", "none"])
def test_cmyk_tiff_becomes_srgb(keep: str) -> None:
    """With its profile or without (then libvips's default CMYK profile), on both paths."""
    cmyk = solid(120, 80, COLOUR).icc_transform("cmyk", input_profile="srgb")
    source = cmyk.tiffsave_buffer(keep=keep)
    loaded = decode(source)
    assert loaded.interpretation == "cmyk"
    assert (loaded.get_typeof("icc-profile-data") != 0) is (keep == "icc")
    expected = mean_colour(loaded.icc_transform("srgb", input_profile="cmyk"))
    for width, height in ((60, 40), (4, 300)):
        out = check_output(render(source, job(width, height)), width, height)
        for got, want in zip(mean_colour(out), expected, strict=True):
            assert abs(got - want) <= 3


def test_16_bit_tiff_is_scaled_to_8_bit() -> None:
    rgb16 = pyvips.Image.black(50, 50).cast("ushort").new_from_image([65535, 0, 32768])
    source = rgb16.copy(interpretation="rgb16").tiffsave_buffer()
    assert decode(source).format == "ushort"
    out = check_output(render(source, job(20, 20)), 20, 20)
    red, green, blue = mean_colour(out)
    assert red > 245
    assert green < 10
    assert abs(blue - 128) < 5


@pytest.mark.parametrize(
    "source",
    [images.tiff_declaring(60_000, 60_000), images.avif_declaring(20_000, 20_000)],
    ids=["tiff", "avif"],
)
def test_new_format_pixel_bombs_are_refused_before_decoding(source: bytes) -> None:
    assert len(source) < 2000
    started = time.perf_counter()
    with pytest.raises(SourceTooLarge):
        render(source, job(100, 100))
    assert time.perf_counter() - started < 5  # a decode would allocate gigabytes first


def test_tiff_with_too_many_pages_is_refused() -> None:
    colours = [[n % 256, 0, 0] for n in range(imaging.MAX_FRAMES + 1)]
    source = images.multipage_tiff(colours, width=2, height=2)
    with pytest.raises(SourceTooLarge):
        render(source, job(10, 10))


# --- thin sources: the fill crops a region of the source -----------------------------


@pytest.mark.parametrize("gravity", ["centre", "attention"])
@pytest.mark.parametrize(
    ("source_size", "target"),
    [((940, 2), (1000, 1000)), ((1, 5000), (300, 200)), ((5000, 1), (200, 300)), ((2, 1), (9, 1))],
)
def test_thin_sources_render_to_the_exact_size(
    gravity: str, source_size: tuple[int, int], target: tuple[int, int]
) -> None:
    source = images.thin_png(*source_size)
    check_output(render(source, job(*target, gravity=gravity)), *target)


def test_thin_source_centre_shows_its_middle() -> None:
    """A ramp 0..255 along 5000 pixels: the middle is mid-grey, not an end."""
    out = check_output(render(images.thin_png(5000, 1), job(100, 100)), 100, 100)
    assert abs(out.avg() - 127) < 3


def test_region_fill_attention_finds_the_subject() -> None:
    """A long grey strip with one saturated patch near its end: centre misses it.

    The patch is wider than a cell of the analysis's 32-cell summary (125 px
    here): the analysis places a crop to within a cell, so a narrower patch
    would be found or not by where the cell edges happen to fall."""
    xyz = pyvips.Image.xyz(4000, 10)
    patch = (xyz[0] > 3500) & (xyz[0] < 3700)
    strip = patch.ifthenelse([230, 40, 40], [90, 90, 90]).cast("uchar")
    source = strip.copy(interpretation="srgb").pngsave_buffer()
    centre = check_output(render(source, job(100, 100)), 100, 100)
    attention = check_output(render(source, job(100, 100, gravity="attention")), 100, 100)
    assert centre[0].avg() < 100
    assert attention[0].avg() > 200


@pytest.mark.parametrize("orientation", range(1, 9))
def test_region_fill_follows_every_orientation(orientation: int) -> None:
    """A 400x20 strip of gradients, tagged: the region path must show what libvips's
    autorot followed by a centre crop shows."""
    xyz = pyvips.Image.xyz(400, 20)
    gradients = (xyz[0] * (255 / 400)).bandjoin([xyz[1] * (255 / 20), 128])
    tagged = with_orientation(gradients.cast("uchar").copy(interpretation="srgb"), orientation)
    body = tagged.pngsave_buffer()
    upright = decode(body).autorot()
    side = min(upright.width, upright.height)
    expected = upright.crop((upright.width - side) // 2, (upright.height - side) // 2, side, side)
    expected = expected.resize(100 / side)
    out = check_output(render(body, job(100, 100)), 100, 100)
    assert (out - expected).abs().avg() < 6


# --- output formats ------------------------------------------------------------------


def decode_any(body: bytes) -> tuple[str, Image]:
    """The loader and the decoded pixels of any output, AVIF included: the HEIF loader
    is let through for this decode only (configure() blocks it process-wide)."""
    pyvips.operation_block_set("VipsForeignLoadHeif", False)
    try:
        image = pyvips.Image.new_from_buffer(body, "")
        return image.get("vips-loader"), image.copy_memory()
    finally:
        imaging.configure()


@pytest.mark.parametrize(
    ("output_format", "content_type", "loader"),
    [("webp", "image/webp", "webpload_buffer"), ("avif", "image/avif", "heifload_buffer")],
)
@pytest.mark.parametrize("alpha", [False, True])
def test_negotiated_formats_encode_what_they_say(
    output_format: str, content_type: str, loader: str, alpha: bool
) -> None:
    source = photo(320, 240)
    if alpha:
        source = source.bandjoin(200).copy(interpretation="srgb")
    body = source.pngsave_buffer()
    rendered = render(body, RenderJob(96, 64, "centre", 70, 10**8, output_format, effort=0))
    assert rendered.content_type == content_type
    assert (rendered.width, rendered.height) == (96, 64)
    found, image = decode_any(rendered.body)
    assert found == loader
    assert (image.width, image.height) == (96, 64)
    assert bool(image.hasalpha()) is alpha
    assert image.bands == (4 if alpha else 3)
    if alpha:
        assert abs(image[3].avg() - 200) < 3
    else:  # the picture survives: mean colour within a few levels of the JPEG's
        jpeg = decode(render(body, job(96, 64)).body)
        assert abs(image.avg() - jpeg.avg()) < 4


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_negotiated_formats_keep_no_metadata(output_format: str) -> None:
    source = with_orientation(photo(120, 90), 1)
    source.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "someone")
    body = source.jpegsave_buffer(Q=90)
    rendered = render(body, RenderJob(60, 40, "centre", 70, 10**8, output_format, effort=0))
    _, image = decode_any(rendered.body)
    assert not image.get_typeof("exif-data")
    assert not image.get_typeof("icc-profile-data")


def test_avif_effort_reaches_the_encoder() -> None:
    """Effort changes the bytes (same pixels, same quality): it is really passed on."""
    body = photo(400, 300).jpegsave_buffer(Q=90)
    fast = render(body, RenderJob(200, 150, "centre", 60, 10**8, "avif", effort=0))
    slow = render(body, RenderJob(200, 150, "centre", 60, 10**8, "avif", effort=4))
    assert fast.body != slow.body


# --- fit ------------------------------------------------------------------------------


def fit_job(width: int, height: int, **changes: Any) -> RenderJob:
    job = RenderJob(width, height, "attention", 80, 50_000_000, operation="fit")
    return dataclasses.replace(job, **changes)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.tuples(st.integers(1, 300), st.integers(1, 300)),
    box=st.tuples(st.integers(1, 400), st.integers(1, 400)),
)
def test_a_fit_is_exactly_the_size_geometry_gives(
    source: tuple[int, int], box: tuple[int, int]
) -> None:
    body = photo(*source).pngsave_buffer()
    expected = fit(Size(*source), Size(*box))
    check_output(render(body, fit_job(*box)), expected.width, expected.height)


def test_a_fit_keeps_every_edge_of_the_source() -> None:
    """White left half, black right half, fitted into a square: both halves, in proportion."""
    out = check_output(render(halves(400, 100).pngsave_buffer(), fit_job(200, 200)), 200, 50)
    assert out.crop(0, 0, 95, 50).avg() > 250
    assert out.crop(105, 0, 95, 50).avg() < 5


def test_a_large_progressive_jpeg_fits_through_the_dc_path() -> None:
    """A 1/8 load covers the fit: the DC-only decode gives the same picture."""
    source = images.noisy_gradient(1600, 1200).jpegsave_buffer(Q=90, interlace=True)
    fitted = render(source, fit_job(150, 150))
    out = check_output(fitted, 150, 113)
    reference = pyvips.Image.thumbnail_buffer(source, 150, height=150)
    assert (reference.width, reference.height) == (150, 113)
    assert (out.cast("float") - reference.cast("float")).abs().avg() < 6


def test_a_fit_converts_an_embedded_profile_to_srgb() -> None:
    colour = [30, 200, 60]
    out = check_output(render(images.p3_jpeg(colour), fit_job(60, 60)), 60, 40)
    srgb = solid(1, 1, colour).copy(interpretation="srgb")
    p3_in_srgb = srgb.icc_transform("srgb", input_profile="p3")(0, 0)
    assert all(abs(a - b) < 6 for a, b in zip(out(30, 20), p3_in_srgb, strict=True))


def test_a_fit_of_an_orientation_8_source_is_upright() -> None:
    tagged = with_orientation(halves(200, 100), 8).jpegsave_buffer(Q=90)
    out = check_output(render(tagged, fit_job(100, 100)), 50, 100)
    # 8 turns the image a quarter anticlockwise: its white left half ends at the bottom
    assert out.crop(0, 55, 50, 45).avg() > 200
    assert out.crop(0, 0, 50, 45).avg() < 50


def test_a_fit_ignores_the_gravity() -> None:
    body = images.jpeg(640, 480)
    bodies = {render(body, fit_job(100, 100, gravity=g)).body for g in ("attention", "centre")}
    assert len(bodies) == 1


def test_a_fit_refuses_a_source_over_the_pixel_limit() -> None:
    with pytest.raises(SourceTooLarge):
        render(images.thin_png(101, 100), fit_job(50, 50, max_pixels=10_000))
