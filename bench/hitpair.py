"""Hit paths side by side: the origin, the paths and the alternating rounds of the
metrics, protections and warm stages.

An origin on 127.0.0.1 serves JPEGs made here with libvips; every round loads
each side for the same time at the same concurrency, the sides in alternating
order, so that whatever else the machine does falls on both.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyvips
from load import measure
from procs import Server, get
from smoke import _Origin

SOURCES = 8
SIZES = ("300x200", "640x480")


@dataclass(frozen=True)
class Side:
    """One side's wrk run in one round."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms_per_request: float
    other_cpu_pct: float


def _jpeg(width: int, height: int, seed: int) -> bytes:
    xyz = pyvips.Image.xyz(width, height)
    noise = pyvips.Image.gaussnoise(width, height, sigma=25, mean=128, seed=seed)
    image = (xyz[0] * (255 / width)).bandjoin([xyz[1] * (255 / height), noise])
    body: bytes = image.cast("uchar").copy(interpretation="srgb").jpegsave_buffer(Q=85)
    return body


@contextmanager
def origin() -> Iterator[tuple[str, list[str]]]:
    """The origin's authority and the preview paths of its photos at every size."""
    _Origin.files = {f"/photo-{i}.jpg": _jpeg(1600, 1000, i) for i in range(SOURCES)}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    authority = f"127.0.0.1:{server.server_address[1]}"
    paths = [f"/fill/{s.replace('x', '/')}/{authority}{n}" for n in _Origin.files for s in SIZES]
    try:
        yield authority, paths
    finally:
        server.shutdown()


def fill(server: Server, paths: list[str]) -> None:
    """Request every preview once; each must be a miss."""
    for path in paths:
        status, headers, _ = get(server.url + path)
        if status != 200 or headers.get("X-Cache") != "MISS":
            raise RuntimeError(f"{server.url}{path}: {status} {headers}")


def rounds(
    work: Path,
    servers: dict[str, Server],
    paths: list[str],
    duration: float,
    reps: int,
    concurrency: int,
    during: Callable[[str], AbstractContextManager[Any]] = lambda _name: nullcontext(),
) -> list[dict[str, Any]]:
    """Each round: wrk on each server's hit path, alternating which goes first.

    `servers` has two entries, ("off", "on"); a round's `ratio` is on / off
    requests per second, `cpu_ratio` on / off server CPU per request.
    """
    rows: list[dict[str, Any]] = []
    for rep in range(1, reps + 1):
        row: dict[str, Any] = {"rep": rep}
        for name in ("off", "on") if rep % 2 else ("on", "off"):
            server = servers[name]
            with during(name):
                result = measure(
                    peer=f"previewer-{name}",
                    path="hit",
                    rep=rep,
                    url=server.url,
                    paths=paths,
                    concurrency=concurrency,
                    duration=duration,
                    roots=server.roots,
                    origin_roots=[],
                    work=work,
                    nonce=None,
                )
            row[name] = asdict(
                Side(
                    result.rps,
                    result.p50_ms,
                    result.p99_ms,
                    result.errors,
                    result.cpu_ms_per_request,
                    result.other_cpu_pct,
                )
            )
        row["ratio"] = round(row["on"]["rps"] / row["off"]["rps"], 3)
        off_cpu = row["off"]["cpu_ms_per_request"]
        row["cpu_ratio"] = round(row["on"]["cpu_ms_per_request"] / off_cpu, 3) if off_cpu else None
        rows.append(row)
    return rows


def medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "off_rps_median": statistics.median(r["off"]["rps"] for r in rows),
        "on_rps_median": statistics.median(r["on"]["rps"] for r in rows),
        "ratio_median": statistics.median(r["ratio"] for r in rows),
    }
