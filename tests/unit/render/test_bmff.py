"""ISO-BMFF boxes: the primary image's coding, the largest extent, frame counts."""

from __future__ import annotations

import pytest

from previewer.render.bmff import AV1, HEVC, frames, largest_extent, primary_coding


def _box(kind: bytes, *children: bytes) -> bytes:
    payload = b"".join(children)
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _large_box(kind: bytes, *children: bytes) -> bytes:
    """A box whose size is in the 64-bit field after its type."""
    payload = b"".join(children)
    return (1).to_bytes(4, "big") + kind + (16 + len(payload)).to_bytes(8, "big") + payload


def _full(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return _box(kind, bytes([version, 0, 0, 0]), payload)


def _pitm(item: int) -> bytes:
    return _full(b"pitm", item.to_bytes(2, "big"))


def _infe(item: int, kind: bytes, version: int = 2) -> bytes:
    return _full(b"infe", item.to_bytes(2, "big") + b"\x00\x00" + kind + b"\x00", version)


def _iinf(*entries: bytes) -> bytes:
    return _full(b"iinf", len(entries).to_bytes(2, "big") + b"".join(entries))


def _reference(kind: bytes, source: int, *targets: int) -> bytes:
    ids = b"".join(t.to_bytes(2, "big") for t in targets)
    return _box(kind, source.to_bytes(2, "big"), len(targets).to_bytes(2, "big"), ids)


def _iref(*references: bytes) -> bytes:
    return _full(b"iref", b"".join(references))


def _meta(*children: bytes) -> bytes:
    return _full(b"meta", b"".join(children))


FTYP = _box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic")


def test_the_primary_item_s_type_is_its_coding() -> None:
    data = FTYP + _meta(_pitm(1), _iinf(_infe(1, HEVC)))
    assert primary_coding(data) == HEVC


def test_a_box_with_a_64_bit_size_is_read() -> None:
    data = FTYP + _large_box(b"meta", b"\x00\x00\x00\x00", _pitm(1), _iinf(_infe(1, AV1)))
    assert primary_coding(data) == AV1


def test_a_last_box_of_size_zero_runs_to_the_end() -> None:
    meta = _meta(_pitm(1), _iinf(_infe(1, HEVC)))
    data = FTYP + (0).to_bytes(4, "big") + meta[4:]
    assert primary_coding(data) == HEVC


def test_a_grid_s_coding_is_its_first_tile_s_named_by_dimg() -> None:
    entries = _iinf(_infe(1, b"grid"), _infe(2, AV1), _infe(3, HEVC))
    references = _iref(_reference(b"thmb", 3, 1), _reference(b"dimg", 1, 2, 3))
    assert primary_coding(FTYP + _meta(_pitm(1), entries, references)) == AV1


@pytest.mark.parametrize(
    "meta",
    [
        _meta(_pitm(1), _iinf(_infe(1, b"grid"), _infe(2, HEVC))),  # a grid without iref
        _meta(_pitm(1), _iinf(_infe(1, HEVC, version=1))),  # an infe version without a type
        _meta(_pitm(1), _iinf(_full(b"infe", b"\x00\x01\x00", version=2))),  # infe cut short
        _meta(_iinf(_infe(1, HEVC))),  # no primary item
    ],
    ids=["grid-without-iref", "infe-version-1", "short-infe", "no-pitm"],
)
def test_a_file_that_does_not_say_has_no_coding(meta: bytes) -> None:
    assert primary_coding(FTYP + meta) is None


def test_the_largest_extent_is_the_largest_ispe() -> None:
    def ispe(width: int, height: int) -> bytes:
        return _full(b"ispe", width.to_bytes(4, "big") + height.to_bytes(4, "big"))

    properties = _box(b"iprp", _box(b"ipco", ispe(512, 512), ispe(4096, 3072), ispe(64, 64)))
    assert largest_extent(FTYP + _meta(_pitm(1), properties)) == (4096, 3072)
    assert largest_extent(FTYP + _meta(_pitm(1))) is None


def _track(*tables: bytes) -> bytes:
    return _box(b"trak", _box(b"mdia", _box(b"minf", _box(b"stbl", *tables))))


def _stsz(count: int) -> bytes:
    return _full(b"stsz", b"\x00\x00\x00\x00" + count.to_bytes(4, "big"))


def test_frames_are_the_most_samples_of_any_track() -> None:
    movie = _box(
        b"moov",
        _box(b"mvhd", b"\x00" * 8),
        _box(b"trak", _box(b"tkhd", b"\x00" * 8)),  # a track without media tables
        _track(_box(b"stco", b"\x00" * 8)),  # sample tables without sample sizes
        _track(_stsz(12)),
        _track(_stsz(3)),
    )
    assert frames(FTYP + movie) == 12
    assert frames(FTYP + _box(b"moov", _box(b"trak", _box(b"tkhd")))) == 0
    assert frames(FTYP) == 0
