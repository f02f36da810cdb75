"""Two sides of the hit path side by side, in rounds: the shared piece of the warm, metrics
and protections stages. Each round loads each side for the same time at the same
concurrency, in alternating order, so that whatever else the machine does falls on both."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import loopback
import peers
from load import Result, measure
from procs import Server, get
from writer import table, write_block

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testkit"))

import images  # the images shared with the test suite

SOURCES = 8
SIZES = ("300x200", "640x480")


@dataclass(frozen=True)
class Side:
    """One side's run in one round."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms_per_request: float  # the server's; in the warm stage, the client's
    other_cpu_pct: float

    @classmethod
    def of(cls, r: Result) -> Side:
        return cls(r.rps, r.p50_ms, r.p99_ms, r.errors, r.cpu_ms_per_request, r.other_cpu_pct)


@dataclass(frozen=True)
class Round:
    rep: int
    sides: dict[str, Side]
    ratio: float  # req/s, second side / first
    cpu_ratio: float | None  # CPU ms per request, second side / first


@dataclass(frozen=True)
class Pair:
    """The rounds of two sides; the first side is the one compared against."""

    names: tuple[str, str]
    duration: float
    concurrency: int
    paths: int
    reps: list[Round]
    ratio_median: float

    def rps_median(self, name: str) -> float:
        return statistics.median(r.sides[name].rps for r in self.reps)


P = TypeVar("P", bound=Pair)


@contextmanager
def origin() -> Iterator[tuple[str, list[str]]]:
    """The origin's authority and the preview paths of its photos at every size."""
    files = {
        f"/photo-{i}.jpg": images.noisy_gradient(1600, 1000, sigma=25, seed=i).jpegsave_buffer(Q=85)
        for i in range(SOURCES)
    }
    with loopback.serving(files) as authority:
        yield (
            authority,
            [f"/fill/{s.replace('x', '/')}/{authority}{n}" for n in files for s in SIZES],
        )


def wrk(
    work: Path, server: Server, paths: list[str], seconds: float, conc: int, rep: int
) -> Result:
    """wrk on the server's hit path (bench/cycle.lua over `paths`)."""
    return measure(
        peer=server.name,
        path="hit",
        rep=rep,
        url=server.url,
        paths=paths,
        concurrency=conc,
        duration=seconds,
        roots=server.roots,
        origin_roots=[],
        work=work,
        nonce=None,
    )


def compare(
    names: tuple[str, str],
    load: Callable[[str, int], Side],
    paths: list[str],
    duration: float,
    reps: int,
    concurrency: int,
) -> Pair:
    """`reps` rounds of `load(name, rep)` on each side, the first side first in odd rounds."""
    rounds = []
    for rep in range(1, reps + 1):
        ran = {name: load(name, rep) for name in (names if rep % 2 else names[::-1])}
        a, b = ran[names[0]], ran[names[1]]
        cpu = a.cpu_ms_per_request
        ratio = round(b.rps / a.rps, 3)
        cpu_ratio = round(b.cpu_ms_per_request / cpu, 3) if cpu else None
        rounds.append(Round(rep, {name: ran[name] for name in names}, ratio, cpu_ratio))
    ratio = statistics.median(r.ratio for r in rounds)
    return Pair(names, duration, concurrency, len(paths), rounds, ratio)


def servers(
    work: Path,
    flags: dict[str, tuple[str, ...]],
    duration: float,
    reps: int,
    concurrency: int,
    during: Callable[[str], AbstractContextManager[Any]] = lambda _name: nullcontext(),
) -> Pair:
    """Two `previewer serve` (centre gravity), with each entry's flags, started in order;
    every preview asked once from each (a miss), then the rounds, sides (off, on)."""
    started: dict[str, Server] = {}
    with origin() as (_, paths):
        try:
            for name, extra in flags.items():
                started[name] = peers.start_previewer(work, "centre", extra, name=f"{name}-side")
            for server in started.values():
                for path in paths:
                    status, headers, _ = get(server.url + path)
                    if status != 200 or headers.get("X-Cache") != "MISS":
                        raise RuntimeError(f"{server.url}{path}: {status} {headers}")

            def load(name: str, rep: int) -> Side:
                with during(name):
                    return Side.of(wrk(work, started[name], paths, duration, concurrency, rep))

            return compare(("off", "on"), load, paths, duration, reps, concurrency)
        finally:
            for server in started.values():
                server.stop()


def markdown(pair: Pair, caption: str, column: str, labels: dict[str, str], cpu: str) -> str:
    """The rounds' table (`labels` names the sides, in their order in it) and the medians."""
    head = ["round", column, "req/s", "p50 ms", "p99 ms", "errors", f"{cpu} CPU ms/req"]
    body = [
        [
            str(r.rep),
            shown,
            f"{s.rps:,.0f}",
            f"{s.p50_ms:.2f}",
            f"{s.p99_ms:.2f}",
            str(s.errors),
            f"{s.cpu_ms_per_request:.3f}",
            f"{s.other_cpu_pct:.0f}",
        ]
        for r in pair.reps
        for name, shown in labels.items()
        for s in [r.sides[name]]
    ]
    a, b = pair.names
    return (
        f"{caption}hit path, c={pair.concurrency}, {pair.duration:g} s per run, {pair.paths} "
        f"previews, {len(pair.reps)} rounds in alternating order.\n\n"
        f"{table([*head, 'other CPU %'], body)}\n\n"
        f"Median: {b} {pair.rps_median(b):,.0f} req/s, {a} {pair.rps_median(a):,.0f} req/s; "
        f"**ratio {b} / {a} {pair.ratio_median:.3f}** "
        f"(per round: {', '.join(str(r.ratio) for r in pair.reps)})"
    )


def main(
    doc: str,
    reps: int,
    run: Callable[[Path, float, int, int], P],
    text: Callable[[P], str],
    block: tuple[str, str, str] | None = None,
) -> int:
    """A stage's command line; `block` is (doc file, begin marker, end marker) for --docs."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=reps)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    if block:
        parser.add_argument("--docs", type=Path, help=f"write the table into DOCS/{block[0]}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="previewer-hitpair-") as tmp:
        result = run(Path(tmp), args.duration, args.reps, args.concurrency)
    shown = text(result)
    print(shown, file=sys.stderr if args.json else sys.stdout)
    if block and args.docs:
        write_block(args.docs / block[0], shown, *block[1:])
    if args.json:
        print(json.dumps(asdict(result)))
    return 0
