"""Soak: mixed load against a running previewer, watching memory, fds and cache.

    .venv/bin/python bench/soak.py [--duration 600] [--concurrency 16]
                                   [--report docs/reliability.md]

Starts an origin on 127.0.0.1 (testkit's programmable origin, serving
testkit's seeded images), starts `previewer serve` as a child process, and runs a
mix of cache hits, misses, origin errors, bad requests, image bombs and
client aborts for the given duration. Every 10 s it samples the service's
RSS, open file descriptors and cache bytes. At the end it prints a report
and, with --report, writes it into that Markdown file between markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
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

import images  # noqa: E402  (the images and the origin shared with the test suite)
from origin import Origin  # noqa: E402

MARK_BEGIN = "<!-- soak:begin -->"
MARK_END = "<!-- soak:end -->"
CACHE_BOUND = "8MB"


@dataclass
class Stats:
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)


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


def _start_service(cache_dir: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `previewer serve`; its log goes to `log_path`."""
    command = [sys.executable, "-m", "previewer", "serve", "--port", "0"]
    command += ["--cache-dir", cache_dir, "--cache-size", CACHE_BOUND, "--allow-private-networks"]
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


async def _abort(url: str, path: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
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
            await _abort(url, path)
            stats.statuses["aborted"] += 1
            continue
        started = time.perf_counter()
        try:
            async with client.get(url + path) as resp:
                await resp.read()
                stats.statuses[str(resp.status)] += 1
        except aiohttp.ClientError as exc:
            stats.statuses[type(exc).__name__] += 1
        stats.latencies.append((time.perf_counter() - started) * 1000)


async def _sampler(
    pid: int, url: str, until: float, stats: Stats, client: aiohttp.ClientSession
) -> None:
    started = time.monotonic()
    while True:
        async with client.get(url + "/health") as resp:
            health = json.loads(await resp.read())
        stats.samples.append(
            {
                "t": time.monotonic() - started,
                "rss_mb": psutil.Process(pid).memory_info().rss / 2**20,
                "fds": _fds(pid),
                "cache_bytes": health["cache"]["bytes"],
                "cache_max": health["cache"]["max_bytes"],
            }
        )
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(10.0, max(0.0, until - time.monotonic())))


def _report(stats: Stats, duration: float, concurrency: int, pid: int) -> str:
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
    return "\n".join(
        [
            f"Run of {duration:.0f} s at concurrency {concurrency}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"`{Path(sys.executable).name} bench/soak.py --duration {duration:.0f}`.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| requests served | {total} ({total / duration:.0f}/s) |",
            f"| request mix | {kind_mix} |",
            f"| status mix | {status_mix} |",
            f"| latency p50 / p99 | {p50:.1f} ms / {p99:.1f} ms |",
            f"| RSS start / middle / end | {first['rss_mb']:.0f} / {middle['rss_mb']:.0f} / "
            f"{last['rss_mb']:.0f} MB (end vs middle {growth:+.1f}%) |",
            f"| peak RSS (VmHWM) | {_proc_status(pid, 'VmHWM') / 1024:.0f} MB |",
            f"| open fds start / end | {first['fds']:.0f} / {last['fds']:.0f} |",
            f"| cache bytes, peak / bound | {peak_cache:.0f} / {last['cache_max']:.0f} |",
            f"| 500 answers | {stats.statuses.get('500', 0)} "
            "(502s answer the origin-error requests) |",
        ]
    )


def _write_report(path: Path, text: str) -> None:
    doc = path.read_text() if path.exists() else f"{MARK_BEGIN}\n{MARK_END}\n"
    before, _, rest = doc.partition(MARK_BEGIN)
    _, _, after = rest.partition(MARK_END)
    path.write_text(f"{before}{MARK_BEGIN}\n{text}\n{MARK_END}{after}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()

    origin = await _start_origin()
    with tempfile.TemporaryDirectory(prefix="previewer-soak-") as cache_dir:
        log_path = Path(cache_dir) / "service.log"
        proc, url = await asyncio.to_thread(_start_service, cache_dir + "/cache", log_path)
        stats = Stats()
        try:
            until = time.monotonic() + args.duration
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=args.concurrency + 4)
            ) as client:
                await asyncio.gather(
                    _sampler(proc.pid, url, until, stats, client),
                    *(
                        _worker(url, origin.authority, until, stats, seed, client)
                        for seed in range(args.concurrency)
                    ),
                )
            report = _report(stats, args.duration, args.concurrency, proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            await origin.stop()
            errors = [line for line in log_path.read_text().splitlines() if " ERROR " in line]
    print(report)
    print(f"service exit code: {code}; error lines in its log: {len(errors)}")
    for line in errors[:20]:
        print("  " + line)
    if args.report:
        _write_report(args.report, report)
    return 1 if code != 0 or stats.statuses["500"] or errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
