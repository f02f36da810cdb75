"""The srcset case: four sizes of each corpus photo, with and without the source cache.

    .venv/bin/python bench/srcset.py [CORPUS_DIR]

Every size a miss, from a loopback and a 20 Mbit/s nginx origin whose access
log counts the fetches; docs/benchmarks.md ("Second size of the same
source") has the method. Prints a Markdown table.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import peers
from procs import free_port, get
from writer import table

SIZES = ((320, 213), (640, 427), (960, 640), (1280, 853))
ORIGINS = (("loopback", ""), ("20 Mbit/s", "limit_rate 2500k;"))
REPEATS = 3


@dataclass(frozen=True)
class Origin:
    """One origin's medians with the source cache on (the default) and off."""

    origin: str
    on_seconds: float
    off_seconds: float
    on_requests: int
    off_requests: int


@dataclass(frozen=True)
class Srcset:
    photos: int
    bytes: int
    sizes: list[str]
    repeats: int
    origins: list[Origin]


def _pass(work: Path, files: list[str], port: int, access: Path, off: bool) -> tuple[float, int]:
    """Seconds for every size of every file from a fresh previewer, and the origin requests."""
    extra = ("--source-cache-size", "0") if off else ()
    server = peers.start_previewer(work, "centre", extra=extra, name=f"srcset{len(extra)}")
    try:
        before = len(access.read_text().splitlines()) if access.exists() else 0
        nonce = uuid.uuid4().hex[:8]  # a source URL no earlier run has seen
        started = time.perf_counter()
        for name in files:
            for width, height in SIZES:
                url = f"{server.url}/fill/{width}/{height}/127.0.0.1:{port}/{name}?s={nonce}"
                status, headers, _ = get(url)
                if status != 200 or headers.get("X-Cache") != "MISS":
                    raise RuntimeError(f"{url}: {status} {headers.get('X-Cache')}")
        seconds = time.perf_counter() - started
        return seconds, len(access.read_text().splitlines()) - before
    finally:
        server.stop()


def measure(corpus: Path, repeats: int = REPEATS) -> Srcset:
    """The four sizes of every corpus photo, with and without the source cache, per origin."""
    files = sorted(p.name for p in corpus.glob("*.jpg"))
    if not files:
        raise RuntimeError(f"no corpus in {corpus}: run `make bench` once to build it")
    origins = []
    with tempfile.TemporaryDirectory(prefix="previewer-srcset-") as tmp:
        work = Path(tmp)
        for label, throttle in ORIGINS:
            prefix = work / f"origin-{len(throttle)}"
            access = prefix / "access.log"
            body = f"location / {{ root {corpus}; access_log {access}; {throttle} }}"
            origin = peers.nginx(prefix, free_port(), body)
            try:
                port = int(origin.url.rsplit(":", 1)[1])
                on, off = [], []
                for _ in range(repeats):  # interleaved, so drift hits both alike
                    on.append(_pass(work, files, port, access, off=False))
                    off.append(_pass(work, files, port, access, off=True))
            finally:
                origin.stop()
            origins.append(
                Origin(
                    origin=label,
                    on_seconds=statistics.median(s for s, _ in on),
                    off_seconds=statistics.median(s for s, _ in off),
                    on_requests=max(n for _, n in on),
                    off_requests=min(n for _, n in off),
                )
            )
    return Srcset(
        photos=len(files),
        bytes=sum((corpus / name).stat().st_size for name in files),
        sizes=[f"{w}x{h}" for w, h in SIZES],
        repeats=repeats,
        origins=origins,
    )


def markdown(result: Srcset) -> str:
    header = ["origin", "with source cache (default)", "without (`--source-cache-size 0`)"]
    header += ["speed-up", "origin requests (with / without)"]
    body = [
        [
            o.origin,
            f"{o.on_seconds:.2f} s",
            f"{o.off_seconds:.2f} s",
            f"{o.off_seconds / o.on_seconds:.2f}x",
            f"{o.on_requests} / {o.off_requests}",
        ]
        for o in result.origins
    ]
    return table(header, body)


def main() -> None:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/.work/corpus").resolve()
    try:
        result = measure(corpus)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    print(
        f"{result.photos} photos ({result.bytes / 1e6:.1f} MB) x {len(SIZES)} sizes = "
        f"{result.photos * len(SIZES)} misses, one at a time; median of {result.repeats} passes\n"
    )
    print(markdown(result))


if __name__ == "__main__":
    main()
