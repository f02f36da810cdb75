"""The DC-only form of progressive JPEGs: structure, decoding, robustness."""

from __future__ import annotations

import pytest
import pyvips
from hypothesis import given, settings
from hypothesis import strategies as st

import images
from previewer.render import imaging
from previewer.render.geometry import Size, jpeg_shrink
from previewer.render.jpeg import dc_only

PROGRESSIVE = images.noisy_gradient(1600, 1200).jpegsave_buffer(Q=90, interlace=True)
BASELINE = images.noisy_gradient(1600, 1200).jpegsave_buffer(Q=90)


def _scans(data: bytes) -> list[int]:
    """Spectral-selection start of every scan header, in order."""
    starts, position = [], 0
    while (position := data.find(b"\xff\xda", position)) >= 0:
        components = data[position + 4]
        starts.append(data[position + 5 + 2 * components])
        position += 2
    return starts


def test_progressive_loses_its_ac_scans_only() -> None:
    dc = dc_only(PROGRESSIVE)
    assert dc is not None
    assert len(dc) < len(PROGRESSIVE) / 3
    assert dc.startswith(b"\xff\xd8")
    assert dc.endswith(b"\xff\xd9")
    assert any(start > 0 for start in _scans(PROGRESSIVE))
    assert _scans(dc)
    assert all(start == 0 for start in _scans(dc))


def test_dc_only_decodes_at_one_eighth_to_nearly_the_same_pixels() -> None:
    full = pyvips.Image.jpegload_buffer(PROGRESSIVE, shrink=8)
    dc = pyvips.Image.jpegload_buffer(dc_only(PROGRESSIVE), shrink=8, fail_on="truncated")
    assert (dc.width, dc.height) == (full.width, full.height) == (200, 150)
    difference = (full.cast("float") - dc.cast("float")).abs()
    assert difference.avg() < 4


@pytest.mark.parametrize(
    "data",
    [
        BASELINE,
        PROGRESSIVE[: len(PROGRESSIVE) // 2],  # truncated: the normal path decides
        PROGRESSIVE[:-2],  # no end marker
        b"",
        b"\xff\xd8",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xc2\x00\x01",  # impossible segment length
    ],
)
def test_not_applicable(data: bytes) -> None:
    assert dc_only(data) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(PROGRESSIVE) - 1), st.integers(0, 255))
def test_damaged_files_never_raise(position: int, value: int) -> None:
    damaged = PROGRESSIVE[:position] + bytes([value]) + PROGRESSIVE[position + 1 :]
    result = dc_only(damaged)
    assert result is None or result.startswith(b"\xff\xd8")


@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = dc_only(b"\xff\xd8" + data)
    assert result is None or result.endswith(b"\xff\xd9")


@pytest.mark.parametrize(
    ("source", "covered", "shrink"),
    [
        ((1600, 1200), (200, 150), 8),
        ((1600, 1200), (201, 150), 4),
        ((1600, 1200), (400, 300), 4),
        ((1600, 1200), (401, 300), 2),
        ((1600, 1200), (801, 600), 1),
        ((100, 100), (300, 300), 1),
    ],
)
def test_jpeg_shrink(source: tuple[int, int], covered: tuple[int, int], shrink: int) -> None:
    assert jpeg_shrink(Size(*source), Size(*covered)) == shrink


def test_render_takes_the_dc_path_for_large_progressive_sources() -> None:
    imaging.configure()
    job = imaging.RenderJob(150, 100, "centre", 85, 10**8)
    fast = imaging.render(PROGRESSIVE, job)
    reference = pyvips.Image.thumbnail_buffer(PROGRESSIVE, 150, height=100, crop="centre")
    out = pyvips.Image.new_from_buffer(fast.body, "")
    assert (out.width, out.height, out.bands) == (150, 100, 3)
    assert fast.complete
    assert (out.cast("float") - reference.cast("float")).abs().avg() < 6


SOF2 = b"\xff\xc2\x00\x02"  # a progressive frame header (its fields do not matter here)
DC_SCAN = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"  # one component, spectral 0..63


def test_fill_bytes_before_a_marker_are_skipped() -> None:
    filled = PROGRESSIVE[:2] + b"\xff\xff" + PROGRESSIVE[2:]
    assert dc_only(filled) == dc_only(PROGRESSIVE)


def test_a_fill_byte_inside_scan_data_does_not_end_the_scan() -> None:
    data = b"\xff\xd8" + SOF2 + DC_SCAN + b"\x12\xff\xff\xd9"
    assert dc_only(data) == b"\xff\xd8" + SOF2 + DC_SCAN + b"\x12\xff" + b"\xff\xd9"


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff\xd8" + PROGRESSIVE[2:],  # a second start of image
        b"\xff\xd8\xff\xd0" + PROGRESSIVE[2:],  # a restart marker outside scan data
        b"\xff\xd8" + DC_SCAN + b"\x12\xff\xd9",  # a scan before any frame header
        b"\xff\xd8" + SOF2 + b"\xff\xda\x00\x03\x01" + b"\xff\xd9",  # scan header too short
        b"\xff\xd8\xff\xe0\x00\x04JF\xff\xd9",  # ends without a frame header
    ],
    ids=["second-soi", "stray-restart", "scan-before-frame", "short-scan-header", "no-frame"],
)
def test_malformed_structure_is_not_applicable(data: bytes) -> None:
    assert dc_only(data) is None
