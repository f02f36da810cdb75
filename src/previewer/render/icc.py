"""ICC profiles: whether an embedded profile says it is sRGB.

Pure: imports nothing that touches the network, the disk or libvips.

A source whose embedded profile is sRGB needs no conversion to become an
sRGB preview; converting it anyway costs a colour transform per render
(about 8% of a 4000x3000 JPEG's render, docs/performance.md). Camera and
editor JPEGs very often embed an sRGB profile, so it is told from its
description tag ("sRGB IEC61966-2.1", "sRGB built-in", ...). Anything that
can't be read, or names another space, is converted through its profile.
"""

from __future__ import annotations

_HEADER = 128
_MAX_TAGS = 100


def description(profile: bytes) -> str:
    """The profile's description (its `desc` tag, v2 text or v4 multi-language), or ""."""
    if len(profile) < _HEADER + 4:
        return ""
    count = int.from_bytes(profile[_HEADER : _HEADER + 4], "big")
    for n in range(min(count, _MAX_TAGS)):
        entry = _HEADER + 4 + 12 * n
        if entry + 12 > len(profile):
            return ""
        if profile[entry : entry + 4] != b"desc":
            continue
        offset = int.from_bytes(profile[entry + 4 : entry + 8], "big")
        size = int.from_bytes(profile[entry + 8 : entry + 12], "big")
        return _text(profile[offset : offset + size])
    return ""


def _text(tag: bytes) -> str:
    kind = tag[:4]
    if kind == b"desc" and len(tag) >= 12:  # ICC v2 textDescriptionType: ASCII first
        length = int.from_bytes(tag[8:12], "big")
        return tag[12 : 12 + length].split(b"\x00")[0].decode("latin-1")
    if kind == b"mluc" and len(tag) >= 28:  # ICC v4 multiLocalizedUnicodeType: first record
        length = int.from_bytes(tag[20:24], "big")
        start = int.from_bytes(tag[24:28], "big")
        return tag[start : start + length].decode("utf-16-be", errors="replace")
    return ""


def is_srgb(profile: bytes) -> bool:
    """Whether the profile describes itself as sRGB."""
    return description(profile).strip().lower().startswith("srgb")
