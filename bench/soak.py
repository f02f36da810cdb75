"""Soak: a mix of requests against a running previewer, watching memory, fds and cache.

    .venv/bin/python bench/soak.py [--duration 600] [--concurrency 16] [--report FILE.md]
        [--broker [--workers 2] [--kill-every 30]] [--hostile [--slowloris 2000] ...]

docs/reliability.md ("Soak", "Soak in broker mode", "Hostile soak") tells what each mode runs
and checks; the tables go between its soak, soak-broker and soak-hostile markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import cluster
import psutil
from procs import Server
from writer import table, write_block

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "testkit"))

from chaos import Chaos, ChaosResult  # noqa: E402  (imports rabbitmq)

import images  # noqa: E402  (the images and the origin shared with the test suite)
from origin import Origin  # noqa: E402
from previewer.errors import PreviewError  # noqa: E402
from rabbitmq import RabbitNode  # noqa: E402

CACHE_BOUND = "8MB"
LOGS = ROOT / "bench" / ".work" / "soak-logs"  # the run's service (and worker) logs, kept
REQUEST_TIMEOUT = 30.0  # the front's --request-timeout (its default)
ANSWER_MARGIN = 15.0  # a request unanswered this long after it is a hang


def _codes(cls: type[PreviewError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


# Every code of the error table; "internal" (a 500) is never acceptable.
DOCUMENTED_CODES = _codes(PreviewError) - {"internal"}


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the start
    rss_mb: float
    fds: int
    cache_bytes: float
    cache_max: float


@dataclass
class Stats:
    """What the mix's clients saw, and the service's figures, filled in as the run goes."""

    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    hit_latencies: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)  # "status code" of each failure
    # (kind, "status code" or "status" or exception name) of every request
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    connect_ms: list[float] = field(default_factory=list)  # each abort's connect
    peak_rss_mb: float = 0.0  # VmHWM at the end
    cpu_s: float = 0.0  # the service's user + system time at the end


@dataclass(frozen=True)
class Run:
    """One run of the mix against one service (a front, in broker mode)."""

    duration: float
    concurrency: int
    stats: Stats
    exit_code: int | None
    errors: tuple[str, ...]  # previewer's own ERROR lines, in every log of the run
    log: Path  # the service's log, kept in LOGS

    def rate(self) -> float:
        return len(self.stats.latencies) / self.duration


def p50(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)] if ordered else 0.0


def mix_of(counts: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


async def start_origin() -> Origin:
    origin = Origin()
    for i in range(6):
        origin.add(f"/photo{i}.jpg", images.jpeg(1200 + 100 * i, 800 + 50 * i))
    origin.add("/alpha.png", images.png_alpha(400, 300), content_type="image/png")
    origin.add("/text.jpg", b"not an image at all", content_type="image/jpeg")
    origin.add("/bomb.png", images.pixel_bomb_png(60000, 60000), content_type="image/png")
    origin.add("/gone.jpg", b"", status=404, content_type="text/plain")
    origin.add("/broken.jpg", b"", status=500, content_type="text/plain")
    await origin.start()
    return origin


def _pick(authority: str, rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.55:  # hits: a small working set
        w, h = rng.choice([(300, 200), (150, 100), (640, 360)])
        return "hit", f"/fill/{w}/{h}/{authority}/photo{rng.randrange(6)}.jpg"
    if roll < 0.75:  # misses: sizes that repeat rarely
        w, h = rng.randrange(50, 900), rng.randrange(50, 900)
        return "miss", f"/fill/{w}/{h}/{authority}/photo{rng.randrange(6)}.jpg"
    if roll < 0.80:
        return "alpha", f"/fill/{rng.randrange(50, 300)}/120/{authority}/alpha.png"
    if roll < 0.88:
        name = rng.choice(["text.jpg", "gone.jpg", "broken.jpg"])
        return "origin-error", f"/fill/100/100/{authority}/{name}"
    if roll < 0.92:
        return "bomb", f"/fill/{rng.randrange(50, 300)}/100/{authority}/bomb.png"
    if roll < 0.96:
        return "bad-request", rng.choice(["/fill/0/1/x", "/fill/a/b/c", "/nope", "/fill/1"])
    return "abort", f"/fill/{rng.randrange(900, 1200)}/700/{authority}/photo0.jpg"


async def _abort(url: str, path: str, stats: Stats) -> str:
    """Send the request and reset the connection at once."""
    host, port = url.removeprefix("http://").split(":")
    started = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(host, int(port))
        stats.connect_ms.append((time.perf_counter() - started) * 1000)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
        await writer.drain()
    except OSError as exc:  # refused or reset before the request went out
        return type(exc).__name__
    writer.transport.abort()
    return "aborted"


def _error_code(body: bytes) -> str:
    """The `error` of a JSON error body, or "(not JSON)"."""
    try:
        return str(json.loads(body).get("error"))
    except (ValueError, AttributeError):
        return "(not JSON)"


async def _client(
    url: str, authority: str, until: float, stats: Stats, seed: int, client: aiohttp.ClientSession
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        kind, path = _pick(authority, rng)
        stats.kinds[kind] += 1
        if kind == "abort":
            outcome = await _abort(url, path, stats)
            stats.statuses[outcome] += 1
            stats.outcomes[kind, outcome] += 1
            continue
        started = time.perf_counter()
        try:
            async with client.get(url + path) as resp:
                body = await resp.read()
                stats.statuses[str(resp.status)] += 1
                outcome = str(resp.status)
                if resp.status >= 400:
                    outcome = f"{resp.status} {_error_code(body)}"
                    stats.codes[outcome] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.statuses[type(exc).__name__] += 1
            outcome = type(exc).__name__
        stats.outcomes[kind, outcome] += 1
        stats.latencies.append((time.perf_counter() - started) * 1000)
        if kind == "hit":
            stats.hit_latencies.append(stats.latencies[-1])


async def _sampler(
    pid: int, url: str, until: float, stats: Stats, client: aiohttp.ClientSession
) -> None:
    """RSS, open fds and the cache's bytes (from /health) every 10 s and at the end."""
    started = time.monotonic()
    cache = {"bytes": 0.0, "max_bytes": 0.0}
    process = psutil.Process(pid)
    while True:
        try:
            async with client.get(url + "/health") as resp:
                cache = json.loads(await resp.read())["cache"]
        except (aiohttp.ClientError, TimeoutError) as exc:  # counted; the last figures kept
            stats.outcomes["health", type(exc).__name__] += 1
        rss = process.memory_info().rss / 2**20
        t = time.monotonic() - started
        stats.samples.append(Sample(t, rss, process.num_fds(), cache["bytes"], cache["max_bytes"]))
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(10.0, max(0.0, until - time.monotonic())))


