"""The benchmark corpus: real photographs from Debian wallpaper packages.

    .venv/bin/python bench/corpus.py [--out bench/.work/corpus]

Copies `SELECTION` from the packages bench/setup.sh installs into the corpus
directory, with a `manifest.json` of each file's size, dimensions and
progressive flag (read from its JPEG frame header here); never committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from writer import table

DEFAULT_OUT = Path(__file__).resolve().parent / ".work" / "corpus"

_MATE = "/usr/share/backgrounds/mate"
_PLASMA = "/usr/share/wallpapers"

# (corpus name, installed path, what it shows); docs/benchmarks.md ("Corpus") says why.
SELECTION: tuple[tuple[str, str, str], ...] = (
    ("GreenMeadow", f"{_MATE}/nature/GreenMeadow.jpg", "photo"),
    ("Dune", f"{_MATE}/nature/Dune.jpg", "photo"),
    ("FreshFlower", f"{_MATE}/nature/FreshFlower.jpg", "photo"),
    ("Blinds", f"{_MATE}/nature/Blinds.jpg", "photo"),
    ("RainDrops", f"{_MATE}/nature/RainDrops.jpg", "photo"),
    ("Storm", f"{_MATE}/nature/Storm.jpg", "photo"),
    ("LadyBird", f"{_MATE}/nature/LadyBird.jpg", "photo"),
    ("summer_1am", f"{_PLASMA}/summer_1am/contents/images/2560x1600.jpg", "photo"),
    ("FallenLeaf", f"{_PLASMA}/FallenLeaf/contents/images/2560x1600.jpg", "photo"),
    ("ColorfulCups", f"{_PLASMA}/ColorfulCups/contents/images/2560x1600.jpg", "photo"),
    ("OneStandsOut", f"{_PLASMA}/OneStandsOut/contents/images/2560x1600.jpg", "photo"),
    ("Path", f"{_PLASMA}/Path/contents/images/2560x1600.jpg", "photo"),
    ("Wood", f"{_MATE}/nature/Wood.jpg", "photo"),
    ("PastelHills", f"{_PLASMA}/PastelHills/contents/images/3200x2000.jpg", "photo"),
    ("Elephants", f"{_MATE}/abstract/Elephants_3840x2160.jpg", "scanned painting"),
    ("SafeLanding", f"{_PLASMA}/SafeLanding/contents/images/5120x2880.jpg", "illustration"),
    ("Volna", f"{_PLASMA}/Volna/contents/images/5120x2880.jpg", "illustration"),
    ("Flow", f"{_PLASMA}/Flow/contents/images/5120x2880.jpg", "illustration"),
    ("ElephantsXL", f"{_MATE}/abstract/Elephants_5640x3172.jpg", "scanned painting"),
)

# Start-of-frame markers; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


@dataclass(frozen=True)
class Photo:
    """One corpus file, as listed in manifest.json."""

    file: str
    source: str
    kind: str
    bytes: int
    width: int
    height: int
    progressive: bool
    sha256: str

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def jpeg_frame(data: bytes) -> tuple[int, int, bool]:
    """Width, height and progressive flag from a JPEG's start-of-frame segment."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("no SOI marker")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height, marker in _PROGRESSIVE
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise ValueError("no start-of-frame segment")


def build(out: Path = DEFAULT_OUT) -> list[Photo]:
    """Copy the selection into `out` (skipping files already there) and write the manifest."""
    missing = [source for _, source, _ in SELECTION if not Path(source).is_file()]
    if missing:
        raise SystemExit(
            "corpus: missing wallpaper files (run bench/setup.sh): " + ", ".join(missing)
        )
    out.mkdir(parents=True, exist_ok=True)
    photos = []
    for name, source, kind in SELECTION:
        target = out / f"{name}.jpg"
        if not target.exists() or target.stat().st_size != Path(source).stat().st_size:
            shutil.copyfile(source, target)
        data = target.read_bytes()
        width, height, progressive = jpeg_frame(data)
        digest = hashlib.sha256(data).hexdigest()
        photos.append(
            Photo(target.name, source, kind, len(data), width, height, progressive, digest)
        )
    photos.sort(key=lambda p: (p.width * p.height, p.file))
    manifest = {"photos": [asdict(p) for p in photos]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return photos


def load(out: Path = DEFAULT_OUT) -> list[Photo]:
    """The manifest's photos; builds the corpus first when it is absent."""
    manifest = out / "manifest.json"
    if not manifest.exists():
        return build(out)
    return [Photo(**item) for item in json.loads(manifest.read_text())["photos"]]


def markdown_table(photos: list[Photo]) -> str:
    body = [
        [
            p.file,
            p.kind,
            f"{p.bytes:,}",
            f"{p.width}x{p.height}",
            f"{p.megapixels:.1f}",
            "yes" if p.progressive else "no",
        ]
        for p in photos
    ]
    return table(["file", "what", "bytes", "dimensions", "MP", "progressive"], body, "llrlrl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    print(markdown_table(build(parser.parse_args().out)))


if __name__ == "__main__":
    main()
