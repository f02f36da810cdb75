"""Before the load: every peer must answer every corpus file with a 300x200 JPEG.

`check_peers` fetches each peer's previews into run/outputs/<peer>/ (Pillow's
in-process ones beside them) for bench/quality.py to check and score; `warm`
is the pass over the corpus that precedes every load run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import corpus
import peers
from procs import Server, get, python_json
from results import Quality, build

HERE = Path(__file__).resolve().parent


def pillow_inprocess(seconds: float, out: Path) -> dict[str, Any] | None:
    """bench/pillow_limit.py in thumbor's venv (which has Pillow); None without it."""
    python = peers.THUMBOR_ENV / "bin" / "python"
    if not python.exists():
        return None
    argv = [str(HERE / "pillow_limit.py"), str(corpus.DEFAULT_OUT), f"{seconds:g}", str(out)]
    return python_json(argv, 1800, python=str(python))


def fetch_all(server: Server, peer: peers.Peer, files: list[str], port: int) -> dict[str, bytes]:
    bodies = {}
    for file in files:
        status, headers, body = get(server.url + peer.path(file, port), timeout=120)
        ctype = headers.get("Content-Type", "")
        if status != 200 or not ctype.startswith("image/jpeg"):
            raise RuntimeError(f"{file}: HTTP {status} {ctype} {body[:200]!r}")
        bodies[file] = body
    return bodies


def warm(server: Server, peer: peers.Peer, files: list[str], origin_port: int, hit: bool) -> None:
    """One pass over the corpus; on the hit path a second, which must be served stored."""
    fetch_all(server, peer, files, origin_port)
    if hit:
        for file in files:
            _, headers, _ = get(server.url + peer.path(file, origin_port), timeout=120)
            if peer.name.startswith("previewer") and headers.get("X-Cache") != "HIT":
                raise RuntimeError(f"{file}: second request was not a cache hit")


def check_peers(
    names: list[str], files: list[str], run: Path, origin_port: int, log: Callable[[str], None]
) -> tuple[dict[str, str], dict[str, Quality], dict[str, float]]:
    """The peers that failed with their reasons, the quality of each, its mean preview bytes."""
    outputs = run / "outputs"
    failures: dict[str, str] = {}
    sizes: dict[str, float] = {}
    order = sorted(names, key=lambda name: name == "static")  # static needs a preview
    for name in order:
        peer = peers.PEERS[name]
        if name == "static":
            make_static(outputs, run / "static-root")
        wanted = [peers.STATIC_FILE] if name == "static" else files
        log(f"check: {name}")
        try:
            server = peer.start(run, origin_port)
        except Exception as exc:  # a peer that cannot start is reported, not fatal
            failures[name] = f"did not start: {exc}"
            log(f"check: {name} did not start: {exc}")
            continue
        try:
            bodies = fetch_all(server, peer, wanted, origin_port)
            if name.startswith("thumbor-rs") or name.startswith("previewer"):
                bodies = fetch_all(server, peer, wanted, origin_port)  # stored answers too
        except Exception as exc:
            failures[name] = f"check failed: {exc}"
            continue
        finally:
            server.stop()
        (outputs / name).mkdir(parents=True, exist_ok=True)
        for file, body in bodies.items():
            (outputs / name / file).write_bytes(body)
        sizes[name] = sum(len(b) for b in bodies.values()) / len(bodies)
    if pillow_inprocess(0.5, outputs / "pillow") is None:
        log("check: no Pillow (thumbor's venv is missing): its in-process row is left out")
    else:
        made = list((outputs / "pillow").glob("*.jpg"))
        sizes["pillow"] = sum(p.stat().st_size for p in made) / max(1, len(made))
    argv = [str(HERE / "quality.py"), str(corpus.DEFAULT_OUT), str(outputs)]
    quality = build(dict[str, Quality], python_json(argv, 900))
    for name, q in quality.items():
        if q.problems and name not in failures:
            failures[name] = f"wrong previews: {q.problems}"
    return failures, quality, sizes


def make_static(outputs: Path, root: Path) -> None:
    """The static peer serves previewer's preview closest to 20 KB (or any 20 KB JPEG)."""
    root.mkdir(parents=True, exist_ok=True)
    candidates = sorted((outputs / "previewer-centre").glob("*.jpg"))
    if not candidates:
        candidates = sorted(p for p in outputs.glob("*/*.jpg"))
    if not candidates:
        raise RuntimeError("no preview to serve as the static file")
    best = min(candidates, key=lambda p: abs(p.stat().st_size - 20_000))
    shutil.copyfile(best, root / peers.STATIC_FILE)