def _vm_hwm_mb(pid: int) -> float:
    """The peak RSS (VmHWM of /proc/<pid>/status, which psutil lacks)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmHWM")


async def mix(
    server: Server,
    authority: str,
    duration: float,
    concurrency: int,
    *also: Callable[[float], Awaitable[None]],
    trace: Sequence[aiohttp.TraceConfig] = (),
) -> Stats:
    """`concurrency` clients of the mix and the sampler for `duration` s, with `also(until)`."""
    stats = Stats()
    pid = server.roots[0]
    until = time.monotonic() + duration
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency + 4),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + ANSWER_MARGIN),
        trace_configs=list(trace),
    ) as client:
        await asyncio.gather(
            _sampler(pid, server.url, until, stats, client),
            *(
                _client(server.url, authority, until, stats, seed, client)
                for seed in range(concurrency)
            ),
            *(coroutine(until) for coroutine in also),
        )
    stats.peak_rss_mb = _vm_hwm_mb(pid)
    times = psutil.Process(pid).cpu_times()
    stats.cpu_s = times.user + times.system
    return stats


def start_service(work: Path, name: str, broker: str | None, extra: tuple[str, ...] = ()) -> Server:
    return cluster.start_front(work, name, broker, ("--cache-size", CACHE_BOUND, *extra))


def keep_logs(work: Path, names: Sequence[str]) -> tuple[str, ...]:
    """Copy the logs into LOGS; previewer's own ERROR lines in them.

    The AMQP libraries log each refused reconnection attempt at ERROR while the
    broker is down, which is expected: only previewer's loggers count."""
    LOGS.mkdir(parents=True, exist_ok=True)
    errors = []
    for name in names:
        kept = shutil.copyfile(cluster.log(work, name), LOGS / f"{name}.log")
        lines = kept.read_text().splitlines()
        errors += [f"{name}: {line}" for line in lines if " ERROR previewer" in line]
    return tuple(errors)


# --- the plain and the broker soak ------------------------------------------------------


async def soak(args: argparse.Namespace) -> tuple[Run, ChaosResult | None]:
    """The mix against `previewer serve`, or against a front, workers and chaos (--broker)."""
    origin = await start_origin()
    with tempfile.TemporaryDirectory(prefix="previewer-soak-") as tmp:
        work = Path(tmp)
        chaos, result = None, None
        if args.broker:
            node = RabbitNode(work / "rabbitmq", name="previewer-soak")
            await asyncio.to_thread(node.start)
            chaos = Chaos(node, work, renders=2)
            await asyncio.to_thread(chaos.start_all, args.workers)
        broker = chaos.node.url if chaos else None
        server = await asyncio.to_thread(start_service, work, "service", broker)
        try:
            also = [lambda until: chaos.run(until, args.kill_every)] if chaos else []
            stats = await mix(server, origin.authority, args.duration, args.concurrency, *also)
        finally:
            await asyncio.to_thread(server.stop)
            if chaos is not None:
                result = await asyncio.to_thread(chaos.stop)
                await asyncio.to_thread(chaos.node.stop)
            await origin.stop()
        names = ["service", *(f"worker-{slot}" for slot in range(len(chaos.procs) if chaos else 0))]
        errors = keep_logs(work, names)
    code = server.procs[0].returncode
    return Run(args.duration, args.concurrency, stats, code, errors, LOGS / "service.log"), result


