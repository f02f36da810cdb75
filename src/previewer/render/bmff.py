"""ISO-BMFF (HEIF, AVIF): what a container holds, read from its boxes.

Pure: imports nothing that touches the network, the disk or libvips.

HEIF and AVIF files are trees of boxes. A still image is an item of the
top-level `meta` box: `pitm` names the primary item, `iinf` gives each
item's type (`hvc1` for HEVC, `av01` for AV1, `grid` for an image made of
tiles, which `iref`'s `dimg` references name). An image sequence is a track
in `moov`, whose `stsz` box counts its samples (frames).

Everything here reads at most a few boxes, with every size checked against
the data: a malformed file gives "unknown", never an exception.
"""

from __future__ import annotations

from collections.abc import Iterator

HEVC = b"hvc1"
AV1 = b"av01"
_DERIVED = frozenset({b"grid", b"iden", b"iovl"})  # images made of other items
_MAX_DEPTH = 4  # derived images of derived images: a few levels at most


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end], until one is malformed."""
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if at + 16 > end:
                return
            size = int.from_bytes(data[at + 8 : at + 16], "big")
            header = 16
        elif size == 0:  # the box runs to the end
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, at + header, at + size
        at += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, stop in _boxes(data, start, end):
        if found == kind:
            return payload, stop
    return None


def _uint(data: bytes, at: int, size: int, end: int) -> int | None:
    return int.from_bytes(data[at : at + size], "big") if at + size <= end else None


def _meta(data: bytes) -> tuple[int, int] | None:
    """The payload of the top-level `meta` box, after its version and flags."""
    found = _child(data, 0, len(data), b"meta")
    return None if found is None or found[0] + 4 > found[1] else (found[0] + 4, found[1])


def _primary(data: bytes, start: int, end: int) -> int | None:
    found = _child(data, start, end, b"pitm")
    if found is None or found[0] + 4 > found[1]:
        return None
    size = 2 if data[found[0]] == 0 else 4
    return _uint(data, found[0] + 4, size, found[1])


def _item_types(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """Item id -> item type, from `iinf`'s `infe` entries (versions 2 and 3)."""
    found = _child(data, start, end, b"iinf")
    types: dict[int, bytes] = {}
    if found is None or found[0] + 4 > found[1]:
        return types
    first = found[0] + 4 + (2 if data[found[0]] == 0 else 4)  # after the entry count
    for kind, payload, stop in _boxes(data, first, found[1]):
        if kind != b"infe" or payload + 4 > stop or data[payload] not in (2, 3):
            continue
        size = 2 if data[payload] == 2 else 4
        item = _uint(data, payload + 4, size, stop)
        at = payload + 4 + size + 2  # after the item id and the protection index
        if item is not None and at + 4 <= stop:
            types[item] = data[at : at + 4]
    return types


def _inputs(data: bytes, start: int, end: int, item: int) -> list[int]:
    """The items that `item` is derived from (`iref`'s `dimg`), in order."""
    found = _child(data, start, end, b"iref")
    if found is None or found[0] + 4 > found[1]:
        return []
    size = 2 if data[found[0]] == 0 else 4
    for kind, payload, stop in _boxes(data, found[0] + 4, found[1]):
        source = _uint(data, payload, size, stop)
        count = _uint(data, payload + size, 2, stop)
        if kind != b"dimg" or source != item or count is None:
            continue
        first = payload + size + 2
        ids = (_uint(data, first + n * size, size, stop) for n in range(count))
        return [i for i in ids if i is not None]
    return []


def primary_coding(data: bytes) -> bytes | None:
    """The codec of the primary image (`hvc1`, `av01`, ...): the type of the primary
    item, or of the first tile of a grid. None when the file does not say."""
    meta = _meta(data)
    if meta is None:
        return None
    item = _primary(data, *meta)
    types = _item_types(data, *meta)
    for _ in range(_MAX_DEPTH):
        if item is None or item not in types:
            return None
        if types[item] not in _DERIVED:
            return types[item]
        inputs = _inputs(data, *meta, item)
        item = inputs[0] if inputs else None
    return None


def largest_extent(data: bytes) -> tuple[int, int] | None:
    """The largest width x height an `ispe` (image spatial extent) property declares.

    The size a decoder allocates: before a clean aperture crops it, for the
    whole grid or for a tile. None when the file declares none.
    """
    meta = _meta(data)
    properties = None if meta is None else _child(data, *meta, b"iprp")
    container = None if properties is None else _child(data, *properties, b"ipco")
    if container is None:
        return None
    extents = [
        (
            int.from_bytes(data[at + 4 : at + 8], "big"),
            int.from_bytes(data[at + 8 : at + 12], "big"),
        )
        for kind, at, stop in _boxes(data, *container)
        if kind == b"ispe" and at + 12 <= stop
    ]
    return max(extents, key=lambda size: size[0] * size[1], default=None)


def frames(data: bytes) -> int:
    """The most samples (frames) any track of `moov` declares; 0 without tracks."""
    movie = _child(data, 0, len(data), b"moov")
    if movie is None:
        return 0
    most = 0
    for kind, payload, stop in _boxes(data, *movie):
        if kind != b"trak":
            continue
        box: tuple[int, int] | None = (payload, stop)
        for path in (b"mdia", b"minf", b"stbl"):
            box = None if box is None else _child(data, *box, path)
        if box is None:
            continue
        sizes = _child(data, *box, b"stsz") or _child(data, *box, b"stz2")
        if sizes is not None:
            count = _uint(data, sizes[0] + 8, 4, sizes[1])  # after version, flags and one field
            most = max(most, count or 0)
    return most


def as_still(data: bytes) -> bytes:
    """An image sequence (major brand `avis`) named by its still-image brand (`avif`).

    A sequence keeps its first frame as the primary item for readers of
    still images; libvips recognises AVIF by the major brand alone.
    """
    if data[4:8] == b"ftyp" and data[8:12] == b"avis":
        return data[:8] + b"avif" + data[12:]
    return data
