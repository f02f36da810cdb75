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