def each_minute(samples: list[Sample]) -> str:
    """The RSS samples nearest each whole minute of the run, and the last one."""
    marks, minute = [], 0.0
    for sample in samples:
        if sample.t >= minute:
            marks.append(sample)
            minute = (sample.t // 60 + 1) * 60
    if marks[-1] is not samples[-1]:
        marks.append(samples[-1])
    return ", ".join(f"{s.rss_mb:.0f}" for s in marks)


def start_middle_end(samples: list[Sample], key: str) -> tuple[float, float, float]:
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    return getattr(first, key), getattr(middle, key), getattr(last, key)


def heading(lead: str, command: str) -> str:
    """The line above a table: `lead`, the time and the command."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"{lead}, {when}, `python bench/soak.py {command}`."


def undocumented(stats: Stats) -> list[str]:
    return [k for k in stats.codes if k.split(" ", 1)[1] not in DOCUMENTED_CODES]


def unanswered(stats: Stats) -> int:
    """Requests that got no HTTP answer (client timeouts and dropped connections)."""
    return sum(v for k, v in stats.statuses.items() if not k.isdigit() and k != "aborted")


def report(run: Run, chaos: ChaosResult | None, workers: int) -> str:
    stats, duration = run.stats, run.duration
    total = sum(stats.statuses.values())
    first, middle, last = start_middle_end(stats.samples, "rss_mb")
    fds = start_middle_end(stats.samples, "fds")
    peak_cache = max(s.cache_bytes for s in stats.samples)
    rows = [
        ("requests served", f"{total} ({total / duration:.0f}/s)"),
        ("request mix", mix_of(stats.kinds)),
        ("status mix", mix_of(stats.statuses)),
        ("latency p50 / p99", f"{p50(stats.latencies):.1f} ms / {p99(stats.latencies):.1f} ms"),
        (
            "RSS start / middle / end",
            f"{first:.0f} / {middle:.0f} / {last:.0f} MB "
            f"(end vs middle {(last - middle) / middle * 100:+.1f}%)",
        ),
        ("RSS each minute", f"{each_minute(stats.samples)} MB"),
        ("peak RSS (VmHWM)", f"{stats.peak_rss_mb:.0f} MB"),
        ("open fds start / middle / end", " / ".join(f"{n:.0f}" for n in fds)),
        ("cache bytes, peak / bound", f"{peak_cache:.0f} / {stats.samples[-1].cache_max:.0f}"),
        ("500 answers", f"{stats.statuses.get('500', 0)} (502s answer the origin-error requests)"),
    ]
    command = f"--duration {duration:.0f}"
    if chaos is not None:
        command += f" --broker --workers {workers}"
        rows += [
            ("failures by status and code", mix_of(stats.codes)),
            ("undocumented codes", str(len(undocumented(stats)))),
            (
                f"unanswered (no answer within {REQUEST_TIMEOUT + ANSWER_MARGIN:.0f} s)",
                str(unanswered(stats)),
            ),
            ("workers killed with SIGKILL and restarted", str(chaos.kills)),
            ("broker restart (stop + start)", f"{chaos.broker_down_s:.1f} s"),
        ]
    lead = f"Run of {duration:.0f} s at concurrency {run.concurrency}"
    return heading(lead, command) + "\n\n" + table(("measure", "value"), rows)


def print_exits(name: str, run: Run, also: str = "") -> None:
    print(f"{name}exit code {run.exit_code}{also}")
    print(f"{name}error lines in the logs: {len(run.errors)}")
    for line in run.errors[:20]:
        print("  " + line)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--broker", action="store_true", help="a front, workers and RabbitMQ")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (--broker)")
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds (--broker)")
    parser.add_argument("--hostile", action="store_true", help="alone, then under attack")
    parser.add_argument("--slowloris", type=int, default=2000, help="connections (--hostile)")
    parser.add_argument("--non-readers", type=int, default=300, help="clients (--hostile)")
    parser.add_argument("--flood", type=int, default=3000, help="idle connections a wave")
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="--serve-arg=--flag=value (--hostile)"
    )
    args = parser.parse_args()
    if args.hostile:
        import hostile  # imports this module: not at the top

        return await hostile.main(args)
    run, chaos = await soak(args)
    text = report(run, chaos, args.workers)
    print(text)
    for at, event in chaos.events if chaos else ():
        print(f"  {at:6.1f} s  {event}")
    codes = list(chaos.worker_codes) if chaos else []
    print_exits("service ", run, f"; worker exit codes: {codes}")
    if args.report:
        mark = "soak-broker" if chaos else "soak"
        write_block(args.report, text, f"<!-- {mark}:begin -->", f"<!-- {mark}:end -->")
    failed = run.exit_code != 0 or run.stats.statuses["500"] > 0 or bool(run.errors)
    if chaos is not None:
        failed = failed or bool(undocumented(run.stats)) or unanswered(run.stats) > 0
        failed = failed or any(chaos.worker_codes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
