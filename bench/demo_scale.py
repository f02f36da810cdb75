"""Scale-out demo: a front, RabbitMQ and 1, 2, 4 workers; RPC overhead; fronts; scale-up.

    .venv/bin/python bench/demo_scale.py [--duration 15] [--doc docs/scale-out.md]

`make demo-scale` runs it (after bench/setup.sh: wrk, nginx, the corpus).
Everything runs on 127.0.0.1: a private RabbitMQ node (testkit/rabbitmq.py), an
nginx origin over the bench corpus, previewer fronts and workers. Stages,
each measured side by side in this one run:

1. scaling: one front, then 1, 2 and 4 workers (one core each while the
   machine has enough cores, `taskset`), wrk over the corpus, misses only;
2. overhead: misses through front + one worker against the embedded mode
   with the same render threads on the same cores, alternated; and the p50
   of one request at a time, broker against embedded;
3. fronts: hits only, one front direct, one front behind nginx, two fronts
   behind nginx (hash $request_uri consistent), alternated;
4. scale-up: a front with a short --request-timeout and one worker under an
   open-loop load it cannot finish in time (504s); workers are added while
   the load runs, and the timeline shows the 504s stop.

Prints the tables; with --doc writes them between the demo-scale markers of
that Markdown file, and the charts beside it (scale-out.png, scale-up.png).
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


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Demo:
    """The shared pieces: the broker, the origin, the corpus paths and the load settings."""

    def __init__(self, work: Path, node: RabbitNode, origin: Server, args: argparse.Namespace):
        self.work = work
        self.node = node
        self.origin = origin
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

    def load(
        self,
        label: str,
        server: Server,
        roots: list[int],
        *,
        hits: bool = False,
        paths: list[str] | None = None,
        concurrency: int | None = None,
        duration: float | None = None,
        rep: int = 0,
    ) -> Result:
        return measure(
            peer=label,
            path="hit" if hits else "miss",
            rep=rep,
            url=server.url,
            paths=paths or (self.hit_paths if hits else self.miss_paths),
            concurrency=concurrency or self.concurrency,
            duration=duration or self.duration,
            roots=roots,
            origin_roots=self.origin.roots,
            work=self.work,
            nonce=None if hits else uuid.uuid4().hex[:8],
        )


def _pids(*groups: list[subprocess.Popen[bytes]] | Server) -> list[int]:
    pids: list[int] = []
    for group in groups:
        pids += group.roots if isinstance(group, Server) else [p.pid for p in group]
    return pids


def scaling(demo: Demo) -> list[dict[str, Any]]:
    """One front, then 1, 2 and 4 workers, each doing one render at a time."""
    front = cluster.start_front(demo.work, "front-scaling", demo.node.url)
    rows = []
    try:
        for count in (1, 2, 4):
            sets = cluster.cpu_sets(count, demo.cores)
            workers = [
                cluster.start_worker(demo.work, f"worker-{count}-{i}", demo.node.url, 1, cpus)
                for i, cpus in enumerate(sets)
            ]
            try:
                cluster.wait_consumers(front, count)
                demo.load("warm-up", front, [], duration=3)
                result = demo.load(f"{count} workers", front, _pids(front, workers))
            finally:
                cluster.stop_workers(workers)
            pinned = ", ".join(s for s in sets if s is not None) or "none (shared)"
            rows.append({"workers": count, "cpus": pinned, **result.as_dict()})
            log(f"scaling: {count} workers {result.rps:.1f} req/s p99 {result.p99_ms:.0f} ms")
    finally:
        front.stop()
    return rows


def overhead(demo: Demo, reps: int) -> dict[str, Any]:
    """Broker (front + one worker) against embedded, the same render threads, alternated."""
    renders = demo.cores
    embedded = cluster.start_front(demo.work, "embedded", None, ("--workers", str(renders)))
    front = cluster.start_front(demo.work, "front-overhead", demo.node.url)
    worker = cluster.start_worker(demo.work, "worker-overhead", demo.node.url, renders, None)
    runs: dict[str, list[Result]] = {"embedded": [], "broker": []}
    latency: dict[str, list[Result]] = {"embedded": [], "broker": []}
    try:
        cluster.wait_consumers(front, 1)
        roots = {"embedded": embedded.roots, "broker": _pids(front, [worker])}
        servers = {"embedded": embedded, "broker": front}
        for name in runs:
            demo.load("warm-up", servers[name], [], duration=3)
        for rep in range(reps):
            for name in runs:
                runs[name].append(demo.load(name, servers[name], roots[name], rep=rep))
                latency[name].append(
                    demo.load(
                        name,
                        servers[name],
                        roots[name],
                        paths=[demo.small_path],
                        concurrency=1,
                        duration=float(max(5, round(demo.duration / 2))),  # wrk: whole seconds
                        rep=rep,
                    )
                )
    finally:
        cluster.stop_workers([worker])
        front.stop()
        embedded.stop()

    def median(results: list[Result], key: str) -> float:
        return float(statistics.median(getattr(r, key) for r in results))

    summary: dict[str, dict[str, Any]] = {
        name: {
            "rps": median(runs[name], "rps"),
            "p50_ms": median(runs[name], "p50_ms"),
            "p99_ms": median(runs[name], "p99_ms"),
            "errors": sum(r.errors for r in runs[name]),
            "single_p50_ms": median(latency[name], "p50_ms"),
            "reps_rps": [r.rps for r in runs[name]],
        }
        for name in runs
    }
    ratio = summary["broker"]["rps"] / summary["embedded"]["rps"]
    added = summary["broker"]["single_p50_ms"] - summary["embedded"]["single_p50_ms"]
    log(f"overhead: broker/embedded {ratio:.2f}, added p50 {added:.1f} ms")
    return {"renders": renders, "reps": reps, **summary, "ratio": ratio, "added_p50_ms": added}


def fronts(demo: Demo, reps: int) -> dict[str, Any]:
    """Hits: one front direct, one front behind nginx, two fronts behind nginx."""
    front_a = cluster.start_front(demo.work, "front-a", demo.node.url)
    front_b = cluster.start_front(demo.work, "front-b", demo.node.url)
    worker = cluster.start_worker(demo.work, "worker-fronts", demo.node.url, demo.cores, None)
    port_a, port_b = (int(f.url.rsplit(":", 1)[1]) for f in (front_a, front_b))
    one = cluster.fronts_balancer(demo.work / "nginx-one-front", [port_a])
    two = cluster.fronts_balancer(demo.work / "nginx-two-fronts", [port_a, port_b])
    layouts = {
        "one front, direct": (front_a, front_a.roots),
        "one front behind nginx": (one, _pids(one, front_a)),
        "two fronts behind nginx": (two, _pids(two, front_a, front_b)),
    }
    runs: dict[str, list[Result]] = {name: [] for name in layouts}
    try:
        for front in (front_a, front_b):  # each polls the consumer count on its own
            cluster.wait_consumers(front, 1)
        for path in demo.hit_paths:  # front A holds every preview; B its share of the hash
            for server in (front_a, two):
                status, _, _ = get(server.url + path, timeout=60)
                if status != 200:
                    raise RuntimeError(f"warming {server.name}{path}: {status}")
        share = _share(front_b, len(demo.hit_paths))
        for rep in range(reps):
            for name, (server, roots) in layouts.items():
                runs[name].append(demo.load(name, server, roots, hits=True, rep=rep))
    finally:
        for server in (two, one, front_b, front_a):
            server.stop()
        cluster.stop_workers([worker])
    rows = []
    for name, results in runs.items():
        rows.append(
            {
                "layout": name,
                "rps": statistics.median(r.rps for r in results),
                "p50_ms": statistics.median(r.p50_ms for r in results),
                "p99_ms": statistics.median(r.p99_ms for r in results),
                "errors": sum(r.errors for r in results),
                "reps_rps": [r.rps for r in results],
            }
        )
        log(f"fronts: {name} {rows[-1]['rps']:.0f} req/s")
    return {"rows": rows, "front_b_share": share, "previews": len(demo.hit_paths)}


def _share(front: Server, total: int) -> float:
    """The part of the previews the hash gave `front` (its cache entries / all)."""
    _, _, body = get(f"{front.url}/health", timeout=5)
    entries = int(json.loads(body)["cache"]["entries"])
    return entries / total


async def _open_loop(
    url: str, paths: list[str], rate: float, seconds: float
) -> list[tuple[float, float, int]]:
    """`rate` requests a second for `seconds`, each a unique miss: (sent, done, status)."""
    records: list[tuple[float, float, int]] = []
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


def scale_up(demo: Demo, timeout: float) -> dict[str, Any]:
    """An open-loop load one worker cannot finish within `timeout`; workers join midway.

    The rate is 1.6 times what the one worker managed in a closed-loop run just
    before (the machine is shared: a figure from an earlier stage may be stale).
    """
    seconds, add_at = 45.0, 15.0
    extra = max(1, min(3, demo.cores - 1))  # to one worker per core, up to four
    sets = cluster.cpu_sets(1 + extra, demo.cores)
    front = cluster.start_front(
        demo.work, "front-scale-up", demo.node.url, ("--request-timeout", f"{timeout:g}")
    )
    workers = [cluster.start_worker(demo.work, "worker-up-0", demo.node.url, 1, sets[0])]
    added_at = 0.0
    try:
        cluster.wait_consumers(front, 1)
        calibration = demo.load("one worker", front, _pids(front, workers), duration=8)
        rate = max(2.0, 1.6 * calibration.rps)

        async def run() -> list[tuple[float, float, int]]:
            nonlocal added_at
            load = asyncio.create_task(_open_loop(front.url, demo.miss_paths, rate, seconds))
            await asyncio.sleep(add_at)
            started = time.monotonic()
            for i in range(extra):
                workers.append(
                    await asyncio.to_thread(
                        cluster.start_worker,
                        demo.work,
                        f"worker-up-{i + 1}",
                        demo.node.url,
                        1,
                        sets[i + 1],
                    )
                )
            added_at = add_at + (time.monotonic() - started)  # consuming from here on
            return await load

        records = asyncio.run(run())
    finally:
        cluster.stop_workers(workers)
        front.stop()
    log(f"scale-up: {len(records)} requests at {rate:.1f}/s, workers added at {added_at:.1f} s")
    return {
        "one_worker_rps": calibration.rps,
        "rate": rate,
        "timeout": timeout,
        "seconds": seconds,
        "started_with": 1,
        "added": extra,
        "added_at": added_at,
        "records": records,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections")
    parser.add_argument("--reps", type=int, default=2, help="alternated runs per side")
    parser.add_argument("--timeout", type=float, default=3.0, help="scale-up --request-timeout")
    parser.add_argument("--doc", type=Path, help="Markdown file to write the tables into")
    args = parser.parse_args()

    corpus.build()
    data: dict[str, Any] = {"cores": os.cpu_count(), "duration": args.duration}
    data["concurrency"] = args.concurrency
    with tempfile.TemporaryDirectory(prefix="previewer-demo-scale-") as tmp:
        work = Path(tmp)
        node = RabbitNode(work / "rabbitmq", name="previewer-demo")
        log("starting RabbitMQ")
        node.start()
        origin = peers.start_origin(work / "origin", corpus.DEFAULT_OUT)
        try:
            demo = Demo(work, node, origin, args)
            data["scaling"] = scaling(demo)
            data["overhead"] = overhead(demo, args.reps)
            data["fronts"] = fronts(demo, args.reps)
            data["scale_up"] = scale_up(demo, args.timeout)
        finally:
            origin.stop()
            node.stop()
    data["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    text = scale_report.markdown(data)
    print(text)
    if args.doc:
        write_block(args.doc, text, scale_report.MARK_BEGIN, scale_report.MARK_END)
        scale_report.charts(data, args.doc.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
