"""Source formats: which ones previewer reads, and how each is told from its bytes.

Pure: imports nothing that touches the network, the disk or libvips.

The format is sniffed from the first bytes, never taken from a file name or a
Content-Type, and each format maps to the one libvips loader allowed to read
it. `render/imaging.py` enables exactly these loaders and checks, on the header
read, that libvips chose the loader the sniff expects: a file that sniffs as
one format can't reach another format's decoder.

AVIF and HEIF are ISO-BMFF files: a `ftyp` box whose major and compatible
brands name the family, and a `meta` box whose primary item's type names
the codec (`render/bmff.py`). An HEVC-coded primary image is HEIC, decoded by
pillow-heif (`render/heic.py`); AV1 (AVIF, and HEIF holding AV1) goes to libvips. A
file whose items do not say falls back on its brands. TIFF starts with its byte-order mark and magic
number (42, or 43 for BigTIFF). SVG, PDF and other vector and document
formats match nothing here and are refused: their loaders are a large attack
surface for a preview.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from previewer.render import bmff

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"}) | _HEVC_BRANDS
# TIFF: byte order and 42. BigTIFF: byte order, 43, and an offset size of 8.
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_BIGTIFF_MAGIC = (b"II+\x00\x08\x00", b"MM\x00+\x00\x08")
_MAX_FTYP = 4096  # a longer brand list is not a real image


@dataclass(frozen=True)
class Format:
    name: str
    loader: str  # as libvips reports it in the "vips-loader" field; "" when libvips can't
    loader_class: str  # the VipsForeignLoad subclass family to enable; "" when none

    @property
    def by_libvips(self) -> bool:
        """Whether libvips decodes it (else `render/heic.py` does)."""
        return bool(self.loader)


def _brands(body: bytes) -> frozenset[bytes]:
    """The major and compatible brands of an ISO-BMFF `ftyp` box at the start, or none."""
    if len(body) < 16 or body[4:8] != b"ftyp":
        return frozenset()
    size = int.from_bytes(body[:4], "big")
    if size < 16 or size > min(len(body), _MAX_FTYP) or size % 4:
        return frozenset()
    compatible = (body[at : at + 4] for at in range(16, size, 4))
    return frozenset({body[8:12], *compatible})


def _bmff(body: bytes) -> Format | None:
    """HEIC, AVIF or HEIF by the primary image's codec, else by the brands; or None."""
    brands = _brands(body)
    if brands.isdisjoint(_AVIF_BRANDS | _HEIF_BRANDS):
        return None
    coding = bmff.primary_coding(body)
    if coding == bmff.HEVC:
        return HEIC
    if coding == bmff.AV1 or not brands.isdisjoint(_AVIF_BRANDS):
        return AVIF if not brands.isdisjoint(_AVIF_BRANDS) else HEIF
    return HEIC if not brands.isdisjoint(_HEVC_BRANDS) else HEIF


JPEG = Format("jpeg", "jpegload_buffer", "VipsForeignLoadJpeg")
PNG = Format("png", "pngload_buffer", "VipsForeignLoadPng")
GIF = Format("gif", "gifload_buffer", "VipsForeignLoadNsgif")
WEBP = Format("webp", "webpload_buffer", "VipsForeignLoadWebp")
AVIF = Format("avif", "heifload_buffer", "VipsForeignLoadHeif")
HEIF = Format("heif", "heifload_buffer", "VipsForeignLoadHeif")
TIFF = Format("tiff", "tiffload_buffer", "VipsForeignLoadTiff")
HEIC = Format("heic", "", "")  # HEVC-coded HEIF: pillow-heif, not libvips

_SIGNATURES: tuple[tuple[Format, Callable[[bytes], bool]], ...] = (
    (JPEG, lambda b: b.startswith(b"\xff\xd8\xff")),
    (PNG, lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    (GIF, lambda b: b[:6] in (b"GIF87a", b"GIF89a")),
    (WEBP, lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
    (TIFF, lambda b: b[:4] in _TIFF_MAGIC or b[:6] in _BIGTIFF_MAGIC),
)

LOADER_CLASSES = tuple(sorted({fmt.loader_class for fmt, _ in _SIGNATURES} | {AVIF.loader_class}))
"""Every libvips loader family previewer enables; all others stay blocked."""


def sniff(body: bytes) -> Format | None:
    """The image format the bytes start with, or None."""
    for fmt, matches in _SIGNATURES:
        if matches(body):
            return fmt
    return _bmff(body)


def gif_transparent(body: bytes) -> bool:
    """Whether a GIF's first frame declares a transparent colour: the transparency
    flag of the Graphic Control Extension before the first image descriptor."""
    at = 13  # after the signature and the logical screen descriptor
    if len(body) < at:
        return False
    if body[10] & 0x80:  # a global colour table follows
        at += 3 << ((body[10] & 0x07) + 1)
    while at < len(body):
        block = body[at]
        if block != 0x21 or at + 1 >= len(body):  # an image (0x2C), the trailer, or damage
            return False
        if body[at + 1] == 0xF9 and at + 3 < len(body):  # Graphic Control Extension
            return bool(body[at + 3] & 0x01)
        at += 2
        while at < len(body) and body[at]:  # skip the extension's sub-blocks
            at += body[at] + 1
        at += 1
    return False


def tiff_extra_samples(body: bytes) -> bool:
    """Whether a TIFF's first directory has ExtraSamples (tag 338): alpha, in practice.

    A classic TIFF only (a BigTIFF says True: nothing is known). libvips's
    header may report an alpha band that the file has not got (old-style
    JPEG read through libtiff's RGBA interface): this says what the file
    declares.
    """
    if body[:4] not in _TIFF_MAGIC:
        return True
    endian: Literal["little", "big"] = "little" if body[:2] == b"II" else "big"
    first = int.from_bytes(body[4:8], endian)
    if first + 2 > len(body):
        return True
    count = int.from_bytes(body[first : first + 2], endian)
    for n in range(count):
        entry = first + 2 + 12 * n
        if entry + 12 > len(body):
            return True
        if int.from_bytes(body[entry : entry + 2], endian) == 338:
            return True
    return False
