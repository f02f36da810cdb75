"""Images made with real libvips for the tests and the benchmark: photo-like
sources, and hostile ones (bombs and liars) written byte by byte.

Every image is the same on every run: the noise libvips adds comes from a
fixed `seed`, so a test that passes once passes always, and a benchmark
renders the same bytes each time. A different `seed` gives different noise.
"""

from __future__ import annotations

import pyvips

SEED = 1  # the noise of every image unless a caller asks for another


def photo(
    width: int = 1024,
    height: int = 504,
    *,
    sigma: float = 12,
    subject: bool = True,
    seed: int = SEED,
) -> pyvips.Image:
    """A photo-like sRGB image: smooth gradients, noise and (with `subject`) a bright
    disc two thirds across."""
    x = pyvips.Image.xyz(width, height)
    xs, ys = x[0], x[1]
    red = xs * (255.0 / width)
    green = ys * (255.0 / height)
    blue = ((xs + ys) * (128.0 / (width + height)) + 64).cast("uchar")
    noise = pyvips.Image.gaussnoise(width, height, sigma=sigma, seed=seed)
    image = red.bandjoin([green, blue]) + noise.bandjoin([noise, noise])
    if subject:
        cx, cy, r = width * 2 // 3, height // 2, min(width, height) // 5
        disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < r * r
        image = disc.ifthenelse([250, 240, 60], image)
    return image.cast("uchar").copy(interpretation="srgb")


def noisy_gradient(width: int, height: int, *, sigma: float = 20, seed: int = SEED) -> pyvips.Image:
    """Red and green ramps across and down, and noise around mid-grey in the blue band:
    the blue band keeps a JPEG from being trivially small."""
    xyz = pyvips.Image.xyz(width, height)
    noise = pyvips.Image.gaussnoise(width, height, sigma=sigma, mean=128, seed=seed)
    image = (xyz[0] * (255 / width)).bandjoin([xyz[1] * (255 / height), noise])
    return image.cast("uchar").copy(interpretation="srgb")


def jpeg(width: int = 1024, height: int = 504, *, seed: int = SEED, **save: object) -> bytes:
    data: bytes = photo(width, height, seed=seed).jpegsave_buffer(Q=85, **save)
    return data


def png_alpha(width: int = 120, height: int = 80) -> bytes:
    image = photo(width, height).bandjoin(128).copy(interpretation="srgb")
    data: bytes = image.pngsave_buffer()
    return data


def gif(width: int = 120, height: int = 80) -> bytes:
    data: bytes = photo(width, height).gifsave_buffer()
    return data


def webp(width: int = 120, height: int = 80) -> bytes:
    data: bytes = photo(width, height).webpsave_buffer(Q=80)
    return data


