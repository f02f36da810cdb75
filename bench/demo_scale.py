"""Scale-out demo: a front, RabbitMQ and 1, 2, 4 workers; RPC overhead; fronts; scale-up.

    .venv/bin/python bench/demo_scale.py [--duration 15] [--reps 2] [--doc docs/scale-out.md]

`make demo-scale` runs it; docs/scale-out.md ("Measured figures") tells the stages. Prints the
tables; with --doc writes them between its demo-scale markers, and the charts beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import cluster
import corpus
import peers
import scale_report
from load import Result, measure
from procs import Server, get
from writer import write_block

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testkit"))

from rabbitmq import RabbitNode

OUT = Path(__file__).resolve().parent / ".work" / "demo-scale.json"
MISS_MEGAPIXELS = 5.0  # the corpus photos up to this size make the miss load
HIT_SIZES = ((300, 200), (150, 100), (640, 360), (200, 200))
Record = tuple[float, float, int]  # (sent, done: seconds since the load began; status)


@dataclass(frozen=True)
class Summary:
    """One side of alternated runs: medians, errors summed, and each run's rate."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    reps_rps: tuple[float, ...]

    @classmethod
    def of(cls, runs: list[Result]) -> Summary:
        return cls(
            rps=statistics.median(r.rps for r in runs),
            p50_ms=statistics.median(r.p50_ms for r in runs),
            p99_ms=statistics.median(r.p99_ms for r in runs),
            errors=sum(r.errors for r in runs),
            reps_rps=tuple(r.rps for r in runs),
        )


@dataclass(frozen=True)
class Scaling:
    workers: int
    cpus: str  # the CPU sets, or "none (shared)"
    result: Result


@dataclass(frozen=True)
class Overhead:
    renders: int  # render threads either way
    reps: int
    sides: dict[str, Summary]  # "embedded", "broker"
    single_p50_ms: dict[str, float]  # one request at a time

    @property
    def ratio(self) -> float:
        return self.sides["broker"].rps / self.sides["embedded"].rps

    @property
    def added_p50_ms(self) -> float:
        return self.single_p50_ms["broker"] - self.single_p50_ms["embedded"]


@dataclass(frozen=True)
class Fronts:
    layouts: dict[str, Summary]
    front_b_share: float  # the part of the previews the hash gave the second front
    previews: int


@dataclass(frozen=True)
class ScaleUp:
    one_worker_rps: float
    rate: float
    timeout: float
    seconds: float
    added: int
    added_at: float  # seconds into the load when the added workers consume
    records: tuple[Record, ...]


@dataclass(frozen=True)
class DemoScale:
    when: str
    cores: int
    duration: float
    concurrency: int
    scaling: tuple[Scaling, ...]
    overhead: Overhead
    fronts: Fronts
    scale_up: ScaleUp


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Demo:
    """The shared pieces: the broker, the origin, the corpus paths and the load settings."""

    def __init__(self, work: Path, node: RabbitNode, origin: Server, args: argparse.Namespace):
        self.work, self.node, self.origin = work, node, origin
        self.duration: float = args.duration
        self.concurrency: int = args.concurrency
        self.cores = os.cpu_count() or 1
        port = origin.url.rsplit(":", 1)[1]
        photos = [p for p in corpus.load() if p.megapixels <= MISS_MEGAPIXELS]
        self.miss_paths = [f"/fill/300/200/127.0.0.1:{port}/{p.file}" for p in photos]
        self.small_path = self.miss_paths[0]  # the smallest photo, for latency
        self.hit_paths = [
            f"/fill/{w}/{h}/127.0.0.1:{port}/{p.file}" for p in corpus.load() for w, h in HIT_SIZES
        ]

    def load(self, label: str, server: Server, roots: list[int], **given: Any) -> Result:
        """wrk over the misses (unique each) at the demo's settings; `given` overrides them."""
        settings: dict[str, Any] = {"path": "miss", "rep": 0, "paths": self.miss_paths}
        settings |= {"concurrency": self.concurrency, "duration": self.duration}
        settings |= {"nonce": uuid.uuid4().hex[:8], "origin_roots": self.origin.roots}
        return measure(
            peer=label, url=server.url, roots=roots, work=self.work, **(settings | given)
        )

    def hits(self, label: str, server: Server, roots: list[int], rep: int) -> Result:
        return self.load(
            label, server, roots, path="hit", paths=self.hit_paths, nonce=None, rep=rep
        )

    def front(
        self, stack: ExitStack, name: str, broker: bool = True, extra: tuple[str, ...] = ()
    ) -> Server:
        """A front (embedded without `broker`), stopped when `stack` closes."""
        server = cluster.start_front(self.work, name, self.node.url if broker else None, extra)
        stack.callback(server.stop)
        return server

    def worker(
        self, stack: ExitStack, name: str, renders: int, cpus: str | None
    ) -> subprocess.Popen[bytes]:
        """A worker, stopped when `stack` closes."""
        proc = cluster.start_worker(self.work, name, self.node.url, renders, cpus)
        stack.callback(cluster.stop, [proc])
        return proc


