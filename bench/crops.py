"""The crops stage: how many faces each gravity's fill previews keep, through HTTP.

    .venv/bin/python bench/crops.py [--json] [--docs DIR] [--quick]

docs/imaging.md ("Faces in crops") tells what is measured and how; with --docs the
table goes into DIR/imaging.md and the picture into DIR/crops-faces.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import operator
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from itertools import combinations
from pathlib import Path
from typing import Any

import cropwindow
import faceset
import numpy as np
import pyvips
from cropwindow import Window
from peers import nginx, start_previewer
from procs import Server, cpu_seconds, free_port, get, tree
from writer import table, write_block

from previewer.render.geometry import Size, cover

ENCODED = Path(__file__).resolve().parent / ".work" / "faces-encoded"
SHAPES = ((300, 200), (200, 300), (256, 256), (400, 225), (150, 300))
GRAVITIES = ("attention-only", "attention", "centre")
BASELINE = "attention-only"
ORIGINAL = "original"
ENCODINGS = {"jpg": "Q=90,strip", "png": "strip", "webp": "Q=80,strip"}  # JPEG q90, PNG, WebP q80
# The picture is committed, so it shows public-domain works only (US government, NASA, US Navy).
FIGURE_PHOTOS = frozenset(
    {"matplotlib-grace_hopper.jpg", "skimage-astronaut.png", "fr-obama.jpg", "fr-biden.jpg"}
)
MARKS = ("<!-- make bench: crops -->", "<!-- make bench: crops end -->")

Shape = tuple[int, int]
Key = tuple[str, str, Shape]  # (version, photo file, shape)


@dataclass(frozen=True)
class Photo:
    file: str
    size: tuple[int, int]  # upright
    faces: list[list[int]]


@dataclass(frozen=True)
class GravityResult:
    faces_kept: float
    previews_all_kept: float
    cpu_ms_per_render: float
    stable: float  # share of photo/shape pairs whose three encodings' windows agree
    no_face_windows_moved: int  # windows of photos without faces moved from BASELINE's
    no_face_windows: int


@dataclass(frozen=True)
class Ceiling:
    faces_kept: float
    previews_all_kept: float


@dataclass(frozen=True)
class Result:
    photos_with_faces: int
    photos_without_faces: int
    faces: int
    shapes: list[str]
    ceiling: Ceiling
    gravities: dict[str, GravityResult]


def photos(quick: bool) -> list[Photo]:
    """The set in its order; `quick` keeps the pictured photos and two without faces."""
    labels = faceset.labels()
    found = []
    for file in faceset.build():
        width, height = labels[file]["size"]
        found.append(Photo(file, (width, height), labels[file]["faces"]))
    if quick:
        pictured = [p for p in found if p.file in FIGURE_PHOTOS]
        return pictured + [p for p in found if not p.faces][:2]
    return found


def served(version: str, file: str) -> str:
    """Where a version of a photo lies under ENCODED, and on the origin."""
    if version == ORIGINAL:
        return f"{ORIGINAL}/{file}"
    return f"{version}/{Path(file).stem}.{version}"


def encode(files: list[str]) -> None:
    """Each photo as the original and as JPEG q90, PNG and WebP q80 of its upright pixels."""
    for file in files:
        source = faceset.OUT / file
        (ENCODED / ORIGINAL).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, ENCODED / served(ORIGINAL, file))
        missing = [e for e in ENCODINGS if not (ENCODED / served(e, file)).exists()]
        if not missing:
            continue
        image = pyvips.Image.new_from_file(str(source)).autorot()
        if image.hasalpha():
            image = image.flatten(background=[255, 255, 255])
        upright = image.colourspace("srgb").cast("uchar").copy_memory()
        for encoding in missing:
            target = ENCODED / served(encoding, file)
            target.parent.mkdir(parents=True, exist_ok=True)
            upright.write_to_file(f"{target}[{ENCODINGS[encoding]}]")


def render(
    server: Server, origin_port: int, versions: list[tuple[str, str]]
) -> tuple[dict[Key, bytes], float]:
    """Every version at every shape from `server`: the previews, and CPU seconds per render."""
    pids = tree(server.roots)
    before = cpu_seconds(pids)
    previews: dict[Key, bytes] = {}
    for version, file in versions:
        for shape in SHAPES:
            path = f"{shape[0]}/{shape[1]}/127.0.0.1:{origin_port}/{served(version, file)}"
            status, _, body = get(f"{server.url}/fill/{path}", timeout=60)
            if status != 200:
                raise RuntimeError(f"{path}: {status} {body[:200]!r}")
            previews[(version, file, shape)] = body
    cpu = cpu_seconds(tree(server.roots) | pids) - before
    return previews, cpu / len(previews)


def _luma(image: Any) -> cropwindow.Pixels:
    """One float plane of brightness; alpha is dropped, as the previews drop it."""
    if image.hasalpha():
        image = image[0 : image.bands - 1]
    grey = image.colourspace("b-w").cast("uchar")[0]
    data = grey.write_to_memory()
    return np.frombuffer(data, np.uint8).reshape(grey.height, grey.width).astype(np.float32)


def windows(
    versions: list[tuple[str, str]], previews: dict[str, dict[Key, bytes]]
) -> dict[str, dict[Key, Window]]:
    """Each gravity's window of each preview in upright source pixels, found by sliding
    the preview over the source scaled to cover the shape as the service scales it."""
    found: dict[str, dict[Key, Window]] = {gravity: {} for gravity in previews}
    for version, file in versions:
        path = str(ENCODED / served(version, file))
        upright = pyvips.Image.new_from_file(path).autorot()
        source = (upright.width, upright.height)
        for shape in SHAPES:
            covered = cover(Size(*source), Size(*shape))
            cw, ch = covered.width, covered.height
            plane = _luma(pyvips.Image.thumbnail(path, cw, height=ch, size="force"))
            for gravity, rendered in previews.items():
                key = (version, file, shape)
                preview = _luma(pyvips.Image.new_from_buffer(rendered[key], ""))
                offset = cropwindow.find_offset(plane, preview)
                found[gravity][key] = cropwindow.source_window(offset, shape, (cw, ch), source)
    return found


def _kept(photo: Photo, window: Window) -> int:
    return sum(cropwindow.kept(face, window, photo.size) for face in photo.faces)


def _agree_all(wins: list[Window]) -> bool:
    return all(cropwindow.agree(a, b) for a, b in combinations(wins, 2))


def summarise(
    photos: list[Photo], wins: dict[str, dict[Key, Window]], cpu: dict[str, float]
) -> Result:
    people = [p for p in photos if p.faces]
    empty = [p for p in photos if not p.faces]
    faced = [(p, (ORIGINAL, p.file, s)) for p in people for s in SHAPES]
    faceless = [(ORIGINAL, p.file, s) for p in empty for s in SHAPES]
    totals = [len(p.faces) for p, _ in faced]

    def shares(kept: list[int]) -> tuple[float, float]:
        """(faces kept, previews with every face kept) from the faces kept in each preview."""
        return sum(kept) / sum(totals), sum(map(operator.eq, kept, totals)) / len(totals)

    some = next(iter(wins.values()))
    best = [cropwindow.ceiling(p.faces, p.size, (some[k].width, some[k].height)) for p, k in faced]
    gravities = {}
    for gravity, found in wins.items():
        stable = [
            _agree_all([found[(e, p.file, s)] for e in ENCODINGS]) for p in photos for s in SHAPES
        ]
        gravities[gravity] = GravityResult(
            *shares([_kept(p, found[k]) for p, k in faced]),
            cpu_ms_per_render=cpu[gravity] * 1000,
            stable=sum(stable) / len(stable),
            no_face_windows_moved=sum(
                not cropwindow.agree(found[k], wins[BASELINE][k]) for k in faceless
            ),
            no_face_windows=len(faceless),
        )
    return Result(
        photos_with_faces=len(people),
        photos_without_faces=len(empty),
        faces=sum(len(p.faces) for p in people),
        shapes=[f"{w}x{h}" for w, h in SHAPES],
        ceiling=Ceiling(*shares(best)),
        gravities=gravities,
    )


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def markdown(result: Result, figure: bool) -> str:
    """The stage's block in docs/imaging.md: the set, the table and the picture."""
    header = (
        "gravity",
        "faces kept whole",
        "previews with every face kept",
        "CPU per render",
        f"no-face windows moved from `{BASELINE}`",
        "windows stable across JPEG q90, PNG, WebP q80",
    )
    rows = [
        [
            f"`{gravity}`",
            _pct(row.faces_kept),
            _pct(row.previews_all_kept),
            f"{row.cpu_ms_per_render:.1f} ms",
            f"{row.no_face_windows_moved} of {row.no_face_windows}",
            _pct(row.stable),
        ]
        for gravity, row in result.gravities.items()
    ]
    best = result.ceiling
    ceiling = ["the best window of each shape", _pct(best.faces_kept), _pct(best.previews_all_kept)]
    rows.append([*ceiling, "", "", ""])
    lines = [
        f"{result.photos_with_faces} photos of people ({result.faces} labelled faces) and "
        f"{result.photos_without_faces} photos without faces, at {', '.join(result.shapes)}.",
        "",
        table(header, rows, "lrrrrr"),
    ]
    if figure:
        names = ", ".join(f"`{g}`" for g in result.gravities)
        lines += ["", f"![The source, then the preview of each gravity: {names}](crops-faces.png)"]
    return "\n".join(lines)


