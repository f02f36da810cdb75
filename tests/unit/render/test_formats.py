"""previewer.render.formats: formats told from their first bytes, ISO-BMFF brands included."""

from __future__ import annotations

import struct

import pytest

from previewer.render import bmff, formats


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def meta(
    primary: int,
    items: dict[int, bytes],
    derived: dict[int, list[int]] | None = None,
    *,
    version: int = 0,
) -> bytes:
    """A `meta` box: `pitm`, `iinf` with one `infe` per item, and `iref` `dimg` references.
    Version 0 boxes have 16-bit item ids, version 1 (and `infe` version 3) 32-bit."""
    id_format = ">H" if version == 0 else ">I"
    entries = b"".join(
        box(
            b"infe",
            bytes([2 if version == 0 else 3, 0, 0, 0])
            + struct.pack(id_format, item)
            + bytes(2)
            + kind,
        )
        for item, kind in items.items()
    )
    references = b"".join(
        box(
            b"dimg",
            struct.pack(id_format, item)
            + struct.pack(">H", len(inputs))
            + b"".join(struct.pack(id_format, i) for i in inputs),
        )
        for item, inputs in (derived or {}).items()
    )
    full = bytes([version, 0, 0, 0])
    count = struct.pack(">H" if version == 0 else ">I", len(items))
    return box(
        b"meta",
        bytes(4)
        + box(b"hdlr", bytes(8) + b"pict" + bytes(13))
        + box(b"pitm", full + struct.pack(id_format, primary))
        + box(b"iinf", full + count + entries)
        + box(b"iref", full + references),
    )


def ftyp(major: bytes, *compatible: bytes, meta: bytes = b"\x00\x00\x00\x08meta") -> bytes:
    brands = major + bytes(4) + b"".join(compatible)
    return struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands + meta


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (ftyp(b"avif", b"mif1", b"miaf"), formats.AVIF),
        (ftyp(b"mif1", b"avif"), formats.AVIF),  # AVIF among the compatible brands
        (ftyp(b"avis", b"msf1"), formats.AVIF),
        (ftyp(b"heic", b"mif1"), formats.HEIC),  # no items to say otherwise: the brands
        (ftyp(b"mif1", b"heic"), formats.HEIC),
        (ftyp(b"heix"), formats.HEIC),
        (ftyp(b"msf1", b"hevc"), formats.HEIC),
        (ftyp(b"mif1", b"miaf"), formats.HEIF),
        (ftyp(b"mif1", b"miaf", meta=meta(1, {1: b"hvc1"})), formats.HEIC),  # by its item
        (ftyp(b"mif1", b"miaf", meta=meta(1, {1: b"av01"})), formats.HEIF),
        (ftyp(b"avif", b"mif1", meta=meta(1, {1: b"hvc1"})), formats.HEIC),  # the codec wins
        (ftyp(b"heic", b"mif1", meta=meta(1, {1: b"av01"})), formats.HEIF),
        (ftyp(b"mif1", meta=meta(5, {5: b"grid", 6: b"hvc1"}, {5: [6]})), formats.HEIC),
        (ftyp(b"mif1", meta=meta(5, {5: b"grid", 6: b"av01"}, {5: [6]}, version=1)), formats.HEIF),
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


def _track(samples: int) -> bytes:
    sizes = box(b"stsz", bytes(4) + bytes(4) + struct.pack(">I", samples))
    return box(b"trak", box(b"mdia", box(b"minf", box(b"stbl", sizes))))


def test_frames_are_the_longest_tracks_samples() -> None:
    assert bmff.frames(ftyp(b"avif", b"mif1")) == 0
    movie = box(b"moov", box(b"mvhd", bytes(100)) + _track(3) + _track(1200))
    assert bmff.frames(ftyp(b"avis", b"avif") + movie) == 1200
    assert bmff.frames(ftyp(b"avis") + movie[:-6]) == 0  # a movie cut short: no tracks read


def test_a_sequence_is_read_as_its_still_image() -> None:
    sequence = ftyp(b"avis", b"avif", b"msf1")
    assert bmff.as_still(sequence)[8:12] == b"avif"
    assert bmff.as_still(sequence)[12:] == sequence[12:]
    still = ftyp(b"avif", b"mif1")
    assert bmff.as_still(still) is still


