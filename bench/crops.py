"""The crops stage: does each gravity keep people's faces, measured through HTTP.

    .venv/bin/python bench/crops.py [--json] [--report docs/imaging.md]
                                    [--figure docs/crops-faces.png] [--quick]

For each gravity the service accepts (it is asked: `previewer serve --gravity
G` is started for each of attention-only, attention and centre, and a gravity
it refuses is left out), the service runs on 127.0.0.1 against an nginx origin
serving the photo set (bench/faceset.py, labels in bench/faces/labels.json)
and each photo is asked for at five fill shapes. The window of each preview is
found from its pixels (bench/cropwindow.py): the source is scaled to cover the
shape as the service scales it (previewer.render.geometry.cover), and the preview
slid along the free axis to where it differs least. A face is kept when its
box, grown by 10% of its size on each side, lies inside the window.

Reported per gravity: the share of faces kept whole, the share of previews of
people with every face kept, the service's CPU time per render (its process
tree's user + system time over the renders, as bench/procs.py measures it),
for photos without faces how many windows differ from attention-only's by more
than 2% of the window, and stability: every photo re-encoded as JPEG q90, PNG
and WebP q80 (made here, upright, served by the origin), and the share of
photo/shape pairs whose three windows agree within 2% of the window. The best
any window of each shape could do (the ceiling) is reported too. With
--figure, a picture of the previews of the photos where the gravities differ
most, side by side. Deterministic: no randomness, photos and shapes in order.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cropwindow
import faceset
import numpy as np
import pyvips
from cropwindow import Window
from peers import nginx, start_previewer
from procs import Server, cpu_seconds, free_port, get, tree
from writer import write_block

from previewer.render.geometry import Size, cover

HERE = Path(__file__).resolve().parent
ENCODED = HERE / ".work" / "faces-encoded"
SHAPES = ((300, 200), (200, 300), (256, 256), (400, 225), (150, 300))
GRAVITIES = ("attention-only", "attention", "centre")

FIGURE_PHOTOS = frozenset(
    {
        "matplotlib-grace_hopper.jpg",  # US Navy, 1984: public domain
        "skimage-astronaut.png",  # NASA: public domain
        "fr-obama.jpg",  # official White House portrait: a US government work
        "fr-biden.jpg",  # official portrait: a US government work
    }
)
"""The photos the picture in docs/ may show: works in the public domain, since
the picture is committed (the set's other photos carry their own terms)."""
BASELINE = "attention-only"
ORIGINAL = "original"
ENCODINGS = (("jpeg", ".jpg", "Q=90"), ("png", ".png", ""), ("webp", ".webp", "Q=80"))
MARK_BEGIN = "<!-- bench/crops.py: start -->"
MARK_END = "<!-- bench/crops.py: end -->"

Key = tuple[str, str, tuple[int, int]]  # (version, photo file, shape)


@dataclass(frozen=True)
class Photo:
    file: str
    size: tuple[int, int]  # upright
    faces: list[list[int]]
    people: bool


def photos() -> list[Photo]:
    """The set, copied out of its distributions, with its labels."""
    faceset.build()
    labels = {p["file"]: p for p in json.loads(faceset.LABELS.read_text())["photos"]}
    found = []
    for member in faceset.SELECTION:
        width, height = labels[member.file]["size"]
        found.append(
            Photo(member.file, (width, height), labels[member.file]["faces"], member.faces)
        )
    return found


def encoded_name(file: str, encoding: str) -> str:
    suffix = dict((name, ext) for name, ext, _ in ENCODINGS)[encoding]
    return f"{Path(file).stem}{suffix}"


def encode(set_dir: Path, out: Path, files: Iterable[str]) -> None:
    """Each photo as the original and as JPEG q90, PNG and WebP q80 of its upright pixels."""
    (out / ORIGINAL).mkdir(parents=True, exist_ok=True)
    for file in files:
        source = set_dir / file
        original = out / ORIGINAL / file
        if not original.exists() or original.stat().st_size != source.stat().st_size:
            original.write_bytes(source.read_bytes())
        upright: Any = None
        for encoding, _, options in ENCODINGS:
            target = out / encoding / encoded_name(file, encoding)
            if target.exists():
                continue
            if upright is None:
                image = pyvips.Image.new_from_file(str(source)).autorot()
                if image.hasalpha():
                    image = image.flatten(background=[255, 255, 255])
                upright = image.colourspace("srgb").cast("uchar").copy_memory()
            target.parent.mkdir(parents=True, exist_ok=True)
            upright.write_to_file(f"{target}[{options},strip]" if options else f"{target}[strip]")


def start_origin(root: Path, prefix: Path) -> Server:
    """nginx serving `root` with the image types of the encodings."""
    types = "types { image/jpeg jpg; image/png png; image/webp webp; }"
    return nginx(prefix, free_port(), f"location / {{ root {root}; {types} }}")


def accepted(gravity: str, work: Path) -> Server | None:
    """The service started with `gravity`, or None when it refuses that gravity."""
    try:
        return start_previewer(work, gravity, name=f"crops-{gravity}")
    except RuntimeError as exc:
        print(f"crops: previewer refuses --gravity {gravity}: {str(exc)[-200:]}", file=sys.stderr)
        return None


def render_all(
    server: Server, origin_port: int, versions: list[tuple[str, str]]
) -> tuple[dict[Key, bytes], float]:
    """Every (version, file) at every shape from `server`: previews and CPU seconds per render."""
    pids = tree(server.roots)
    before = cpu_seconds(pids)
    previews: dict[Key, bytes] = {}
    for version, file in versions:
        for shape in SHAPES:
            name = file if version == ORIGINAL else encoded_name(file, version)
            url = (
                f"{server.url}/fill/{shape[0]}/{shape[1]}/127.0.0.1:{origin_port}/{version}/{name}"
            )
            status, _, body = get(url, timeout=60)
            if status != 200:
                raise RuntimeError(f"{url}: {status} {body[:200]!r}")
            previews[(version, file, shape)] = body
    cpu = cpu_seconds(tree(server.roots) | pids) - before
    return previews, cpu / max(1, len(previews))


def _luma(image: Any) -> cropwindow.Pixels:
    """One float plane of brightness; alpha is dropped, as the previews drop it."""
    if image.hasalpha():
        image = image[0 : image.bands - 1]
    grey = image.colourspace("b-w").cast("uchar")[0]
    data = grey.write_to_memory()
    return np.frombuffer(data, np.uint8).reshape(grey.height, grey.width).astype(np.float32)


def windows(
    root: Path, versions: list[tuple[str, str]], found: dict[str, dict[Key, bytes]]
) -> dict[str, dict[Key, Window]]:
    """Each gravity's window of each preview, in upright source pixels."""
    out: dict[str, dict[Key, Window]] = {gravity: {} for gravity in found}
    for version, file in versions:
        name = file if version == ORIGINAL else encoded_name(file, version)
        path = str(root / version / name)
        upright = pyvips.Image.new_from_file(path).autorot()
        source = (upright.width, upright.height)
        for shape in SHAPES:
            covered = cover(Size(*source), Size(*shape))
            scaled = pyvips.Image.thumbnail(
                path, covered.width, height=covered.height, size="force"
            )
            plane = _luma(scaled)
            for gravity, previews in found.items():
                preview = _luma(pyvips.Image.new_from_buffer(previews[(version, file, shape)], ""))
                offset = cropwindow.find_offset(plane, preview)
                window = cropwindow.source_window(
                    offset, shape, (covered.width, covered.height), source
                )
                out[gravity][(version, file, shape)] = window
    return out


def summarise(
    set_photos: list[Photo], found: dict[str, dict[Key, Window]], cpu: dict[str, float]
) -> dict[str, Any]:
    """The stage's figures: per gravity, and the ceiling."""
    people = [p for p in set_photos if p.people]
    empty = [p for p in set_photos if not p.people]
    faces = sum(len(p.faces) for p in people) * len(SHAPES)
    best = all_best = 0
    for photo in people:
        for shape in SHAPES:
            window = found[next(iter(found))][(ORIGINAL, photo.file, shape)]
            most = cropwindow.ceiling(photo.faces, photo.size, (window.width, window.height))
            best += most
            all_best += most == len(photo.faces)
    previews = len(people) * len(SHAPES)
    result: dict[str, Any] = {
        "photos_with_faces": len(people),
        "photos_without_faces": len(empty),
        "faces": sum(len(p.faces) for p in people),
        "shapes": [f"{w}x{h}" for w, h in SHAPES],
        "ceiling": {"faces_kept": best / faces, "previews_all_kept": all_best / previews},
        "gravities": {},
    }
    for gravity, wins in found.items():
        kept = all_kept = 0
        for photo in people:
            for shape in SHAPES:
                window = wins[(ORIGINAL, photo.file, shape)]
                n = sum(cropwindow.kept(f, window, photo.size) for f in photo.faces)
                kept += n
                all_kept += n == len(photo.faces)
        stable = sum(
            _agree_all([wins[(e, p.file, s)] for e, _, _ in ENCODINGS])
            for p in set_photos
            for s in SHAPES
        )
        moved = None
        if BASELINE in found:
            moved = sum(
                not cropwindow.agree(
                    wins[(ORIGINAL, p.file, s)], found[BASELINE][(ORIGINAL, p.file, s)]
                )
                for p in empty
                for s in SHAPES
            )
        result["gravities"][gravity] = {
            "faces_kept": kept / faces,
            "previews_all_kept": all_kept / previews,
            "cpu_ms_per_render": cpu[gravity] * 1000,
            "stable": stable / (len(set_photos) * len(SHAPES)),
            "no_face_windows_moved": moved,
            "no_face_windows": len(empty) * len(SHAPES),
        }
    return result


def _agree_all(wins: list[Window]) -> bool:
    return all(cropwindow.agree(a, b) for i, a in enumerate(wins) for b in wins[i + 1 :])


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    """The stage's table for docs/imaging.md."""
    moved_head = f"no-face windows moved from `{BASELINE}`"
    lines = [
        f"Measured by `make bench-crops` (bench/crops.py) on {result['photos_with_faces']} "
        f"photos of people ({result['faces']} labelled faces) and "
        f"{result['photos_without_faces']} photos without faces (bench/faces/README.md), "
        f"at {', '.join(result['shapes'])}: a face is kept when its box plus 10% on each side "
        "is inside the preview's window, found from the preview's pixels.",
        "",
        f"| gravity | faces kept whole | previews with every face kept | CPU per render "
        f"| {moved_head} | windows stable across JPEG q90, PNG, WebP q80 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for gravity, row in result["gravities"].items():
        moved = row["no_face_windows_moved"]
        moved_text = "—" if moved is None else f"{moved} of {row['no_face_windows']}"
        lines.append(
            f"| `{gravity}` | {_pct(row['faces_kept'])} | {_pct(row['previews_all_kept'])} "
            f"| {row['cpu_ms_per_render']:.1f} ms | {moved_text} | {_pct(row['stable'])} |"
        )
    ceiling = result["ceiling"]
    lines.append(
        f"| the best window of each shape | {_pct(ceiling['faces_kept'])} "
        f"| {_pct(ceiling['previews_all_kept'])} | | | |"
    )
    missing = [g for g in GRAVITIES if g not in result["gravities"]]
    if missing:
        lines += ["", f"Not measured: the service refused `--gravity {'`, `'.join(missing)}`."]
    if result.get("figure"):
        lines += ["", f"![{result['figure_caption']}]({result['figure']})"]
    return "\n".join(lines)


def _label(text: str) -> Any:
    mask = pyvips.Image.text(text, dpi=100)
    return mask.bandjoin([mask, mask])


def _cell(image: Any, text: str, width: int = 320, height: int = 340) -> Any:
    canvas = (pyvips.Image.black(width, height, bands=3) + 255).cast("uchar")
    label = 255 - _label(text)
    canvas = canvas.insert(label.cast("uchar"), 4, 2)
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    image = image.colourspace("srgb").cast("uchar")
    return canvas.insert(image, (width - image.width) // 2, 30)


def figure(
    set_photos: list[Photo],
    root: Path,
    previews: dict[str, dict[Key, bytes]],
    wins: dict[str, dict[Key, Window]],
    out: Path,
) -> str:
    """Previews of the photos where the gravities keep the most different numbers of
    faces, one row each, the gravities side by side; returns the caption."""
    scored = []
    shown = (p for p in set_photos if p.people and p.file in FIGURE_PHOTOS)
    for order, photo in enumerate(shown):
        for shape in SHAPES:
            counts = [
                sum(
                    cropwindow.kept(f, w[(ORIGINAL, photo.file, shape)], photo.size)
                    for f in photo.faces
                )
                for w in wins.values()
            ]
            scored.append((-(max(counts) - min(counts)), order, photo, shape))
    scored.sort(key=lambda row: (row[0], row[1]))
    rows, seen = [], set()
    for _, _, photo, shape in scored:
        if photo.file in seen:
            continue
        seen.add(photo.file)
        cells = [
            _cell(
                pyvips.Image.thumbnail(str(root / ORIGINAL / photo.file), 300, height=300),
                photo.file,
            )
        ]
        for gravity, found in previews.items():
            preview = pyvips.Image.new_from_buffer(found[(ORIGINAL, photo.file, shape)], "")
            cells.append(_cell(preview, f"{gravity}, {shape[0]}x{shape[1]}"))
        rows.append(
            pyvips.Image.arrayjoin(cells, across=len(cells), shim=8, background=[255, 255, 255])
        )
        if len(rows) == 3:
            break
    sheet = pyvips.Image.arrayjoin(rows, across=1, shim=8, background=[255, 255, 255])
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.write_to_file(f"{out}[compression=9,palette]")  # a third of the bytes
    return "The source, then the preview of each gravity: " + ", ".join(f"`{g}`" for g in previews)


def run(work: Path, figure_path: Path | None, quick: bool = False) -> dict[str, Any]:
    set_photos = photos()
    if quick:  # a few of each kind: the harness, not the figures
        set_photos = [p for p in set_photos if p.people][:4] + [
            p for p in set_photos if not p.people
        ][:2]
    encode(faceset.OUT, ENCODED, (p.file for p in set_photos))
    versions = [(ORIGINAL, p.file) for p in set_photos]
    versions += [(e, p.file) for e, _, _ in ENCODINGS for p in set_photos]
    origin = start_origin(ENCODED, work / "origin")
    previews: dict[str, dict[Key, bytes]] = {}
    cpu: dict[str, float] = {}
    try:
        port = int(origin.url.rsplit(":", 1)[1])
        for gravity in GRAVITIES:
            server = accepted(gravity, work)
            if server is None:
                continue
            try:
                previews[gravity], cpu[gravity] = render_all(server, port, versions)
            finally:
                server.stop()
            print(f"crops: {gravity}: {len(previews[gravity])} previews", file=sys.stderr)
    finally:
        origin.stop()
    if not previews:
        raise SystemExit("crops: the service accepted none of " + ", ".join(GRAVITIES))
    wins = windows(ENCODED, versions, previews)
    result = summarise(set_photos, wins, cpu)
    if figure_path is not None:
        result["figure_caption"] = figure(set_photos, ENCODED, previews, wins, figure_path)
        result["figure"] = figure_path.name
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    parser.add_argument("--report", type=Path, help="Markdown file to write the table into")
    parser.add_argument("--figure", type=Path, help="PNG of previews side by side")
    parser.add_argument("--quick", action="store_true", help="six photos: checks the harness")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previewer-crops-") as tmp:
        result = run(Path(tmp), args.figure, args.quick)
    text = markdown(result)
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.report:
        write_block(args.report, text, MARK_BEGIN, MARK_END)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
