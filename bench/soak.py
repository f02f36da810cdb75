"""Soak: mixed load against a running previewer, watching memory, fds and cache.

    .venv/bin/python bench/soak.py [--duration 600] [--concurrency 16]
                                   [--report docs/reliability.md]
    .venv/bin/python bench/soak.py --broker [--workers 2] [--kill-every 30] ...
    .venv/bin/python bench/soak.py --hostile [--slowloris 2000] [--non-readers 300] ...

Starts an origin on 127.0.0.1 (testkit's programmable origin, serving
testkit's seeded images), starts `previewer serve` as a child process, and runs a
mix of cache hits, misses, origin errors, bad requests, image bombs and
client aborts for the given duration. Every 10 s it samples the service's
RSS, open file descriptors and cache bytes. At the end it prints a report
and, with --report, writes it into that Markdown file between markers.

With --broker it starts a private RabbitMQ node (testkit/rabbitmq.py), the front
as `previewer serve --broker` and `--workers` worker processes, then adds
chaos: every `--kill-every` seconds one worker (in turn) is killed with
SIGKILL and started again, and once, in the middle of the run, the broker is
restarted. Every failure must carry one of the documented error codes, every
request must be answered (the client waits the front's request timeout plus
a margin), and no answer may be a 500. Its table goes between the
`soak-broker` markers.

With --hostile it runs the mix twice, alone and then while bench/attackers.py
attacks the service with slow, silent and non-reading connections, and
compares the two (bench/hostile.py). Its table goes between the
`soak-hostile` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "testkit"))

from chaos import Chaos  # noqa: E402
from writer import write_block  # noqa: E402

import images  # noqa: E402  (the images and the origin shared with the test suite)
from origin import Origin  # noqa: E402
from previewer.errors import PreviewError  # noqa: E402
from rabbitmq import RabbitNode  # noqa: E402

MARK_BEGIN = "<!-- soak:begin -->"
MARK_END = "<!-- soak:end -->"
BROKER_MARK_BEGIN = "<!-- soak-broker:begin -->"
BROKER_MARK_END = "<!-- soak-broker:end -->"
CACHE_BOUND = "8MB"
LOGS = ROOT / "bench" / ".work" / "soak-logs"  # the run's service (and worker) logs, kept
REQUEST_TIMEOUT = 30.0  # the front's --request-timeout (its default)
ANSWER_MARGIN = 15.0  # a request unanswered this long after it is a hang


def _codes(cls: type[PreviewError]) -> set[str]:
    found = {cls.code}
    for sub in cls.__subclasses__():
        found |= _codes(sub)
    return found


# Every code of the error table; "internal" (a 500) is never acceptable.
DOCUMENTED_CODES = _codes(PreviewError) - {"internal"}


@dataclass
class Stats:
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)  # "status code" of each failure
    # (kind, "status code" or "status" or exception name) of every request
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    hit_latencies: list[float] = field(default_factory=list)
    connect_ms: list[float] = field(default_factory=list)  # each abort's connect


def _proc_status(pid: int, key: str) -> int:
    """A kB figure of /proc/<pid>/status (VmHWM, the peak RSS, which psutil lacks)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
    raise KeyError(key)


def _fds(pid: int) -> int:
    return psutil.Process(pid).num_fds()


async def _start_origin() -> Origin:
    origin = Origin()
    photos = {f"/photo{i}.jpg": images.jpeg(1200 + 100 * i, 800 + 50 * i) for i in range(6)}
    for path, body in photos.items():
        origin.add(path, body)
    origin.add("/alpha.png", images.png_alpha(400, 300), content_type="image/png")
    origin.add("/text.jpg", b"not an image at all", content_type="image/jpeg")
    origin.add("/bomb.png", images.pixel_bomb_png(60000, 60000), content_type="image/png")
    origin.add("/gone.jpg", b"", status=404, content_type="text/plain")
    origin.add("/broken.jpg", b"", status=500, content_type="text/plain")
    await origin.start()
    return origin