def _pids(*groups: list[subprocess.Popen[bytes]] | Server) -> list[int]:
    pids: list[int] = []
    for group in groups:
        pids += group.roots if isinstance(group, Server) else [p.pid for p in group]
    return pids


def scaling(demo: Demo) -> tuple[Scaling, ...]:
    """One front, then 1, 2 and 4 workers, each doing one render at a time."""
    rows = []
    with ExitStack() as stack:
        front = demo.front(stack, "front-scaling")
        for count in (1, 2, 4):
            sets = cluster.cpu_sets(count, demo.cores)
            with ExitStack() as workers:
                procs = [
                    demo.worker(workers, f"worker-{count}-{i}", 1, cpus)
                    for i, cpus in enumerate(sets)
                ]
                cluster.wait_consumers(front, count)
                demo.load("warm-up", front, [], duration=3)
                result = demo.load(f"{count} workers", front, _pids(front, procs))
            pinned = ", ".join(s for s in sets if s is not None) or "none (shared)"
            rows.append(Scaling(count, pinned, result))
            log(f"scaling: {count} workers {result.rps:.1f} req/s p99 {result.p99_ms:.0f} ms")
    return tuple(rows)


def overhead(demo: Demo, reps: int) -> Overhead:
    """Broker (front + one worker) against embedded, the same render threads, alternated."""
    renders = demo.cores
    single_s = float(max(5, round(demo.duration / 2)))  # one request at a time; wrk: whole seconds
    runs: dict[str, list[Result]] = {"embedded": [], "broker": []}
    single: dict[str, list[Result]] = {"embedded": [], "broker": []}
    with ExitStack() as stack:
        embedded = demo.front(stack, "embedded", broker=False, extra=("--workers", str(renders)))
        front = demo.front(stack, "front-overhead")
        worker = demo.worker(stack, "worker-overhead", renders, None)
        sides = {"embedded": (embedded, embedded.roots), "broker": (front, _pids(front, [worker]))}
        cluster.wait_consumers(front, 1)
        for server, _ in sides.values():
            demo.load("warm-up", server, [], duration=3)
        for rep in range(reps):
            for name, (server, roots) in sides.items():
                runs[name].append(demo.load(name, server, roots, rep=rep))
                one = {"paths": [demo.small_path], "concurrency": 1, "duration": single_s}
                single[name].append(demo.load(name, server, roots, rep=rep, **one))
    result = Overhead(
        renders,
        reps,
        {name: Summary.of(results) for name, results in runs.items()},
        {name: statistics.median(r.p50_ms for r in results) for name, results in single.items()},
    )
    log(f"overhead: broker/embedded {result.ratio:.2f}, added p50 {result.added_p50_ms:.1f} ms")
    return result


def fronts(demo: Demo, reps: int) -> Fronts:
    """Hits: one front direct, one front behind nginx, two fronts behind nginx."""
    with ExitStack() as stack:
        front_a, front_b = demo.front(stack, "front-a"), demo.front(stack, "front-b")
        demo.worker(stack, "worker-fronts", demo.cores, None)
        port_a, port_b = (int(f.url.rsplit(":", 1)[1]) for f in (front_a, front_b))
        one = cluster.fronts_balancer(demo.work / "nginx-one-front", [port_a])
        stack.callback(one.stop)
        two = cluster.fronts_balancer(demo.work / "nginx-two-fronts", [port_a, port_b])
        stack.callback(two.stop)
        layouts = {
            "one front, direct": (front_a, front_a.roots),
            "one front behind nginx": (one, _pids(one, front_a)),
            "two fronts behind nginx": (two, _pids(two, front_a, front_b)),
        }
        for front in (front_a, front_b):  # each polls the consumer count on its own
            cluster.wait_consumers(front, 1)
        for path in demo.hit_paths:  # front A holds every preview; B its share of the hash
            for server in (front_a, two):
                status, _, _ = get(server.url + path, timeout=60)
                if status != 200:
                    raise RuntimeError(f"warming {server.name}{path}: {status}")
        _, _, body = get(f"{front_b.url}/health", timeout=5)
        share = int(json.loads(body)["cache"]["entries"]) / len(demo.hit_paths)
        runs: dict[str, list[Result]] = {name: [] for name in layouts}
        for rep in range(reps):
            for name, (server, roots) in layouts.items():
                runs[name].append(demo.hits(name, server, roots, rep))
    result = Fronts({name: Summary.of(r) for name, r in runs.items()}, share, len(demo.hit_paths))
    for name, summary in result.layouts.items():
        log(f"fronts: {name} {summary.rps:.0f} req/s")
    return result


