"""libvips: sniff, check, load with shrink-on-load, fill or fit, colour-manage, encode.

The only module that imports pyvips. `render` is blocking and CPU-bound;
callers run it on a worker thread. libvips errors become BadImage here. A
caller that gives up on a render says so through `cancelled`: the render stops
between steps, and libvips abandons an evaluation already under way.

Only the loaders of the formats in `render/formats.py` are enabled (JPEG, PNG, WebP,
GIF, AVIF/HEIF, TIFF): every other libvips loader (SVG, PDF, ...) is blocked
process-wide. The format is sniffed from the first bytes before libvips sees
them, and the header read must have chosen that format's loader. Every limit
(pixels, frames or pages) is checked on the header, before any decoding.
HEIC is decoded by `render/heic.py` instead, after the same checks on its
container, and the steps then work on the decoded image in memory.

Alpha is decided from the source alone (its header, or for a GIF a
transparent colour its first frame uses), never from the pixels a crop
keeps, so one source gives one output type at every size. A decode that yields nothing
(every pixel zero, alpha included, where the source declares no alpha) is
BadImage, not a blank preview.

Colour: a source with an embedded ICC profile is converted to sRGB through
it; the preview is 8-bit sRGB and carries no profile.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyvips

from previewer.errors import BadImage, RequestTimeout, SourceTooLarge
from previewer.options import ATTENTION, AVIF, CENTRE, FILL, FIT, WEBP
from previewer.render import attention, bmff, faces, formats, framing, heic, icc, jpeg
from previewer.render.geometry import (
    Box,
    Size,
    centre_crop,
    centred,
    check_intermediate,
    check_source_size,
    cover,
    fill_region,
    fit,
    jpeg_shrink,
    needs_region,
    oriented,
    region_at,
    search_size,
    unoriented,
)

MAX_FRAMES = 1000
"""Most frames (pages) a source may declare; more is refused as SourceTooLarge.