@pytest.mark.parametrize(
    "body",
    [
        ftyp(b"mif1", meta=box(b"meta", bytes(4) + b"\x00\x00\x00\x40pitm")),  # a box past the end
        ftyp(b"mif1", meta=meta(1, {2: b"hvc1"})),  # the primary item is not listed
        ftyp(b"mif1", meta=meta(5, {5: b"grid", 6: b"hvc1"})),  # a grid without its tiles
        ftyp(b"mif1", meta=meta(5, {5: b"iden"}, {5: [5]})),  # a loop
        ftyp(b"mif1", meta=b"\x00\x00\x00\x01meta" + bytes(4)),  # a 64-bit size cut short
    ],
)
def test_items_that_do_not_parse_say_nothing(body: bytes) -> None:
    assert bmff.primary_coding(body) is None
    assert formats.sniff(body) is formats.HEIF


def _gif(*blocks: bytes, table: bool = True) -> bytes:
    screen = struct.pack("<HHBBB", 4, 4, 0x80 if table else 0, 0, 0)
    return b"GIF89a" + screen + (bytes(6) if table else b"") + b"".join(blocks) + b"\x3b"


_IMAGE = b"\x2c" + bytes(9) + b"\x02\x02\x44\x01\x00"


@pytest.mark.parametrize(
    ("body", "transparent"),
    [
        (_gif(b"\x21\xf9\x04\x01\x00\x00\x00\x00", _IMAGE), True),
        (_gif(b"\x21\xf9\x04\x00\x00\x00\x00\x00", _IMAGE), False),
        (_gif(b"\x21\xf9\x04\x01\x00\x00\x00\x00", _IMAGE, table=False), True),
        (_gif(b"\x21\xfe\x03abc\x00", b"\x21\xf9\x04\x09\x00\x00\x05\x00", _IMAGE), True),
        (_gif(_IMAGE, b"\x21\xf9\x04\x01\x00\x00\x00\x00", _IMAGE), False),  # 2nd frame only
        (_gif(_IMAGE), False),
        (b"GIF89a\x04\x00", False),
        (_gif(b"\x21\xfe\x7f"), False),  # a comment cut short
    ],
)
def test_a_gif_has_alpha_when_its_first_frame_declares_a_transparent_colour(
    body: bytes, transparent: bool
) -> None:
    assert formats.gif_transparent(body) is transparent


def _tiff(*tags: int, order: str = "<") -> bytes:
    entries = b"".join(struct.pack(order + "HHII", tag, 3, 1, 0) for tag in tags)
    head = b"II*\x00" if order == "<" else b"MM\x00*"
    return head + struct.pack(order + "I", 8) + struct.pack(order + "H", len(tags)) + entries


def test_tiff_extra_samples() -> None:
    assert formats.tiff_extra_samples(_tiff(256, 257, 338))
    assert formats.tiff_extra_samples(_tiff(256, 338, order=">"))
    assert not formats.tiff_extra_samples(_tiff(256, 257, 259))
    assert formats.tiff_extra_samples(_tiff(256, 257)[:-4])  # cut short: nothing is known
    assert formats.tiff_extra_samples(b"II*\x00\xff\x00\x00\x00")  # directory past the end
    assert formats.tiff_extra_samples(b"II+\x00\x08\x00\x00\x00")  # BigTIFF: not read


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"<svg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/>",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n",
        b"\xff\x0a\xfa\x7f\x01\x90\x08",  # JPEG XL codestream
        b"\x00\x00\x00\x0cJXL \r\n\x87\n\x00\x00\x00\x14ftypjxl ",  # JPEG XL container
        b"\xff\x4f\xff\x51\x00\x2f\x00\x00",  # JPEG 2000 codestream
        b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00\x00\x00\x14ftypjp2 ",  # JPEG 2000 (JP2)
        b"BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00",  # BMP
        b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00",  # ICO
        b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03",  # PSD
        b"<!doctype html><html></html>",
    ],
)
def test_the_refused_formats_of_the_sniffing_table(body: bytes) -> None:
    """docs/imaging.md, "Source formats": each refused format, by its bytes."""
    assert formats.sniff(body) is None