def rotated_jpeg(width: int = 200, height: int = 100, orientation: int = 6) -> bytes:
    """A landscape JPEG, white on its left half and black on its right, whose EXIF
    says to turn it (6: 90 degrees clockwise, so upright the white half is on top)."""
    left = pyvips.Image.black(width // 2, height) + 255
    right = pyvips.Image.black(width - width // 2, height)
    image = left.join(right, "horizontal").bandjoin([left.join(right, "horizontal")] * 2)
    image = image.cast("uchar").copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    data: bytes = image.jpegsave_buffer(Q=85)
    return data


def pixel_bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A few hundred bytes that declare a huge image (the IDAT is a tiny stream)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def decode(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


# --- hostile sources: bombs and liars, written byte by byte where libvips won't ------


def _png_chunk(kind: bytes, data: bytes, declared: int | None = None) -> bytes:
    """One PNG chunk; `declared` overrides the length field (the CRC stays that of `data`)."""
    import struct
    import zlib

    length = len(data) if declared is None else declared
    return struct.pack(">I", length) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_grey(width: int, height: int, *chunks: bytes) -> bytes:
    """A valid 8-bit greyscale PNG with `chunks` between IHDR and IDAT."""
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress((b"\x00" + b"\x80" * width) * height)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + b"".join(chunks)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def png_huge_chunk(declared: int = 1 << 30) -> bytes:
    """A 64x64 PNG whose first chunk after IHDR says it is `declared` bytes long and is
    followed by a few hundred: a decoder that trusts the length allocates a gigabyte."""
    head = _png_grey(64, 64).split(b"IDAT")[0][:-4]  # signature + IHDR
    return head + _png_chunk(b"tEXt", b"Comment\x00" + b"x" * 200, declared=declared)


def png_text_bomb(inflated: int = 256 << 20) -> bytes:
    """A 64x64 PNG with a zTXt chunk of about inflated/1000 bytes that inflates to
    `inflated` bytes of zeros (a multiple of 1 MiB)."""
    import struct

    adler = (inflated % 65521) << 16 | 1  # Adler-32 of zeros: A stays 1, B counts bytes
    text = b"\x78\xda" + _deflated_zeros(inflated) + struct.pack(">I", adler)
    return _png_grey(64, 64, _png_chunk(b"zTXt", b"Comment\x00\x00" + text))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose SOF0 header is rewritten to declare `width` x `height`
    (a few hundred bytes; the scan data ends long before the declared rows)."""
    import struct

    small: bytes = pyvips.Image.black(16, 16).cast("uchar").jpegsave_buffer()
    sof = small.index(b"\xff\xc0")  # marker, length (2), precision (1), height, width
    return small[: sof + 5] + struct.pack(">HH", height, width) + small[sof + 9 :]


def gif_frames(count: int, width: int = 1, height: int = 1) -> bytes:
    """A valid looping GIF of `count` one-colour frames, 23 bytes each, written by hand
    (gifsave would take seconds to write ten thousand frames)."""
    import struct

    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # 2-colour global table
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (
        b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # graphic control: 0.1 s
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02\x44\x01\x00"  # LZW: minimum code size 2; clear, index 0, end
    )
    return b"GIF89a" + screen + b"\x00\x00\x00\xff\xff\xff" + loop + frame * count + b"\x3b"


def jpeg_with_icc(jpeg_data: bytes, profile: bytes) -> bytes:
    """`jpeg_data` with its ICC profile replaced by `profile`, as one APP2 segment.

    libvips's jpegsave drops a profile it cannot parse, so a broken one has to be
    written into the file directly.
    """
    import struct

    pos, kept = 2, []
    while jpeg_data[pos + 1] != 0xDA:  # walk the segments up to the start of scan
        end = pos + 2 + struct.unpack(">H", jpeg_data[pos + 2 : pos + 4])[0]
        if jpeg_data[pos + 1] != 0xE2:
            kept.append(jpeg_data[pos:end])
        pos = end
    app2 = b"ICC_PROFILE\x00\x01\x01" + profile
    segment = b"\xff\xe2" + struct.pack(">H", len(app2) + 2) + app2
    return jpeg_data[:2] + segment + b"".join(kept) + jpeg_data[pos:]


_ZEROS_BLOCK = 1 << 20


def _deflated_zeros(size: int) -> bytes:
    """Raw deflate data for `size` zero bytes (a multiple of 1 MiB), about size/1000 long.

    Each MiB is compressed once and the block repeated: a full flush byte-aligns the
    stream and forgets the window, so every block after the first is the same.
    """
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(_ZEROS_BLOCK)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    return first + repeat * (size // _ZEROS_BLOCK - 1) + packer.flush(zlib.Z_FINISH)


def gzip_bomb(inflated: int = 2 << 30) -> bytes:
    """A valid gzip stream of `inflated` zero bytes (a multiple of 1 MiB), about
    inflated/1000 bytes long. Its CRC takes a pass over the zeros (0.3 s a GiB)."""
    import struct
    import zlib

    zeros, crc = bytes(_ZEROS_BLOCK), 0
    for _ in range(inflated // _ZEROS_BLOCK):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, inflated & 0xFFFFFFFF)
    return header + _deflated_zeros(inflated) + trailer


# --- colour profiles, written byte by byte ---------------------------------------

# Adobe RGB (1998) primaries adapted to the D50 profile connection space, as in
# Adobe's own profile, and the D50 white point.
ADOBE_RGB_COLORANTS = ((0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087),
                       (0.14919, 0.06322, 0.74457))  # fmt: skip
D50 = (0.9642, 1.0, 0.8249)


def _s15f16(*values: float) -> bytes:
    import struct

    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _icc(colour_space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 display profile with `tags` (signature, data), laid out as the spec says."""
    import struct

    table_size = 4 + 12 * len(tags)
    offset, entries, data = 128 + table_size, b"", b""
    for signature, payload in tags:
        padded = payload + bytes(-len(payload) % 4)
        entries += struct.pack(">4sII", signature, offset + len(data), len(payload))
        data += padded
    size = 128 + table_size + len(data)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"mntr", colour_space, b"XYZ ")
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8 + 4)  # platform, flags, maker, model, attributes, intent
        + _s15f16(*D50)
        + bytes(4 + 16 + 28)  # creator, profile id, reserved
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + data


def _desc(text: str) -> bytes:
    import struct

    ascii_text = text.encode() + b"\x00"
    return (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + bytes(4 + 4 + 2 + 1 + 67)
    )


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15f16(x, y, z)


def _gamma(value: float) -> bytes:
    import struct

    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(value * 256))