A preview shows the first frame (or page) only, and a real animation or
document has far fewer. A file of thousands of tiny frames (a 10,000-frame
GIF is 230 KB) only makes libvips scan and tabulate every frame again when
the preview is loaded. The count comes from the header read, which walks the
frame headers without decoding a pixel: under a millisecond for 10,000 frames.
"""
_ABANDONED = "render abandoned: the caller gave up on it"
_HEVC = (
    "hevc"  # heif-compression of HEIC files: no decoder in this libvips, render/heic.py reads them
)
_BLANK = "The source decodes to an empty image."


def configure() -> None:
    """Lock libvips down to the loaders previewer needs, drop its op cache and load
    the face detector.

    The operation cache would keep recent source buffers alive; previews are
    cached on disk instead.
    """
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader in formats.LOADER_CLASSES:
        pyvips.operation_block_set(loader, False)
    pyvips.cache_set_max(0)
    faces.load()  # the face detector's model, once per process, before the first render


def sniff(body: bytes) -> str | None:
    """The name of the image format the bytes start with, or None."""
    found = formats.sniff(body)
    return None if found is None else found.name


@dataclass(frozen=True)
class RenderJob:
    """What one render needs; built by the service from PreviewOptions and config."""

    width: int
    height: int
    gravity: str  # ATTENTION, ATTENTION_ONLY or CENTRE (options.py)
    quality: int  # of the output format
    max_pixels: int
    output_format: str = "auto"  # "auto" (JPEG, or PNG with alpha), "webp" or "avif"
    effort: int = 0  # AVIF encoder effort, 0 (fastest) to 9
    operation: str = FILL  # FILL (width x height exactly, cropped) or FIT (inside it)


@dataclass(frozen=True)
class Rendered:
    body: bytes
    content_type: str
    width: int
    height: int
    source_format: str
    complete: bool = True  # False: the source was truncated; previewed as far as it decodes
    problem: str = ""  # why it is incomplete: the first libvips message


Cancelled = Callable[[], bool]  # true once the caller no longer wants the render


@dataclass
class _Work:
    """The state the steps pass along."""

    job: RenderJob
    body: bytes
    format: formats.Format
    source: Size = field(default_factory=lambda: Size(0, 0))  # after EXIF orientation
    orientation: int = 1
    image: Any = None  # a pyvips.Image once loaded
    cancelled: Cancelled | None = None
    lenient: bool = False  # decode a truncated source as far as it goes
    plain_jpeg: bool = False  # sRGB JPEG without an ICC profile
    profile: bool = False  # has an embedded ICC profile (other than sRGB) to convert through
    cmyk: bool = False
    alpha: bool = False  # the source declares alpha: the preview keeps it, whatever the crop
    decoded: Any = None  # the whole source as a pyvips.Image, when render/heic.py decoded it
    # Images with an eval handler. pyvips keeps a handler only as long as the Python
    # object, but libvips signals for as long as any pipeline built on the image runs.
    watched: list[Any] = field(default_factory=list)

    @property
    def target(self) -> Size:
        return Size(self.job.width, self.job.height)

    @property
    def strictness(self) -> str:
        return "none" if self.lenient else "truncated"


Step = Callable[[_Work], None]


def _field(image: Any, name: str, default: Any) -> Any:
    return image.get(name) if image.get_typeof(name) else default


def _read_header(work: _Work) -> None:
    """Read only the header, and refuse a pixel bomb before any decoding."""
    if not work.format.by_libvips:
        _read_heic(work)
        return
    if work.format in (formats.AVIF, formats.HEIF):  # from the boxes, before libheif reads them
        _check_extent(work)
        _check_frames(bmff.frames(work.body))  # a sequence's frames: a track's samples
    header = pyvips.Image.new_from_buffer(work.body, "", access="sequential")
    loader = _field(header, "vips-loader", None)
    if loader != work.format.loader:
        raise BadImage(detail=f"sniffed {work.format.name}, libvips chose {loader}")
    if _field(header, "heif-compression", None) == _HEVC:  # HEVC items the sniff did not see
        work.format = formats.HEIC
        _read_heic(work)
        return
    size = Size(header.width, _field(header, "page-height", header.height))
    check_source_size(size, work.job.max_pixels)
    _check_frames(_field(header, "n-pages", 1))
    work.orientation = _field(header, "orientation", 1)
    work.source = oriented(size, work.orientation)
    # An embedded sRGB profile needs no conversion (render/icc.py): only others are applied.
    profile = _field(header, "icc-profile-data", None)
    work.profile = profile is not None and not icc.is_srgb(profile)
    work.cmyk = header.interpretation == "cmyk"
    work.alpha = _declares_alpha(work, header)
    # 8-bit YCbCr JPEG with no profile to apply: the DC-only fast path gives
    # the same colours as the thumbnail path.
    work.plain_jpeg = (
        work.format is formats.JPEG
        and header.interpretation == "srgb"
        and header.bands == 3
        and not work.profile
    )


def _declares_alpha(work: _Work, header: Any) -> bool:
    """Whether the source has alpha, from the whole source, never from a crop of it.

    libvips gives a GIF an alpha band when it declares a transparent colour,
    and many encoders (libvips's own among them) declare one that no pixel
    uses: a GIF has alpha when its first frame declares a transparent colour
    and some pixel of that frame has it. A TIFF's alpha band must be one the file declares
    (ExtraSamples), not one libvips's RGBA reader adds.
    """
    if work.format is formats.GIF:
        if not formats.gif_transparent(work.body):
            return False
        frame = pyvips.Image.gifload_buffer(work.body, access="sequential", fail_on=work.strictness)
        return bool(_watched(work, frame)[frame.bands - 1].min() < 255)
    if work.format is formats.TIFF:
        return bool(header.hasalpha()) and formats.tiff_extra_samples(work.body)
    return bool(header.hasalpha())


def _read_heic(work: _Work) -> None:
    """Check a HEIC's container, then decode its primary image into memory (render/heic.py)."""
    _check_extent(work)
    _check_frames(bmff.frames(work.body))
    source = heic.Heic(work.body)
    size = Size(source.width, source.height)
    check_source_size(size, work.job.max_pixels)
    work.orientation = source.orientation
    work.source = oriented(size, source.orientation)
    work.alpha = source.alpha
    _stop_if_cancelled(work)
    pixels = source.decode()
    _stop_if_cancelled(work)
    grey = pixels.bands < 3
    if pixels.sixteen_bit:
        form, interpretation = "ushort", "grey16" if grey else "rgb16"
    else:
        form, interpretation = "uchar", "b-w" if grey else "srgb"
    image = pyvips.Image.new_from_memory(
        pixels.data, pixels.width, pixels.height, pixels.bands, form
    ).copy(interpretation=interpretation)
    if pixels.premultiplied:
        image = image.unpremultiply().cast(form).copy(interpretation=interpretation)
    profile = source.profile or (_display_p3() if source.display_p3 else None)
    if profile is not None:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    image.set_type(pyvips.GValue.gint_type, "orientation", source.orientation)
    work.profile = profile is not None and not icc.is_srgb(profile)
    work.decoded = image


def _check_frames(frames: int) -> None:
    if frames > MAX_FRAMES:
        raise SourceTooLarge(
            f"The source has more than {MAX_FRAMES} frames.",
            detail=f"source declares {frames} frames",
        )


def _check_extent(work: _Work) -> None:
    """The pixel limit on the size the container declares before any crop (`ispe`):
    the size a HEIF decoder allocates, which a clean aperture may hide."""
    extent = bmff.largest_extent(work.body)
    if extent is not None:
        check_source_size(Size(*extent), work.job.max_pixels)


@functools.cache
def _display_p3() -> bytes:
    """libvips's Display P3 profile: for a HEIC whose nclx box names P3 primaries."""
    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb")
    profile: bytes = pixel.icc_transform("p3", input_profile="srgb").get("icc-profile-data")
    return profile


def _thumbnail(work: _Work, size: Size) -> Any:
    """The source scaled to `size` (upright, colour-managed): shrink-on-load from the
    bytes, or from the image decoded already."""
    options = {"height": size.height, "size": "force", **_colour_options(work)}
    if work.decoded is not None:
        return pyvips.Image.thumbnail_image(work.decoded, size.width, **options)
    return pyvips.Image.thumbnail_buffer(
        work.body, size.width, option_string=f"fail_on={work.strictness}", **options
    )


def _fill(work: _Work) -> None:
    """Scale and crop the source to the target: through the cover or through a region."""
    if work.job.operation != FILL:
        return
    if needs_region(work.source, work.target):
        _fill_region(work)
    else:
        _load_to_cover(work)
        _crop(work)


def _colour_options(work: _Work) -> dict[str, str]:
    """thumbnail's colour management: convert through the embedded profile to sRGB."""
    return {"export_profile": "srgb"} if work.profile else {}


def _fit(work: _Work) -> None:
    """Scale the whole source into the target box, cropping nothing.

    Each side is scaled to its own output length (the two scales differ by
    rounding only), so the output is exactly `fit`'s size: a 50000x1 source
    fitted into 1000x1000 gives 1000x1, and nothing larger is ever made.
    """
    if work.job.operation != FIT:
        return
    size = fit(work.source, work.target)
    check_intermediate(size, work.target)
    _load_at(work, size)


def _load_to_cover(work: _Work) -> None:
    """Shrink-on-load, apply the EXIF orientation, and scale to cover the target."""
    covered = cover(work.source, work.target)
    check_intermediate(covered, work.target)
    _load_at(work, covered)


def _load_at(work: _Work, covered: Size) -> None:
    """Shrink-on-load, apply the EXIF orientation, and scale to exactly `covered`."""
    dc_scans = (
        jpeg.dc_only(work.body)
        if work.plain_jpeg and jpeg_shrink(work.source, covered) == 8
        else None
    )
    if dc_scans is not None:
        # A 1/8 load uses only DC coefficients: leave the AC scans out (render/jpeg.py).
        image = pyvips.Image.jpegload_buffer(dc_scans, shrink=8, fail_on=work.strictness)
        image = image.autorot()
        image = image.resize(covered.width / image.width, vscale=covered.height / image.height)
    else:
        image = _thumbnail(work, covered)
    work.image = _watched(work, image)


def _crop(work: _Work) -> None:
    target = work.target
    image = work.image
    if (image.width, image.height) == (target.width, target.height):
        return
    if work.job.gravity != CENTRE:
        memory, box = _attention(work, image, target)
        work.image = memory.extract_area(box.left, box.top, box.width, box.height)
    else:
        box = centre_crop(Size(image.width, image.height), target)
        work.image = image.extract_area(box.left, box.top, box.width, box.height)


def _fill_region(work: _Work) -> None:
    """Crop the region the preview shows from the stored pixels, then scale only it.

    The region is chosen upright (in the middle, or where the attention
    search on a small copy of the source points), mapped to the stored
    orientation, extracted during a sequential load, scaled, and only then
    turned upright: every image made is about the output's size.
    """
    region = fill_region(work.source, work.target)
    box = _search(work, region) if work.job.gravity != CENTRE else centred(work.source, region)
    stored_box = unoriented(box, work.source, work.orientation)
    turned = work.orientation in (5, 6, 7, 8)
    target = Size(work.target.height, work.target.width) if turned else work.target
    shrink = jpeg_shrink(Size(stored_box.width, stored_box.height), target)
    if work.decoded is not None:
        shrink = 1
        image = work.decoded
    elif work.format is formats.JPEG and shrink > 1:
        image = pyvips.Image.jpegload_buffer(
            work.body, shrink=shrink, access="sequential", fail_on=work.strictness
        )
    else:
        shrink = 1
        image = pyvips.Image.new_from_buffer(
            work.body, "", access="sequential", fail_on=work.strictness
        )
    image = _watched(work, image)
    area = _scaled_box(stored_box, shrink, Size(image.width, image.height))
    image = image.extract_area(area.left, area.top, area.width, area.height)
    image = image.resize(target.width / area.width, vscale=target.height / area.height)
    if work.orientation != 1:  # turning needs random access: the output-sized image only
        image = image.copy_memory().autorot()
    work.image = _managed(work, image)


def _scaled_box(box: Box, shrink: int, bounds: Size) -> Box:
    """`box` in an image loaded at 1/`shrink`, at least one pixel, inside `bounds`."""
    left = min(box.left // shrink, bounds.width - 1)
    top = min(box.top // shrink, bounds.height - 1)
    width = min(max(1, box.width // shrink), bounds.width - left)
    height = min(max(1, box.height // shrink), bounds.height - top)
    return Box(left, top, width, height)


def _search(work: _Work, region: Size) -> Box:
    """Where the attention search puts `region`, run on a small copy of the source."""
    search, window = search_size(work.source, region)
    small = _thumbnail(work, search)
    _, box = _attention(work, _watched(work, small), window)
    return region_at(work.source, region, search, box)


def _attention(work: _Work, image: Any, crop: Size) -> tuple[Any, Box]:
    """`image` in memory as 8-bit sRGB, and the box of size `crop` the gravity picks
    in it: around the faces found (render/faces.py, render/framing.py) for ATTENTION, else
    where the attention analysis (render/attention.py) points.

    The image is read twice (analysed, then cropped), which a sequential load
    can't: it is computed into memory once, and the crop cuts that buffer.
    libvips's thumbnail (and the DC-only load) gives 8-bit sRGB or grey; the
    conversion the sRGB step would make after the crop is made before it.
    """
    image = _as_srgb8(image)
    data = image.write_to_memory()
    memory = pyvips.Image.new_from_memory(data, image.width, image.height, image.bands, "uchar")
    memory = memory.copy(interpretation="srgb")
    size = Size(image.width, image.height)
    box = None
    if work.job.gravity == ATTENTION:
        box = framing.place(size, crop, _faces(work, memory))
    if box is None:
        shape = (image.height, image.width, image.bands)
        box = attention.place(np.frombuffer(data, dtype=np.uint8).reshape(shape), crop)
    return memory, box


def _faces(work: _Work, image: Any) -> list[Box]:
    """The faces in `image` (8-bit, in memory), as boxes in its pixels.

    Detection runs on a copy at most faces.DETECT_SIDE a side, colour only
    (alpha dropped, grey made RGB); it cannot be interrupted, so the render
    checks for cancellation before and after it.
    """
    _stop_if_cancelled(work)
    scale = min(1.0, faces.DETECT_SIDE / max(image.width, image.height))
    small = image.resize(scale, kernel="linear") if scale < 1 else image
    if small.bands in (2, 4):
        small = small[: small.bands - 1]
    if small.bands == 1:
        small = small.bandjoin([small, small])
    found = faces.detect(bytes(small.write_to_memory()), small.width, small.height)
    _stop_if_cancelled(work)
    xscale, yscale = image.width / small.width, image.height / small.height
    return [
        Box(
            round(face.box.left * xscale),
            round(face.box.top * yscale),
            max(1, round(face.box.width * xscale)),
            max(1, round(face.box.height * yscale)),
        )
        for face in found
    ]


def _managed(work: _Work, image: Any) -> Any:
    """`image` converted to sRGB through its embedded profile (or the CMYK default)."""
    if work.profile:
        return image.icc_transform("srgb", embedded=True)
    if work.cmyk:
        return image.icc_transform("srgb", input_profile="cmyk")
    return image


def _to_srgb(work: _Work) -> None:
    """Convert greyscale, 16-bit and other spaces without a profile to 8-bit sRGB."""
    work.image = _as_srgb8(work.image)


def _as_srgb8(image: Any) -> Any:
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
        if image.format != "uchar":
            image = image.cast("uchar")
    return image


def _settle_alpha(work: _Work) -> None:
    """Alpha in the preview exactly when the source declares it, at every size.

    An alpha band the source does not have (a GIF's whose transparent colour
    is unused) is dropped, unless the decode gave nothing at all: every pixel zero, alpha
    included, is a decoder that failed without saying so (an old-style
    JPEG-in-TIFF), and is refused rather than served as a blank preview.
    """
    image = work.image
    if work.alpha and not image.hasalpha():
        work.image = image.bandjoin_const([255])
    elif image.hasalpha() and not work.alpha:
        image = image.copy_memory()  # output-sized: checked, then encoded from memory
        if image.max() == 0:
            raise BadImage(
                _BLANK, detail="decoded to zeros, alpha included, with no alpha declared"
            )
        work.image = image.extract_band(0, n=image.bands - 1)


STEPS: tuple[Step, ...] = (_read_header, _fill, _fit, _to_srgb, _settle_alpha)


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
    body, content_type = encode(image, work.job)
    return Rendered(body, content_type, image.width, image.height, work.format.name)


def encode(image: Any, job: RenderJob) -> tuple[bytes, str]:
    """8-bit sRGB pixels -> the bytes of the job's output format and its media type.

    WebP and AVIF keep an alpha band; the default format is JPEG, or PNG when
    there is alpha. No metadata is kept in any of them. AVIF is AV1 in HEIF
    (libheif with libaom), 8-bit, chroma subsampled by libvips' rule.
    """
    if job.output_format == AVIF:
        body = image.heifsave_buffer(
            compression="av1", Q=job.quality, effort=job.effort, bitdepth=8, keep="none"
        )
        return body, "image/avif"
    if job.output_format == WEBP:
        return image.webpsave_buffer(Q=job.quality, keep="none"), "image/webp"
    if image.hasalpha():
        return image.pngsave_buffer(keep="none"), "image/png"
    return image.jpegsave_buffer(Q=job.quality, keep="none", optimize_coding=True), "image/jpeg"


def render(body: bytes, job: RenderJob, cancelled: Cancelled | None = None) -> Rendered:
    """Make the preview of `body`; raises BadImage or SourceTooLarge.

    `cancelled` is polled between steps and while libvips computes pixels; once
    it returns True the render stops with RequestTimeout. libvips may call it
    from its own threads, so it must be cheap and thread-safe (an Event's is_set).
    """
    source_format = formats.sniff(body)
    if source_format is None:
        raise BadImage(detail="bytes match no supported image signature")
    if source_format is formats.AVIF:
        body = bmff.as_still(body)  # a sequence: its first frame, the primary image
    try:
        return _run(_Work(job=job, body=body, format=source_format, cancelled=cancelled))
    except BadImage as strict:
        if not source_format.by_libvips:  # pillow-heif decodes whole or not at all
            raise
        # Strict decoding failed. A truncated source (a JPEG cut short, one
        # without its end marker) still gives a preview as far as it decodes,
        # marked incomplete so that nobody caches it; anything else stays bad.
        work = _Work(job, body, source_format, cancelled=cancelled, lenient=True)
        rendered = _run(work)
        return dataclasses.replace(rendered, complete=False, problem=strict.detail)


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
        raise BadImage(detail=f"libvips: {_first_message(exc)}") from exc


def _first_message(exc: Any) -> str:
    """The first thing libvips said about a failure (its error buffer), else pyvips's summary."""
    for line in (exc.detail or "").splitlines():
        if line.strip():
            return str(line.strip())
    return str(exc.message.strip())
