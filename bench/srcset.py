"""The srcset case: four sizes of each corpus photo, with and without the source cache.

    .venv/bin/python bench/srcset.py [CORPUS_DIR]

A page asks for several sizes of one image. For each corpus photo (built by
`make bench`, default bench/.work/corpus) this asks previewer for four sizes
in turn (320, 640, 960 and 1280 wide, 3:2), all misses, once with the source
cache (the default: a quarter of `--cache-size`) and once with
`--source-cache-size 0`.

Two origins, both nginx on 127.0.0.1:

- `loopback`: unthrottled, the cheapest fetch there is, so the speed-up is
  the least the source cache can give;
- `20 Mbit/s`: the same files sent at 2.5 MB/s per connection (`limit_rate`),
  a stand-in for an origin across the internet (no added round-trip time, so
  still on the cheap side).

The origin requests are counted from nginx's access log, not assumed.
Prints a Markdown table and writes nothing else.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peers
from procs import Server, free_port, get
from writer import table

SIZES = ((320, 213), (640, 427), (960, 640), (1280, 853))
ORIGINS = (("loopback", ""), ("20 Mbit/s", "limit_rate 2500k;"))
REPEATS = 3


@dataclass(frozen=True)
class Result:
    seconds: float
    origin_requests: int


def _origin(prefix: Path, root: Path, throttle: str) -> tuple[Server, Path]:
    access = prefix / "access.log"
    body = f"location / {{ root {root}; access_log {access}; {throttle} }}"
    return peers.nginx(prefix, free_port(), body), access


def _run(
    work: Path, files: list[str], origin_port: int, access: Path, extra: tuple[str, ...]
) -> Result:
    server = peers.start_previewer(work, "centre", extra=extra, name=f"srcset{len(extra)}")
    try:
        before = len(access.read_text().splitlines()) if access.exists() else 0
        nonce = uuid.uuid4().hex[:8]  # a source URL no earlier run has seen
        started = time.perf_counter()
        for name in files:
            for width, height in SIZES:
                url = f"{server.url}/fill/{width}/{height}/127.0.0.1:{origin_port}/{name}?s={nonce}"
                status, headers, _ = get(url)
                if status != 200 or headers.get("X-Cache") != "MISS":
                    raise RuntimeError(f"{url}: {status} {headers.get('X-Cache')}")
        seconds = time.perf_counter() - started
        after = len(access.read_text().splitlines())
        return Result(seconds, after - before)
    finally:
        server.stop()


def measure(corpus: Path, repeats: int = REPEATS) -> dict[str, Any]:
    """Time the four sizes of every corpus photo, with and without the source cache.

    Returns the corpus size and, for each origin, the median seconds and the
    origin requests of each setting.
    """
    files = sorted(p.name for p in corpus.glob("*.jpg"))
    if not files:
        raise RuntimeError(f"no corpus in {corpus}: run `make bench` once to build it")
    out: dict[str, Any] = {
        "photos": len(files),
        "bytes": sum((corpus / name).stat().st_size for name in files),
        "sizes": [f"{w}x{h}" for w, h in SIZES],
        "repeats": repeats,
        "origins": [],
    }
    with tempfile.TemporaryDirectory(prefix="previewer-srcset-") as tmp:
        work = Path(tmp)
        for label, throttle in ORIGINS:
            origin, access = _origin(work / f"origin-{len(throttle)}", corpus, throttle)
            try:
                port = int(origin.url.rsplit(":", 1)[1])
                runs: dict[str, list[Result]] = {"on": [], "off": []}
                for _ in range(repeats):  # interleaved, so drift hits both alike
                    runs["on"].append(_run(work, files, port, access, ()))
                    runs["off"].append(
                        _run(work, files, port, access, ("--source-cache-size", "0"))
                    )
            finally:
                origin.stop()
            out["origins"].append(
                {
                    "origin": label,
                    "on_seconds": statistics.median(r.seconds for r in runs["on"]),
                    "off_seconds": statistics.median(r.seconds for r in runs["off"]),
                    "on_requests": max(r.origin_requests for r in runs["on"]),
                    "off_requests": min(r.origin_requests for r in runs["off"]),
                }
            )
    return out


def markdown(result: dict[str, Any]) -> str:
    """The table of a `measure` result."""
    header = ["origin", "with source cache (default)", "without (`--source-cache-size 0`)"]
    header += ["speed-up", "origin requests (with / without)"]
    body = [
        [
            o["origin"],
            f"{o['on_seconds']:.2f} s",
            f"{o['off_seconds']:.2f} s",
            f"{o['off_seconds'] / o['on_seconds']:.2f}x",
            f"{o['on_requests']} / {o['off_requests']}",
        ]
        for o in result["origins"]
    ]
    return table(header, body)


def main() -> None:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/.work/corpus").resolve()
    try:
        result = measure(corpus)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    count = result["photos"] * len(SIZES)
    print(
        f"{result['photos']} photos ({result['bytes'] / 1e6:.1f} MB) x {len(SIZES)} sizes = "
        f"{count} misses, one at a time; median of {result['repeats']} passes\n"
    )
    print(markdown(result))


if __name__ == "__main__":
    main()