def adobe_rgb_profile() -> bytes:
    """A matrix/TRC profile with Adobe RGB (1998)'s primaries and its 563/256 gamma."""
    red, green, blue = ADOBE_RGB_COLORANTS
    trc = _gamma(563 / 256)
    return _icc(
        b"RGB ",
        [
            (b"desc", _desc("Adobe RGB (1998) compatible")),
            (b"wtpt", _xyz(*D50)),
            (b"rXYZ", _xyz(*red)),
            (b"gXYZ", _xyz(*green)),
            (b"bXYZ", _xyz(*blue)),
            (b"rTRC", trc),
            (b"gTRC", trc),
            (b"bTRC", trc),
        ],
    )


def grey_profile(gamma: float = 1.0) -> bytes:
    """A greyscale profile; gamma 1.0 (linear light) makes mid-grey 128 much lighter in sRGB."""
    return _icc(
        b"GRAY",
        [(b"desc", _desc(f"Grey gamma {gamma}")), (b"wtpt", _xyz(*D50)), (b"kTRC", _gamma(gamma))],
    )


def solid(width: int, height: int, colour: list[int], interpretation: str = "srgb") -> pyvips.Image:
    image = pyvips.Image.black(width, height).new_from_image(colour).cast("uchar")
    return image.copy(interpretation=interpretation)


def with_profile(image: pyvips.Image, profile: bytes) -> pyvips.Image:
    """`image`'s pixel values, labelled as being in `profile`'s colour space."""
    tagged = image.copy()
    tagged.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    return tagged


def p3_jpeg(colour: list[int], width: int = 120, height: int = 80) -> bytes:
    """A JPEG whose pixels are `colour` in Display P3 (libvips's built-in profile), embedded."""
    p3 = solid(1, 1, [0, 0, 0]).icc_transform("p3", input_profile="srgb").get("icc-profile-data")
    data: bytes = with_profile(solid(width, height, colour), p3).jpegsave_buffer(Q=95)
    return data


# --- AVIF, HEIC and TIFF sources -----------------------------------------------------


def avif(width: int = 120, height: int = 80, image: pyvips.Image | None = None) -> bytes:
    data: bytes = (image or photo(width, height)).heifsave_buffer(compression="av1", Q=80)
    return data


def heic(
    width: int = 64,
    height: int = 48,
    *,
    image: pyvips.Image | None = None,
    orientation: int = 1,
    profile: bytes | None = None,
    nclx_primaries: int | None = None,
    grey: bool = False,
    quality: int = 90,
) -> bytes:
    """A real HEVC-coded HEIF (what phones write), made with pillow-heif's x265 encoder.

    From `image` (8-bit sRGB, with or without alpha), else the photo. An
    `orientation` other than 1 is written as pillow-heif (and an iPhone)
    writes it: the container's `irot`/`imir` and the same value in EXIF; the
    pixels are stored unturned. `profile` is embedded as the ICC profile;
    `nclx_primaries` writes an nclx colour box with those primaries instead
    (12: Display P3); `grey` writes the first band alone, monochrome.
    """
    import io

    import pillow_heif
    from PIL import Image

    pixels = image if image is not None else photo(width, height)
    if grey:
        pixels = pixels[0]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.bands]
    picture = Image.frombytes(mode, (pixels.width, pixels.height), pixels.write_to_memory())
    extra: dict[str, object] = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    if profile is not None:
        extra["icc_profile"] = profile
    if nclx_primaries is not None:
        extra["nclx_profile"] = {
            "color_primaries": nclx_primaries,
            "transfer_characteristics": 13,  # sRGB's curve
            "matrix_coefficients": 6,
            "full_range_flag": 1,
        }
    buffer = io.BytesIO()
    pillow_heif.from_pillow(picture).save(buffer, format="HEIF", quality=quality, **extra)
    return buffer.getvalue()


def exif_turn_only(data: bytes) -> bytes:
    """A HEIC from `heic(..., orientation=...)` whose turn is left to EXIF alone: its
    `irot` and `imir` properties renamed to a type no reader knows, and marked as not
    essential in `ipma`, so that readers skip them."""
    import struct

    ipco = data.index(b"ipco") + 4
    end = ipco - 8 + struct.unpack(">I", data[ipco - 8 : ipco - 4])[0]
    turns, index, at = set(), 0, ipco
    while at < end:
        size = struct.unpack(">I", data[at : at + 4])[0]
        index += 1
        if data[at + 4 : at + 8] in (b"irot", b"imir"):
            turns.add(index)
        at += size
    out = bytearray(data)
    at = data.index(b"ipma") + 4
    version, flags = data[at], data[at + 3]
    entries = struct.unpack(">I", data[at + 4 : at + 8])[0]
    at += 8
    for _ in range(entries):
        at += 2 if version < 1 else 4
        count = data[at]
        at += 1
        for _ in range(count):
            wide = flags & 1
            value = struct.unpack(">H", data[at : at + 2])[0] if wide else data[at]
            mask = 0x7FFF if wide else 0x7F
            if value & mask in turns:
                out[at] &= 0x7F
            at += 2 if wide else 1
    return bytes(out).replace(b"irot", b"xrot").replace(b"imir", b"xmir")


