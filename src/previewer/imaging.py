"""libvips: sniff, check, load with shrink-on-load, fill, encode.

The only module that imports pyvips. `render` is blocking and CPU-bound;
callers run it on a worker thread. libvips errors become BadImage here. A
caller that gives up on a render says so through `cancelled`: the render stops
between steps, and libvips abandons an evaluation already under way.

Only the JPEG, PNG, WebP and GIF loaders are enabled: every other libvips
loader (SVG, TIFF, HEIF, ...) is blocked process-wide, and the format is
sniffed from the first bytes before libvips sees them, never taken from a
file name or a Content-Type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyvips

from previewer import jpeg
from previewer.errors import BadImage, RequestTimeout, SourceTooLarge
from previewer.geometry import (
    Size,
    centre_crop,
    check_source_size,
    cover,
    jpeg_shrink,
    oriented,
)

_ALLOWED_LOADERS = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif",
)
_SIGNATURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("jpeg", lambda b: b.startswith(b"\xff\xd8\xff")),
    ("png", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    ("gif", lambda b: b[:6] in (b"GIF87a", b"GIF89a")),
    ("webp", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
)
MAX_FRAMES = 1000
"""Most frames (pages) a source may declare; more is refused as SourceTooLarge.

A preview shows the first frame only, and a real animation has far fewer. A
file of thousands of tiny frames (a 10,000-frame GIF is 230 KB) only makes
libvips scan and tabulate every frame again when the preview is loaded. The
count comes from the header read, which walks the frame headers without
decoding a pixel: under a millisecond for 10,000 frames.
"""
_ABANDONED = "render abandoned: the caller gave up on it"

# Loader names as libvips reports them in the "vips-loader" field.
_LOADERS = {
    "jpeg": "jpegload_buffer",
    "png": "pngload_buffer",
    "gif": "gifload_buffer",
    "webp": "webpload_buffer",
}


def configure() -> None:
    """Lock libvips down to the loaders previewer needs and drop its op cache.

    The operation cache would keep recent source buffers alive; previews are
    cached on disk instead.
    """
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader in _ALLOWED_LOADERS:
        pyvips.operation_block_set(loader, False)
    pyvips.cache_set_max(0)


def sniff(body: bytes) -> str | None:
    """The image format the bytes start with, or None."""
    for name, matches in _SIGNATURES:
        if matches(body):
            return name
    return None


@dataclass(frozen=True)
class RenderJob:
    """What one render needs; built by the service from PreviewOptions and config."""

    width: int
    height: int
    gravity: str  # "attention" or "centre"
    quality: int
    max_pixels: int


@dataclass(frozen=True)
class Rendered:
    body: bytes
    content_type: str
    width: int
    height: int
    source_format: str
    complete: bool = True  # False: the source was truncated; previewed as far as it decodes


Cancelled = Callable[[], bool]  # true once the caller no longer wants the render


@dataclass
class _Work:
    """The state the steps pass along."""

    job: RenderJob
    body: bytes
    source_format: str
    source: Size = field(default_factory=lambda: Size(0, 0))  # after EXIF orientation
    image: Any = None  # a pyvips.Image once loaded
    cancelled: Cancelled | None = None
    lenient: bool = False  # decode a truncated source as far as it goes
    plain_jpeg: bool = False  # sRGB JPEG without an ICC profile
    # Images with an eval handler. pyvips keeps a handler only as long as the Python
    # object, but libvips signals for as long as any pipeline built on the image runs.
    watched: list[Any] = field(default_factory=list)


Step = Callable[[_Work], None]


def _field(image: Any, name: str, default: Any) -> Any:
    return image.get(name) if image.get_typeof(name) else default


def _read_header(work: _Work) -> None:
    """Read only the header, and refuse a pixel bomb before any decoding."""
    header = pyvips.Image.new_from_buffer(work.body, "", access="sequential")
    loader = _field(header, "vips-loader", None)
    if loader != _LOADERS[work.source_format]:
        raise BadImage(detail=f"sniffed {work.source_format}, libvips chose {loader}")
    size = Size(header.width, _field(header, "page-height", header.height))
    check_source_size(size, work.job.max_pixels)
    frames = _field(header, "n-pages", 1)
    if frames > MAX_FRAMES:
        raise SourceTooLarge(
            f"The source has more than {MAX_FRAMES} frames.",
            detail=f"source declares {frames} frames",
        )
    work.source = oriented(size, _field(header, "orientation", 1))
    # 8-bit YCbCr JPEG with no profile to apply: the DC-only fast path gives
    # the same colours as the thumbnail path.
    work.plain_jpeg = (
        work.source_format == "jpeg"
        and header.interpretation == "srgb"
        and header.bands == 3
        and not header.get_typeof("icc-profile-data")
    )


def _load_to_cover(work: _Work) -> None:
    """Shrink-on-load, apply the EXIF orientation, and scale to cover the target."""
    covered = cover(work.source, Size(work.job.width, work.job.height))
    strictness = "none" if work.lenient else "truncated"
    dc_scans = (
        jpeg.dc_only(work.body)
        if work.plain_jpeg and jpeg_shrink(work.source, covered) == 8
        else None
    )
    if dc_scans is not None:
        # A 1/8 load uses only DC coefficients: leave the AC scans out (jpeg.py).
        image = pyvips.Image.jpegload_buffer(dc_scans, shrink=8, fail_on=strictness).autorot()
        image = image.resize(covered.width / image.width, vscale=covered.height / image.height)
    else:
        image = pyvips.Image.thumbnail_buffer(
            work.body,
            covered.width,
            height=covered.height,
            size="force",
            option_string=f"fail_on={strictness}",
        )
    work.image = _watched(work, image)


def _crop(work: _Work) -> None:
    target = Size(work.job.width, work.job.height)
    image = work.image
    if (image.width, image.height) == (target.width, target.height):
        return
    if work.job.gravity == "attention":
        # smartcrop reads the image more than once; the sequential load can't.
        work.image = _watched(work, image.copy_memory()).smartcrop(
            target.width, target.height, interesting="attention"
        )
    else:
        box = centre_crop(Size(image.width, image.height), target)
        work.image = image.extract_area(box.left, box.top, box.width, box.height)


def _to_srgb(work: _Work) -> None:
    """Convert CMYK, greyscale, 16-bit and other spaces to 8-bit sRGB."""
    image = work.image
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
        if image.format != "uchar":
            image = image.cast("uchar")
    work.image = image


def _drop_opaque_gif_alpha(work: _Work) -> None:
    """libvips loads every GIF with alpha; only a transparent GIF keeps it (and PNG output)."""
    image = work.image
    if work.source_format == "gif" and image.hasalpha() and image[image.bands - 1].min() == 255:
        work.image = image.extract_band(0, n=image.bands - 1)


STEPS: tuple[Step, ...] = (_read_header, _load_to_cover, _crop, _to_srgb, _drop_opaque_gif_alpha)


def _watched(work: _Work, image: Any) -> Any:
    """Make libvips abandon any evaluation of `image` (or of what is built on it) once
    the render is cancelled: progress signals reach this image, and killing it stops
    every pipeline that reads from it."""
    cancelled = work.cancelled
    if cancelled is None:
        return image

    def on_eval(evaluated: Any, progress: Any) -> None:
        if cancelled():
            evaluated.set_kill(True)

    image.set_progress(True)
    image.signal_connect("eval", on_eval)
    work.watched.append(image)
    return image


def _stop_if_cancelled(work: _Work) -> None:
    if work.cancelled is not None and work.cancelled():
        raise RequestTimeout(detail=_ABANDONED)


def _encode(work: _Work) -> Rendered:
    image = work.image
    if image.hasalpha():
        body = image.pngsave_buffer(keep="none")
        content_type = "image/png"
    else:
        body = image.jpegsave_buffer(Q=work.job.quality, keep="none", optimize_coding=True)
        content_type = "image/jpeg"
    return Rendered(body, content_type, image.width, image.height, work.source_format)


def render(body: bytes, job: RenderJob, cancelled: Cancelled | None = None) -> Rendered:
    """Make the preview of `body`; raises BadImage or SourceTooLarge.

    `cancelled` is polled between steps and while libvips computes pixels; once
    it returns True the render stops with RequestTimeout. libvips may call it
    from its own threads, so it must be cheap and thread-safe (an Event's is_set).
    """
    source_format = sniff(body)
    if source_format is None:
        raise BadImage(detail="bytes match no supported image signature")
    try:
        return _run(_Work(job=job, body=body, source_format=source_format, cancelled=cancelled))
    except BadImage:
        # Strict decoding failed. A truncated source (a JPEG cut short, one
        # without its end marker) still gives a preview as far as it decodes,
        # marked incomplete so that nobody caches it; anything else stays bad.
        work = _Work(job, body, source_format, cancelled=cancelled, lenient=True)
        rendered = _run(work)
        return dataclasses.replace(rendered, complete=False)


def _run(work: _Work) -> Rendered:
    try:
        for step in STEPS:
            _stop_if_cancelled(work)
            step(work)
        _stop_if_cancelled(work)
        return _encode(work)
    except pyvips.Error as exc:
        if work.cancelled is not None and work.cancelled():  # a killed evaluation fails too
            raise RequestTimeout(detail=_ABANDONED) from exc
        raise BadImage(detail=f"libvips: {exc.message.strip()}") from exc
