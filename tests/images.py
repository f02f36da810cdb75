"""Source images made by the tests themselves, with real libvips."""

from __future__ import annotations

import pyvips


def photo(width: int = 1024, height: int = 504) -> pyvips.Image:
    """A photo-like sRGB image: smooth gradients, noise and a bright subject off-centre."""
    x = pyvips.Image.xyz(width, height)
    xs, ys = x[0], x[1]
    red = xs * (255.0 / width)
    green = ys * (255.0 / height)
    blue = ((xs + ys) * (128.0 / (width + height)) + 64).cast("uchar")
    noise = pyvips.Image.gaussnoise(width, height, sigma=12)
    image = red.bandjoin([green, blue]) + noise.bandjoin([noise, noise])
    # a bright disc as the "subject", two thirds across
    cx, cy, r = width * 2 // 3, height // 2, min(width, height) // 5
    disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < r * r
    image = disc.ifthenelse([250, 240, 60], image)
    return image.cast("uchar").copy(interpretation="srgb")


def jpeg(width: int = 1024, height: int = 504, **save: object) -> bytes:
    data: bytes = photo(width, height).jpegsave_buffer(Q=85, **save)
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