def declaring(data: bytes, width: int, height: int) -> bytes:
    """A HEIF or AVIF whose first `ispe` (image size) property declares `width` x `height`."""
    import struct

    at = data.index(b"ispe") + 8  # box type, then version and flags
    return data[:at] + struct.pack(">II", width, height) + data[at + 8 :]


def avif_sequence(colours: list[list[int]], width: int = 64, height: int = 48) -> bytes:
    """An AVIF image sequence (`avis`) of solid frames, written by Pillow (libavif)."""
    import io

    from PIL import Image

    frames = [Image.new("RGB", (width, height), tuple(colour)) for colour in colours]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="AVIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def frames_declared(data: bytes, count: int) -> bytes:
    """An image sequence whose first track's `stsz` box declares `count` samples."""
    import struct

    at = data.index(b"stsz") + 12  # box type, version and flags, the sample size
    return data[:at] + struct.pack(">I", count) + data[at + 4 :]


def ojpeg_tiff(width: int = 64, height: int = 48) -> bytes:
    """A tiled TIFF with old-style JPEG compression (6) and YCbCr photometry, whose tile
    holds no JPEG: libvips's libtiff reads it through the RGBA interface as an image of
    zeros, alpha included, without an error (as libvips's own `ojpeg-tile.tif`)."""
    import struct

    tile = bytes(range(256)) * 4
    bits_at = 8 + 2 + 12 * 13 + 4
    tile_at = bits_at + 6
    entries = [  # tag, type (3 SHORT, 4 LONG), count, packed value
        (256, 3, 1, struct.pack("<HH", width, 0)),
        (257, 3, 1, struct.pack("<HH", height, 0)),
        (258, 3, 3, struct.pack("<I", bits_at)),
        (259, 3, 1, struct.pack("<HH", 6, 0)),  # old-style JPEG
        (262, 3, 1, struct.pack("<HH", 6, 0)),  # YCbCr
        (277, 3, 1, struct.pack("<HH", 3, 0)),
        (284, 3, 1, struct.pack("<HH", 1, 0)),
        (322, 3, 1, struct.pack("<HH", 64, 0)),
        (323, 3, 1, struct.pack("<HH", 64, 0)),
        (324, 4, 1, struct.pack("<I", tile_at)),
        (325, 4, 1, struct.pack("<I", len(tile))),
        (512, 3, 1, struct.pack("<HH", 1, 0)),
        (530, 3, 2, struct.pack("<HH", 2, 2)),
    ]
    directory = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + value for tag, kind, count, value in entries
    )
    header = b"II*\x00" + struct.pack("<I", 8)
    return header + directory + struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8) + tile


def gif_transparent_corner(width: int = 200, height: int = 100, corner: int = 10) -> bytes:
    """A GIF of the photo whose top-left `corner` x `corner` pixels are transparent."""
    xyz = pyvips.Image.xyz(width, height)
    opaque = ((xyz[0] >= corner) | (xyz[1] >= corner)).ifthenelse(255, 0)
    image = photo(width, height).bandjoin(opaque).cast("uchar").copy(interpretation="srgb")
    data: bytes = image.gifsave_buffer()
    return data


def avif_declaring(width: int, height: int) -> bytes:
    """A real 64x64 AVIF whose `ispe` (image size) property declares `width` x `height`."""
    return declaring(avif(64, 64), width, height)


def tiff(image: pyvips.Image | None = None, **save: object) -> bytes:
    data: bytes = (image or photo(120, 80)).tiffsave_buffer(**save)
    return data


def tiff_declaring(width: int, height: int) -> bytes:
    """A little-endian TIFF of a few hundred bytes whose header declares `width` x `height`
    8-bit grey pixels, with one tiny strip."""
    import struct

    entries = [  # tag, type (3 SHORT, 4 LONG), count, value
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 1),  # black is zero
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),  # strip offset: just after the directory
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, 64),
    ]
    directory = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        directory += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + directory + struct.pack("<I", 0) + bytes(64)


