"""previewer.render.icc: an embedded profile's description, and whether it names sRGB."""

from __future__ import annotations

import struct

import pytest
import pyvips

import images
from previewer.render import icc


def builtin(name: str) -> bytes:
    image = images.solid(2, 2, [1, 2, 3]).icc_transform(name, input_profile="srgb")
    data: bytes = image.get("icc-profile-data")
    return data


def v4_profile(text: str) -> bytes:
    """A header, a one-entry tag table and a v4 `mluc` description of `text`."""
    utf16 = text.encode("utf-16-be")
    mluc = b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS"
    mluc += struct.pack(">II", len(utf16), 28) + utf16
    table = struct.pack(">I", 1) + struct.pack(">4sII", b"desc", 128 + 16, len(mluc))
    return bytes(128) + table + mluc


def test_libvips_srgb_profile_is_srgb() -> None:
    assert icc.is_srgb(builtin("srgb"))


@pytest.mark.parametrize("name", ["p3", "cmyk"])
def test_other_builtin_profiles_are_not(name: str) -> None:
    assert icc.description(builtin(name))
    assert not icc.is_srgb(builtin(name))


def test_v2_descriptions() -> None:
    assert icc.description(images.adobe_rgb_profile()) == "Adobe RGB (1998) compatible"
    assert not icc.is_srgb(images.adobe_rgb_profile())
    assert not icc.is_srgb(images.grey_profile())


@pytest.mark.parametrize(
    ("text", "srgb"),
    [
        ("sRGB IEC61966-2.1", True),
        ("sRGB built-in", True),
        ("  srgb v4 ICC preference", True),
        ("Display P3", False),
        ("ProPhoto RGB", False),
        ("Generic Gray Gamma 2.2 Profile", False),
    ],
)
def test_v4_descriptions(text: str, srgb: bool) -> None:
    profile = v4_profile(text)
    assert icc.description(profile) == text
    assert icc.is_srgb(profile) is srgb


@pytest.mark.parametrize(
    "profile",
    [
        b"",
        bytes(100),
        bytes(132),  # a header and no tags
        bytes(128) + struct.pack(">I", 5),  # five tags declared, none present
        bytes(128) + struct.pack(">I", 1) + struct.pack(">4sII", b"desc", 10_000, 40),
        bytes(128) + struct.pack(">I", 1) + struct.pack(">4sII", b"desc", 144, 8) + b"desc\x00",
        v4_profile("sRGB")[:-6],  # the text cut short: what is left is not sRGB
    ],
)
def test_damaged_profiles_are_not_srgb(profile: bytes) -> None:
    assert not icc.is_srgb(profile)


def test_a_jpeg_with_an_srgb_profile_keeps_its_values() -> None:
    """Rendered without a colour transform, it matches the same JPEG without the profile."""
    from previewer.render import imaging

    imaging.configure()
    source = images.solid(120, 80, [40, 200, 90]).jpegsave_buffer(Q=95, profile="srgb")
    assert icc.is_srgb(pyvips.Image.new_from_buffer(source, "").get("icc-profile-data"))
    rendered = imaging.render(source, imaging.RenderJob(60, 40, "centre", 90, 10**8))
    out = images.decode(rendered.body)
    assert [round(out[band].avg()) for band in range(3)] == [40, 200, 90]