def _cell(image: Any, text: str) -> Any:
    """`image` under its label, centred on a white 320x340 cell."""
    mask = pyvips.Image.text(text, dpi=100)
    label = (255 - mask.bandjoin([mask, mask])).cast("uchar")
    canvas = (pyvips.Image.black(320, 340, bands=3) + 255).cast("uchar").insert(label, 4, 2)
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    image = image.colourspace("srgb").cast("uchar")
    return canvas.insert(image, (320 - image.width) // 2, 30)


def figure(
    photos: list[Photo],
    previews: dict[str, dict[Key, bytes]],
    wins: dict[str, dict[Key, Window]],
    out: Path,
) -> None:
    """Up to three pictured photos where the gravities keep the most different numbers of
    faces, each at its shape of widest spread: the source, then each gravity's preview."""

    def spread(photo: Photo, shape: Shape) -> int:
        counts = [_kept(photo, found[(ORIGINAL, photo.file, shape)]) for found in wins.values()]
        return max(counts) - min(counts)

    shown = [p for p in photos if p.faces and p.file in FIGURE_PHOTOS]
    shapes = {p.file: max(SHAPES, key=partial(spread, p)) for p in shown}
    white = [255, 255, 255]
    rows = []
    for photo in sorted(shown, key=lambda p: -spread(p, shapes[p.file]))[:3]:
        shape = shapes[photo.file]
        path = str(ENCODED / served(ORIGINAL, photo.file))
        cells = [_cell(pyvips.Image.thumbnail(path, 300, height=300), photo.file)]
        for gravity, found in previews.items():
            preview = pyvips.Image.new_from_buffer(found[(ORIGINAL, photo.file, shape)], "")
            cells.append(_cell(preview, f"{gravity}, {shape[0]}x{shape[1]}"))
        rows.append(pyvips.Image.arrayjoin(cells, across=len(cells), shim=8, background=white))
    sheet = pyvips.Image.arrayjoin(rows, across=1, shim=8, background=white)
    sheet.write_to_file(f"{out}[compression=9,palette]")  # a third of the bytes


def run(work: Path, docs: Path | None, quick: bool) -> Result:
    """Render the set with each gravity and measure; with `docs`, draw the picture there."""
    chosen = photos(quick)
    encode([p.file for p in chosen])
    versions = [(version, p.file) for version in (ORIGINAL, *ENCODINGS) for p in chosen]
    types = "types { image/jpeg jpg; image/png png; image/webp webp; }"
    origin = nginx(work / "origin", free_port(), f"location / {{ root {ENCODED}; {types} }}")
    previews: dict[str, dict[Key, bytes]] = {}
    cpu: dict[str, float] = {}
    try:
        port = int(origin.url.rsplit(":", 1)[1])
        for gravity in GRAVITIES:
            server = start_previewer(work, gravity, name=f"crops-{gravity}")
            try:
                previews[gravity], cpu[gravity] = render(server, port, versions)
            finally:
                server.stop()
            print(f"crops: {gravity}: {len(previews[gravity])} previews", file=sys.stderr)
    finally:
        origin.stop()
    wins = windows(versions, previews)
    if docs is not None:
        figure(chosen, previews, wins, docs / "crops-faces.png")
    return summarise(chosen, wins, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    parser.add_argument("--docs", type=Path, help="write imaging.md's block and crops-faces.png")
    parser.add_argument("--quick", action="store_true", help="six photos: checks the harness")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previewer-crops-") as tmp:
        result = run(Path(tmp), args.docs, args.quick)
    text = markdown(result, figure=args.docs is not None)
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.docs:
        write_block(args.docs / "imaging.md", text, *MARKS)
    if args.json:
        print(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
    main()