def multipage_tiff(colours: list[list[int]], width: int = 60, height: int = 40) -> bytes:
    """A TIFF with one page of each solid colour, first page first."""
    pages = [solid(width, height, colour) for colour in colours]
    strip = (
        pages[0].join(pages[1], "vertical")
        if len(pages) == 2
        else pyvips.Image.arrayjoin(pages, across=1)
    )
    strip = strip.copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    data: bytes = strip.tiffsave_buffer()
    return data


def thin_png(width: int, height: int) -> bytes:
    """A grey ramp along the long side: a thin source whose every part is different."""
    length = max(width, height)
    ramp = pyvips.Image.xyz(width, height)[0 if width >= height else 1] * (255.0 / length)
    data: bytes = ramp.cast("uchar").copy(interpretation="b-w").pngsave_buffer()
    return data


CORNER_COLOURS = ([255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0])
"""Top left, top right, bottom left, bottom right of `corners`."""


def corners(width: int, height: int) -> bytes:
    """A PNG in four quadrants, each a mid grey with a block of its own colour
    (CORNER_COLOURS) in its outer corner, an eighth of the width and height:
    a preview that crops any side by more than an eighth loses two of them."""
    block_w, block_h = max(1, width // 8), max(1, height // 8)
    image = pyvips.Image.black(width, height, bands=3) + 128
    for colour, (left, top) in zip(
        CORNER_COLOURS,
        [(0, 0), (width - block_w, 0), (0, height - block_h), (width - block_w, height - block_h)],
        strict=True,
    ):
        block = pyvips.Image.black(block_w, block_h, bands=3) + colour
        image = image.insert(block, left, top)
    data: bytes = image.cast("uchar").copy(interpretation="srgb").pngsave_buffer()
    return data


# --- photos of people --------------------------------------------------------------

PORTRAIT_FACE = (180, 120, 175, 215)
"""Grace Hopper's face in `portrait()` (left, top, width, height), forehead to chin,
marked by eye: the tests' ground truth, not a detector's answer."""


def portrait() -> pyvips.Image:
    """A real photo of a person: Grace Hopper's 1984 US Navy portrait, 512x600, a
    public-domain work that matplotlib ships in its wheel (mpl-data/sample_data),
    so the tests need nothing beyond the project's dev and bench packages."""
    from matplotlib import cbook  # the bench extra, installed with dev

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return pyvips.Image.new_from_file(str(path)).copy_memory()


def checkerboard(width: int, height: int, square: int = 100) -> pyvips.Image:
    """Saturated red, green, blue and yellow squares: strong edges and chroma, what
    the attention analysis scores highest."""
    xyz = pyvips.Image.xyz(width, height)
    cell = (xyz[0] / square).cast("int") % 2 + ((xyz[1] / square).cast("int") % 2) * 2
    colours = [[230, 30, 30], [30, 200, 40], [40, 60, 230], [240, 220, 30]]
    image = pyvips.Image.black(width, height, bands=3) + colours[3]
    for index in (2, 1, 0):
        image = (cell == index).ifthenelse(colours[index], image)
    return image.cast("uchar").copy(interpretation="srgb")


def face_beside_pattern(width: int = 1600) -> tuple[pyvips.Image, tuple[int, int, int, int]]:
    """`portrait()` at the left of a dark `width`x600 canvas, a `checkerboard` at the
    right: the face step keeps the face, the attention analysis alone goes to the
    squares. Returns the image and the face's box in it."""
    canvas = pyvips.Image.black(width, 600, bands=3) + 40
    canvas = canvas.insert(portrait(), 0, 0).insert(checkerboard(600, 600), width - 600, 0)
    return canvas.cast("uchar").copy(interpretation="srgb"), PORTRAIT_FACE


def crop_window(source: pyvips.Image, preview: pyvips.Image) -> tuple[int, int]:
    """Where a fill preview's crop window lies in the cover-scaled `source`: (left, top).

    The source is scaled to cover the preview's size, as a fill does, and the
    preview slid over it (bench/cropwindow.py, which the crops benchmark uses
    too). Found from the pixels only, so it tells what a client sees, whatever
    the service did to get there.
    """
    import numpy as np
    from cropwindow import find_offset  # bench/, on the tests' path

    width, height = preview.width, preview.height
    covered = source.resize(max(width / source.width, height / source.height))
    covered = covered.gravity(
        "north-west", max(width, covered.width), max(height, covered.height), extend="copy"
    )
    cover = np.asarray(covered[:3].numpy(), dtype=np.float32)
    return find_offset(cover, np.asarray(preview[:3].numpy(), dtype=np.float32))