def _start_service(
    cache_dir: str, log_path: Path, broker: str | None = None, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `previewer serve` (a front with `broker`); its log goes to `log_path`.

    `extra` adds flags."""
    command = [sys.executable, "-m", "previewer", "serve", "--port", "0"]
    command += ["--cache-dir", cache_dir, "--cache-size", CACHE_BOUND, "--allow-private-networks"]
    if broker:
        command += ["--broker", broker]
    command += extra
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        match = re.search(r"listening on (http://\S+)", log_path.read_text())
        if match:
            return proc, match.group(1)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("previewer did not start:\n" + log_path.read_text())


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


async def _abort(url: str, path: str, stats: Stats) -> None:
    host, port = url.removeprefix("http://").split(":")
    started = time.perf_counter()
    _, writer = await asyncio.open_connection(host, int(port))
    stats.connect_ms.append((time.perf_counter() - started) * 1000)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
    await writer.drain()
    writer.transport.abort()


async def _worker(
    url: str, authority: str, until: float, stats: Stats, seed: int, client: aiohttp.ClientSession
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        kind, path = _pick(authority, rng)
        stats.kinds[kind] += 1
        if kind == "abort":
            try:
                await _abort(url, path, stats)
            except OSError as exc:  # refused or reset before the request went out
                stats.statuses[type(exc).__name__] += 1
                stats.outcomes[kind, type(exc).__name__] += 1
                continue
            stats.statuses["aborted"] += 1
            stats.outcomes[kind, "aborted"] += 1
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


def _error_code(body: bytes) -> str:
    """The `error` of a JSON error body, or "(not JSON)"."""
    try:
        code = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return "(not JSON)"
    return str(code)


async def _sampler(
    pid: int, url: str, until: float, stats: Stats, client: aiohttp.ClientSession
) -> None:
    started = time.monotonic()
    cache = {"bytes": 0.0, "max_bytes": 0.0}
    while True:
        try:
            async with client.get(url + "/health") as resp:
                cache = json.loads(await resp.read())["cache"]
        except (aiohttp.ClientError, TimeoutError) as exc:  # counted; the last figures kept
            stats.outcomes["health", type(exc).__name__] += 1
        stats.samples.append(
            {
                "t": time.monotonic() - started,
                "rss_mb": psutil.Process(pid).memory_info().rss / 2**20,
                "fds": _fds(pid),
                "cache_bytes": cache["bytes"],
                "cache_max": cache["max_bytes"],
            }
        )
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(10.0, max(0.0, until - time.monotonic())))


def _each_minute(samples: list[dict[str, float]]) -> str:
    """The RSS samples nearest each whole minute of the run, and the last one."""
    marks, minute = [], 0.0
    for sample in samples:
        if sample["t"] >= minute:
            marks.append(sample)
            minute = (sample["t"] // 60 + 1) * 60
    if marks[-1] is not samples[-1]:
        marks.append(samples[-1])
    return ", ".join(f"{s['rss_mb']:.0f}" for s in marks)


def _report(
    stats: Stats, duration: float, concurrency: int, pid: int, chaos: Chaos | None = None
) -> str:
    total = sum(stats.statuses.values())
    lat = sorted(stats.latencies)
    p50 = statistics.median(lat)
    p99 = lat[int(len(lat) * 0.99) - 1]
    first, last = stats.samples[0], stats.samples[-1]
    middle = stats.samples[len(stats.samples) // 2]
    peak_cache = max(s["cache_bytes"] for s in stats.samples)
    growth = (last["rss_mb"] - middle["rss_mb"]) / middle["rss_mb"] * 100
    status_mix = ", ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))
    kind_mix = ", ".join(f"{k}: {v}" for k, v in sorted(stats.kinds.items()))
    command = f"bench/soak.py --duration {duration:.0f}"
    if chaos is not None:
        command += f" --broker --workers {len(chaos.procs)}"
    lines = [
        f"Run of {duration:.0f} s at concurrency {concurrency}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"`{Path(sys.executable).name} {command}`.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| requests served | {total} ({total / duration:.0f}/s) |",
        f"| request mix | {kind_mix} |",
        f"| status mix | {status_mix} |",
        f"| latency p50 / p99 | {p50:.1f} ms / {p99:.1f} ms |",
        f"| RSS start / middle / end | {first['rss_mb']:.0f} / {middle['rss_mb']:.0f} / "
        f"{last['rss_mb']:.0f} MB (end vs middle {growth:+.1f}%) |",
        f"| RSS each minute | {_each_minute(stats.samples)} MB |",
        f"| peak RSS (VmHWM) | {_proc_status(pid, 'VmHWM') / 1024:.0f} MB |",
        f"| open fds start / middle / end | {first['fds']:.0f} / {middle['fds']:.0f} / "
        f"{last['fds']:.0f} |",
        f"| cache bytes, peak / bound | {peak_cache:.0f} / {last['cache_max']:.0f} |",
        f"| 500 answers | {stats.statuses.get('500', 0)} (502s answer the origin-error requests) |",
    ]
    if chaos is not None:
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(stats.codes.items()))
        lines += [
            f"| failures by status and code | {failures} |",
            f"| undocumented codes | {len(_undocumented(stats))} |",
            f"| unanswered (no answer within {REQUEST_TIMEOUT + ANSWER_MARGIN:.0f} s) | "
            f"{_unanswered(stats)} |",
            f"| workers killed with SIGKILL and restarted | {chaos.kills} |",
            f"| broker restart (stop + start) | {chaos.broker_down_s:.1f} s |",
        ]
    return "\n".join(lines)


def _undocumented(stats: Stats) -> list[str]:
    return [k for k in stats.codes if k.split(" ", 1)[1] not in DOCUMENTED_CODES]


def _unanswered(stats: Stats) -> int:
    """Requests that got no HTTP answer (client timeouts and dropped connections)."""
    return sum(v for k, v in stats.statuses.items() if not k.isdigit() and k != "aborted")


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
        "--serve-arg",
        action="append",
        default=[],
        help="a flag for the service: --serve-arg=--flag=value",
    )
    args = parser.parse_args()
    if args.hostile:
        from hostile import hostile_soak  # imports this module: not at the top

        return await hostile_soak(args)

    origin = await _start_origin()
    with tempfile.TemporaryDirectory(prefix="previewer-soak-") as cache_dir:
        folder = Path(cache_dir)
        log_path = folder / "service.log"
        chaos: Chaos | None = None
        if args.broker:
            node = RabbitNode(folder / "rabbitmq", name="previewer-soak")
            await asyncio.to_thread(node.start)
            chaos = Chaos(node, folder, workers=2)
            await asyncio.to_thread(chaos.start_all, args.workers)
        broker = chaos.node.url if chaos else None
        proc, url = await asyncio.to_thread(_start_service, cache_dir + "/cache", log_path, broker)
        stats = Stats()
        worker_codes: list[int | None] = []
        try:
            until = time.monotonic() + args.duration
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + ANSWER_MARGIN)
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=args.concurrency + 4), timeout=timeout
            ) as client:
                await asyncio.gather(
                    _sampler(proc.pid, url, until, stats, client),
                    *(
                        _worker(url, origin.authority, until, stats, seed, client)
                        for seed in range(args.concurrency)
                    ),
                    *([chaos.run(until, args.kill_every)] if chaos else []),
                )
            report = _report(stats, args.duration, args.concurrency, proc.pid, chaos)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            if chaos is not None:
                worker_codes = await asyncio.to_thread(chaos.stop)
                await asyncio.to_thread(chaos.node.stop)
            await origin.stop()
            logs = [log_path, *(chaos.log(i) for i in range(args.workers))] if chaos else [log_path]
            LOGS.mkdir(parents=True, exist_ok=True)
            for log in logs:
                shutil.copyfile(log, LOGS / log.name)
            # previewer's own errors; the AMQP libraries log each refused reconnection
            # attempt at ERROR while the broker is down, which is expected here
            errors = [
                f"{log.name}: {line}"
                for log in logs
                for line in log.read_text().splitlines()
                if " ERROR previewer" in line
            ]
    print(report)
    for at, event in chaos.events if chaos else []:
        print(f"  {at:6.1f} s  {event}")
    print(f"service exit code: {code}; worker exit codes: {worker_codes}")
    print(f"error lines in the logs: {len(errors)}")
    for line in errors[:20]:
        print("  " + line)
    if args.report:
        marks = (BROKER_MARK_BEGIN, BROKER_MARK_END) if chaos else (MARK_BEGIN, MARK_END)
        write_block(args.report, report, *marks)
    failed = code != 0 or stats.statuses["500"] > 0 or bool(errors)
    if chaos is not None:
        failed = failed or bool(_undocumented(stats)) or _unanswered(stats) > 0
        failed = failed or any(worker_codes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