async def _open_loop(url: str, paths: list[str], rate: float, seconds: float) -> list[Record]:
    """`rate` requests a second for `seconds`, each a unique miss."""
    records: list[Record] = []
    started = time.monotonic()
    nonce = uuid.uuid4().hex[:8]

    async def one(client: aiohttp.ClientSession, index: int) -> None:
        sent = time.monotonic() - started
        path = f"{paths[index % len(paths)]}?r={nonce}-{index}"
        try:
            async with client.get(url + path) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        records.append((sent, time.monotonic() - started, status))

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        tasks = []
        index = 0
        while (now := time.monotonic() - started) < seconds:
            while index < now * rate:
                tasks.append(asyncio.create_task(one(client, index)))
                index += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
    return records


def scale_up(demo: Demo, timeout: float) -> ScaleUp:
    """An open-loop load one worker cannot finish within `timeout`; workers join midway.

    The rate is 1.6 times what the one worker managed in a closed-loop run just
    before (the machine is shared: a figure from an earlier stage may be stale).
    """
    seconds, add_at = 45.0, 15.0
    extra = max(1, min(3, demo.cores - 1))  # to one worker per core, up to four
    sets = cluster.cpu_sets(1 + extra, demo.cores)
    with ExitStack() as stack:
        front = demo.front(stack, "front-scale-up", extra=("--request-timeout", f"{timeout:g}"))
        first = demo.worker(stack, "worker-up-0", 1, sets[0])
        cluster.wait_consumers(front, 1)
        calibration = demo.load("one worker", front, _pids(front, [first]), duration=8)
        rate = max(2.0, 1.6 * calibration.rps)

        async def run() -> tuple[list[Record], float]:
            load = asyncio.create_task(_open_loop(front.url, demo.miss_paths, rate, seconds))
            await asyncio.sleep(add_at)
            started = time.monotonic()
            for i in range(extra):
                name = f"worker-up-{i + 1}"
                await asyncio.to_thread(demo.worker, stack, name, 1, sets[i + 1])
            added_at = add_at + (time.monotonic() - started)  # consuming from here on
            return await load, added_at

        records, added_at = asyncio.run(run())
    log(f"scale-up: {len(records)} requests at {rate:.1f}/s, workers added at {added_at:.1f} s")
    return ScaleUp(calibration.rps, rate, timeout, seconds, extra, added_at, tuple(records))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections")
    parser.add_argument("--reps", type=int, default=2, help="alternated runs per side")
    parser.add_argument("--timeout", type=float, default=3.0, help="scale-up --request-timeout")
    parser.add_argument("--doc", type=Path, help="Markdown file to write the tables into")
    args = parser.parse_args()

    corpus.build()
    with tempfile.TemporaryDirectory(prefix="previewer-demo-scale-") as tmp:
        work = Path(tmp)
        node = RabbitNode(work / "rabbitmq", name="previewer-demo")
        log("starting RabbitMQ")
        node.start()
        origin = peers.start_origin(work / "origin", corpus.DEFAULT_OUT)
        try:
            demo = Demo(work, node, origin, args)
            stages = (scaling(demo), overhead(demo, args.reps), fronts(demo, args.reps))
            up = scale_up(demo, args.timeout)
        finally:
            origin.stop()
            node.stop()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    data = DemoScale(when, demo.cores, args.duration, args.concurrency, *stages, up)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(asdict(data), indent=1) + "\n")
    text = scale_report.markdown(data)
    print(text)
    if args.doc:
        write_block(args.doc, text, "<!-- demo-scale:begin -->", "<!-- demo-scale:end -->")
        scale_report.charts(data, args.doc.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
