"""HEIC (HEVC-coded HEIF): read with pillow-heif, which bundles libheif and libde265.

The only module that imports pillow_heif (and Pillow, which it builds on).
libvips reads every other format; the libheif inside its wheel has no HEVC
decoder.

`Heic(body)` parses the container alone: the primary image's size (after the
container's transforms: `irot`, `imir`, clean aperture), alpha, colour
profile and EXIF orientation, without decoding a pixel, so that every limit
is checked first. `Heic.decode` then decodes the primary image alone, 8-bit
(10- and 12-bit images are scaled down), turned and cropped as the container
says. Thumbnails, depth maps and other auxiliary images (Apple's HDR gain
map among them) are never decoded. pillow-heif errors become BadImage here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pillow_heif
from PIL import Image

from previewer.errors import BadImage

# Only the primary image is read: nothing lists or decodes the other images.
pillow_heif.options.THUMBNAILS = False
pillow_heif.options.DEPTH_IMAGES = False
pillow_heif.options.AUX_IMAGES = False

_ERRORS = (ValueError, EOFError, SyntaxError, RuntimeError, OSError, KeyError, IndexError)
_TURNS = frozenset({"irot", "imir"})  # container transforms that turn or mirror the image
_EXIF_ORIENTATION = 0x0112
_NCLX_P3 = 12  # colour primaries (ITU-T H.273) of Display P3: SMPTE EG 432-1
_BANDS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "RGBa": 4, "I;16": 1, "I;16L": 1}


@dataclass(frozen=True)
class Pixels:
    """A decoded image: rows of `bands` samples, 8 or 16 bits each, no padding."""

    data: Any  # a buffer: bytes, a memoryview or a numpy array
    width: int
    height: int
    bands: int
    sixteen_bit: bool
    premultiplied: bool  # the colour is premultiplied by the alpha


class Heic:
    """One opened HEIC file: its primary image's header; `decode` for its pixels."""

    def __init__(self, body: bytes) -> None:
        try:
            container = pillow_heif.open_heif(body, convert_hdr_to_8bit=True)
            self._image = container[container.primary_index]
            self.width, self.height = self._image.size
            self.mode = self._image.mode
            info: dict[str, Any] = dict(self._image.info)
            transforms = {step[0] for step in self._image._c_image.transformations}
        except _ERRORS as exc:
            raise BadImage(detail=f"pillow-heif: {exc}") from exc
        if self.mode not in _BANDS:
            raise BadImage(detail=f"pillow-heif: unsupported mode {self.mode}")
        self.alpha = self._image.has_alpha
        profile = info.get("icc_profile")
        self.profile: bytes | None = bytes(profile) if profile else None
        nclx: dict[str, Any] = info.get("nclx_profile") or {}
        self.display_p3 = self.profile is None and nclx.get("color_primaries") == _NCLX_P3
        # The container's transforms are the orientation; a HEIC that has them
        # (iPhones write `irot` and the same turn in EXIF) is not turned again.
        self.orientation = 1 if transforms & _TURNS else _orientation(info.get("exif"))

    def decode(self) -> Pixels:
        """The primary image's pixels, as the container shows it."""
        try:
            data = self._image.data
            stride = self._image.stride
        except _ERRORS as exc:
            raise BadImage(detail=f"pillow-heif: {exc}") from exc
        bands = _BANDS[self.mode]
        sixteen = self.mode.startswith("I;16")
        row = self.width * bands * (2 if sixteen else 1)
        if stride != row:  # rows padded: copy them out without their padding
            rows = np.frombuffer(data, dtype=np.uint8).reshape(self.height, stride)
            data = np.ascontiguousarray(rows[:, :row])
        return Pixels(data, self.width, self.height, bands, sixteen, self.mode == "RGBa")


def _orientation(exif: bytes | None) -> int:
    """The EXIF orientation (1 to 8), 1 when there is none or it can't be read."""
    if not exif:
        return 1
    try:
        value = Image.Exif()
        value.load(exif)
        orientation = int(value.get(_EXIF_ORIENTATION, 1))
    except (*_ERRORS, TypeError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1
