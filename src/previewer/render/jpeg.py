"""JPEG structure: the DC-only form of a progressive JPEG.

Pure: imports nothing that touches the network, the disk or libvips.

A JPEG decoded at 1/8 scale needs only the DC coefficient of each 8x8 block.
In a baseline JPEG every scan interleaves DC and AC data, so nothing can be
skipped; in a progressive JPEG the DC coefficients travel in scans of their
own (spectral selection 0..0), and the AC scans, most of the bytes and most
of the decoding time, can be left out. `dc_only` rewrites a progressive JPEG
without its AC scans; libjpeg decodes the result at 1/8 scale several times
faster, to nearly the same pixels (it smooths the blocks a little
differently once it knows no AC data will come).
"""

from __future__ import annotations

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_PROGRESSIVE_SOF = 0xC2
# SOFn markers; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_RST = frozenset(range(0xD0, 0xD8))


def dc_only(data: bytes) -> bytes | None:
    """`data` without its AC scans, or None when that does not apply.

    None for anything that is not a well-formed progressive JPEG whose scans
    all end before the data does (a truncated file takes the normal path).
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    parts = [data[:2]]
    position, size, progressive = 2, len(data), False
    while position + 2 <= size:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == _EOI:
            break
        if marker == _SOI or marker in _RST:
            return None  # not where a segment may start
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        end = position + 2 + length
        if length < 2 or end > size:
            return None
        if marker in _SOF:
            if marker != _PROGRESSIVE_SOF:
                return None  # baseline, lossless, arithmetic...: nothing to gain
            progressive = True
        if marker != _SOS:
            parts.append(data[position:end])
            position = end
            continue
        if not progressive:
            return None
        scan_end = _entropy_end(data, end)
        if scan_end is None:
            return None
        components = data[position + 4]
        spectral_start_at = position + 5 + 2 * components
        if spectral_start_at >= end:
            return None
        if data[spectral_start_at] == 0:  # a DC scan (first pass or refinement)
            parts.append(data[position:scan_end])
        position = scan_end
    else:
        return None  # ran out of data before EOI
    if not progressive:
        return None
    parts.append(b"\xff\xd9")
    return b"".join(parts)


def _entropy_end(data: bytes, start: int) -> int | None:
    """Where the entropy-coded data after a scan header ends: the next marker."""
    position = start
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            return None
        following = data[position + 1]
        if following == 0x00 or following in _RST:  # stuffed byte, restart marker
            position += 2
        elif following == 0xFF:  # fill byte
            position += 1
        else:
            return position
