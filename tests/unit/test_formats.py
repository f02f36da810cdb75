"""previewer.formats: formats told from their first bytes, ISO-BMFF brands included."""

from __future__ import annotations

import struct

import pytest

from previewer import formats


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    brands = major + bytes(4) + b"".join(compatible)
    return struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands + b"\x00\x00\x00\x08meta"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (ftyp(b"avif", b"mif1", b"miaf"), formats.AVIF),
        (ftyp(b"mif1", b"avif"), formats.AVIF),  # AVIF among the compatible brands
        (ftyp(b"avis", b"msf1"), formats.AVIF),
        (ftyp(b"heic", b"mif1"), formats.HEIF),
        (ftyp(b"mif1", b"heic"), formats.HEIF),
        (ftyp(b"heix"), formats.HEIF),
        (ftyp(b"msf1", b"hevc"), formats.HEIF),
        (b"II*\x00\x08\x00\x00\x00", formats.TIFF),
        (b"MM\x00*\x00\x00\x00\x08", formats.TIFF),
        (b"II+\x00\x08\x00\x00\x00", formats.TIFF),  # BigTIFF
        (b"MM\x00+\x00\x08\x00\x00", formats.TIFF),
        (b"\xff\xd8\xff\xe0", formats.JPEG),
    ],
)
def test_sniff(body: bytes, expected: formats.Format) -> None:
    assert formats.sniff(body) is expected


@pytest.mark.parametrize(
    "body",
    [
        ftyp(b"isom", b"iso2", b"mp41"),  # an MP4 video
        ftyp(b"qt  "),  # a QuickTime movie
        ftyp(b"crx ", b"isom"),  # a Canon raw file
        b"\x00\x00\x00\x0cftypavif",  # a box too short to hold its brands
        b"\x00\x00\x00\x40ftypavif" + bytes(8),  # a box longer than the data
        b"\x00\x00\x00\x1aftypavif" + bytes(18),  # a length that is not whole brands
        b"\xff\xff\xff\xf0ftypavif" + bytes(64),
        b"\x00\x00\x00\x18moovavif" + bytes(16),  # not an ftyp box
        b"II+\x00\x04\x00\x00\x00",  # BigTIFF with a 4-byte offset size
        b"II\x2a\x01",
    ],
)
def test_sniff_refuses_lookalikes(body: bytes) -> None:
    assert formats.sniff(body) is None


def test_each_format_has_one_loader_family() -> None:
    assert formats.LOADER_CLASSES == (
        "VipsForeignLoadHeif",
        "VipsForeignLoadJpeg",
        "VipsForeignLoadNsgif",
        "VipsForeignLoadPng",
        "VipsForeignLoadTiff",
        "VipsForeignLoadWebp",
    )
