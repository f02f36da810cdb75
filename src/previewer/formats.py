"""Source formats: which ones previewer reads, and how each is told from its bytes.

Pure: imports nothing that touches the network, the disk or libvips.

The format is sniffed from the first bytes, never taken from a file name or a
Content-Type, and each format maps to the one libvips loader allowed to read
it. `imaging.py` enables exactly these loaders and checks, on the header
read, that libvips chose the loader the sniff expects: a file that sniffs as
one format can't reach another format's decoder.

AVIF and HEIF are ISO-BMFF files: a `ftyp` box whose major and compatible
brands name the codec family. TIFF starts with its byte-order mark and magic
number (42, or 43 for BigTIFF). SVG, PDF and other vector and document
formats match nothing here and are refused: their loaders are a large attack
surface for a preview.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset(
    {b"mif1", b"msf1", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
)
# TIFF: byte order and 42. BigTIFF: byte order, 43, and an offset size of 8.
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_BIGTIFF_MAGIC = (b"II+\x00\x08\x00", b"MM\x00+\x00\x08")
_MAX_FTYP = 4096  # a longer brand list is not a real image


@dataclass(frozen=True)
class Format:
    name: str
    loader: str  # as libvips reports it in the "vips-loader" field
    loader_class: str  # the VipsForeignLoad subclass family to enable


def _brands(body: bytes) -> frozenset[bytes]:
    """The major and compatible brands of an ISO-BMFF `ftyp` box at the start, or none."""
    if len(body) < 16 or body[4:8] != b"ftyp":
        return frozenset()
    size = int.from_bytes(body[:4], "big")
    if size < 16 or size > min(len(body), _MAX_FTYP) or size % 4:
        return frozenset()
    compatible = (body[at : at + 4] for at in range(16, size, 4))
    return frozenset({body[8:12], *compatible})


def _is_avif(body: bytes) -> bool:
    return not _brands(body).isdisjoint(_AVIF_BRANDS)


def _is_heif(body: bytes) -> bool:
    brands = _brands(body)
    return brands.isdisjoint(_AVIF_BRANDS) and not brands.isdisjoint(_HEIF_BRANDS)


JPEG = Format("jpeg", "jpegload_buffer", "VipsForeignLoadJpeg")
PNG = Format("png", "pngload_buffer", "VipsForeignLoadPng")
GIF = Format("gif", "gifload_buffer", "VipsForeignLoadNsgif")
WEBP = Format("webp", "webpload_buffer", "VipsForeignLoadWebp")
AVIF = Format("avif", "heifload_buffer", "VipsForeignLoadHeif")
HEIF = Format("heif", "heifload_buffer", "VipsForeignLoadHeif")
TIFF = Format("tiff", "tiffload_buffer", "VipsForeignLoadTiff")

_SIGNATURES: tuple[tuple[Format, Callable[[bytes], bool]], ...] = (
    (JPEG, lambda b: b.startswith(b"\xff\xd8\xff")),
    (PNG, lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    (GIF, lambda b: b[:6] in (b"GIF87a", b"GIF89a")),
    (WEBP, lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
    (AVIF, _is_avif),
    (HEIF, _is_heif),
    (TIFF, lambda b: b[:4] in _TIFF_MAGIC or b[:6] in _BIGTIFF_MAGIC),
)

LOADER_CLASSES = tuple(sorted({fmt.loader_class for fmt, _ in _SIGNATURES}))
"""Every libvips loader family previewer enables; all others stay blocked."""


def sniff(body: bytes) -> Format | None:
    """The image format the bytes start with, or None."""
    for fmt, matches in _SIGNATURES:
        if matches(body):
            return fmt
    return None
