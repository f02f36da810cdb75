"""The hostile soak: the soak's mixed load alone, then under attack, side by side.

    .venv/bin/python bench/soak.py --hostile [--duration 600] [--concurrency 16]
                                   [--report docs/reliability.md]

Two runs of `--duration` seconds each, against a fresh `previewer serve` with
its defaults (plus `--metrics-address`, scraped every 10 s and at the end,
and `--cache-size 32MB`). The baseline runs the soak's mix (bench/soak.py) and
nothing else. The second runs the same mix while bench/attackers.py, in a
process of its own, attacks the same service: 2,000 slowloris connections,
300 clients of a 4000x3000 preview (about 4 MB) that never read, and every
30 s a wave of 3,000 silent connections, well past the connection cap.

The report puts the two side by side: the normal clients' rate, latency and
failures, the service's RSS and open fds, the connection metrics, and what
the attackers saw. It checks the targets (normal clients keep at least 90%
of the baseline's rate, p99 within 2x of the baseline's, no failure but 503
`overloaded`, no 500, RSS bounded) and prints PASS or FAIL for each; the
exit status is non-zero if any fails, the service does not exit cleanly, or
its log has an error line. With --report the table goes between the
`soak-hostile` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import psutil
from procs import OtherCpu, free_port
from soak import (
    ANSWER_MARGIN,
    LOGS,
    REQUEST_TIMEOUT,
    Stats,
    _each_minute,
    _proc_status,
    _sampler,
    _start_origin,
    _start_service,
    _worker,
)
from writer import write_block

import images  # the images shared with the test suite (testkit, on the path via soak)

HERE = Path(__file__).resolve().parent
MARK_BEGIN = "<!-- soak-hostile:begin -->"
MARK_END = "<!-- soak-hostile:end -->"
CACHE_SIZE = "32MB"  # room for the attackers' 4 MB preview beside the mix's working set
BIG_PATH = "/fill/4000/3000/{authority}/big.jpg"
REASONS = ("header_timeout", "idle_timeout", "send_timeout", "evicted")
CLOSED = 'previewer_connections_closed_total{{reason="{}"}}'
REFUSED = "previewer_connections_refused_total"
DESCRIPTORS = 'previewer_overloaded_total{reason="descriptors"}'
GROWTH_MB, GROWTH_SHARE = 20.0, 0.10  # RSS bound after minute 2: whichever is larger
RATE_TARGET, P99_TARGET = 0.90, 2.0

# What each kind of request in the mix is answered by design; anything else is a failure.
EXPECTED = {
    "hit": {"200"},
    "miss": {"200"},
    "alpha": {"200"},
    "origin-error": {"422 source_not_image", "404 source_status", "502 source_status"},
    "bomb": {"422 source_too_large"},
    "bad-request": {"400 bad_request", "404 not_found"},
    "abort": {"aborted"},
    "health": set(),  # the sampler's /health; only its failures are recorded
}
ALLOWED = {"503 overloaded"}


@dataclass
class Run:
    """One run's figures: the mix's stats and what the service and the attackers showed."""

    name: str
    stats: Stats
    duration: float
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    open_peak: float = 0.0
    attackers: dict[str, Any] | None = None
    exit_code: int | None = None
    errors: list[str] = field(default_factory=list)
    other_cpu_pct: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    cap_line: str = ""
    cut_log_lines: int = 0  # the service's summaries of cut connections
    # the machine's TCP sockets (/proc/net/sockstat): orphans and their memory, peaks
    orphans_peak: int = 0
    tcp_mem_peak_mb: float = 0.0
    listen_overflows: int = 0  # the machine's, during the run (TcpExt ListenOverflows)
    pool_connect_ms: list[float] = field(default_factory=list)  # the clients' pool's connects

    def failures(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for (kind, outcome), count in self.stats.outcomes.items():
            if outcome not in EXPECTED[kind]:
                found[f"{outcome} ({kind})"] = count
        return found

    def rate(self) -> float:
        return len(self.stats.latencies) / self.duration

    def p99(self, latencies: list[float] | None = None) -> float:
        lat = sorted(self.stats.latencies if latencies is None else latencies)
        return lat[max(0, int(len(lat) * 0.99) - 1)] if lat else 0.0

    def p50(self, latencies: list[float] | None = None) -> float:
        lat = sorted(self.stats.latencies if latencies is None else latencies)
        return lat[len(lat) // 2] if lat else 0.0

    def rss_growth(self) -> tuple[float, float, float]:
        """(RSS at minute 2, RSS at the end, the growth allowed), in MB.

        Minute 2, or half-way through a run shorter than four minutes."""
        mark = min(120.0, self.duration / 2)
        at = min(self.stats.samples, key=lambda s: abs(s["t"] - mark))["rss_mb"]
        end = self.stats.samples[-1]["rss_mb"]
        return at, end, max(GROWTH_MB, GROWTH_SHARE * at)


def scrape(url: str) -> dict[str, float]:
    """The samples of a Prometheus text page, keyed `name{labels}`."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    found = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def _sockstat() -> tuple[int, float]:
    """The machine's orphaned TCP sockets, and the memory of all its TCP sockets (MB)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()[1:]
            found = dict(zip(fields[::2], fields[1::2], strict=True))
            return int(found["orphan"]), int(found["mem"]) * os.sysconf("SC_PAGESIZE") / 2**20
    return 0, 0.0


def _listen_overflows() -> int:
    """The machine's count of connections dropped because a listen queue was full."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names[0] == "TcpExt:":
            return int(values[names.index("ListenOverflows")])
    return 0


async def _metrics_sampler(url: str, until: float, run: Run) -> None:
    """The service's open connections (its metric) and the kernel's TCP memory, every 10 s."""
    while True:
        try:
            found = await asyncio.to_thread(scrape, url)
            run.open_peak = max(run.open_peak, found.get("previewer_connections_open", 0.0))
        except OSError:
            pass  # the metrics port under the same attack is not the point here
        orphans, mem = _sockstat()
        run.orphans_peak = max(run.orphans_peak, orphans)
        run.tcp_mem_peak_mb = max(run.tcp_mem_peak_mb, mem)
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(10.0, max(0.0, until - time.monotonic())))


def _connect_trace(connects: list[float]) -> aiohttp.TraceConfig:
    """Times each new connection of a client session into `connects` (ms)."""
    trace = aiohttp.TraceConfig()

    async def start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceConnectionCreateStartParams,
    ) -> None:
        context.connect_started = time.perf_counter()

    async def end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceConnectionCreateEndParams,
    ) -> None:
        connects.append((time.perf_counter() - context.connect_started) * 1000)

    trace.on_connection_create_start.append(start)
    trace.on_connection_create_end.append(end)
    return trace


def _start_attackers(url: str, big_path: str, args: argparse.Namespace) -> subprocess.Popen[str]:
    command = [sys.executable, str(HERE / "attackers.py"), "--url", url, "--big-path", big_path]
    command += ["--duration", f"{args.duration:g}", "--slowloris", str(args.slowloris)]
    command += ["--non-readers", str(args.non_readers), "--flood", str(args.flood)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


async def one_run(name: str, args: argparse.Namespace, attack: bool) -> Run:
    """Start an origin and a service, run the mix (and the attackers) for the duration."""
    origin = await _start_origin()
    big = images.photo(4000, 3000, sigma=45).jpegsave_buffer(Q=90)
    origin.add("/big.jpg", big)
    run = Run(name, Stats(), args.duration)
    with tempfile.TemporaryDirectory(prefix="previewer-hostile-") as folder:
        log_path = Path(folder) / f"service-{name}.log"
        metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        extra = ("--metrics-address", metrics_url[7:-8], "--cache-size", CACHE_SIZE)
        proc, url = await asyncio.to_thread(
            _start_service, folder + "/cache", log_path, None, extra + tuple(args.serve_arg)
        )
        attackers = None
        try:
            until = time.monotonic() + args.duration
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + ANSWER_MARGIN)
            run.load = (os.getloadavg()[0], 0.0)
            overflows = _listen_overflows()
            with OtherCpu([proc.pid]) as other:
                if attack:
                    attackers = _start_attackers(
                        url, BIG_PATH.format(authority=origin.authority), args
                    )
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=args.concurrency + 4),
                    timeout=timeout,
                    trace_configs=[_connect_trace(run.pool_connect_ms)],
                ) as client:
                    await asyncio.gather(
                        _sampler(proc.pid, url, until, run.stats, client),
                        _metrics_sampler(metrics_url, until, run),
                        *(
                            _worker(url, origin.authority, until, run.stats, seed, client)
                            for seed in range(args.concurrency)
                        ),
                    )
                if attackers is not None:
                    out, _ = await asyncio.to_thread(attackers.communicate, timeout=60)
                    run.attackers = json.loads(out.strip().splitlines()[-1])
            run.other_cpu_pct = other.percent
            run.load = (run.load[0], os.getloadavg()[0])
            run.listen_overflows = _listen_overflows() - overflows
            run.metrics = await asyncio.to_thread(scrape, metrics_url)
            run.peak_rss_mb = _proc_status(proc.pid, "VmHWM") / 1024
            times = psutil.Process(proc.pid).cpu_times()
            run.cpu_s = times.user + times.system
        finally:
            if attackers is not None and attackers.poll() is None:
                attackers.kill()
            proc.send_signal(signal.SIGTERM)
            run.exit_code = await asyncio.to_thread(proc.wait, 30)
            await origin.stop()
            LOGS.mkdir(parents=True, exist_ok=True)
            text = log_path.read_text()
            (LOGS / log_path.name).write_text(text)
            run.errors = [line for line in text.splitlines() if " ERROR previewer" in line]
            run.cut_log_lines = text.count("connections cut in the last")
            run.cap_line = next(
                (line for line in text.splitlines() if "client connections" in line), ""
            )
    return run


# --- the report -----------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def _rss(run: Run) -> str:
    samples = run.stats.samples
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    peak = max(s["rss_mb"] for s in samples)
    return (
        f"{first['rss_mb']:.0f} / {middle['rss_mb']:.0f} / {last['rss_mb']:.0f} MB "
        f"(sampled peak {peak:.0f}, VmHWM {run.peak_rss_mb:.0f})"
    )


def _fds(run: Run) -> str:
    samples = run.stats.samples
    peak = max(s["fds"] for s in samples)
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    return f"{first['fds']:.0f} / {middle['fds']:.0f} / {last['fds']:.0f} (peak {peak:.0f})"


def _closed(run: Run) -> str:
    return " / ".join(f"{run.metrics.get(CLOSED.format(r), 0):.0f}" for r in REASONS)


def _attacker(found: dict[str, Any] | None, kind: str) -> str:
    if found is None:
        return "-"
    t = found[kind]
    text = f"{t['opened']} opened, {t['cut']} cut by the service"
    if t["held_median_s"] is not None:
        text += f" (held {t['held_median_s']:.0f} s median, {t['held_max_s']:.0f} s max)"
    if t.get("gave_up"):
        text += f", {t['gave_up']} given up with no sign of a cut"
    if t["refused_503"]:
        text += f", {t['refused_503']} answered 503"
    if t["connect_errors"]:
        text += ", connects failed: " + ", ".join(
            f"{k} {v}" for k, v in t["connect_errors"].items()
        )
    return text + f", {t['still_open']} still open at the end; at most {t['open_max']} at once"


def _hits(run: Run) -> str:
    hits = run.stats.hit_latencies
    return f"{run.p50(hits):.1f} / {run.p99(hits):.1f} ms"


def _connects(run: Run, connects: list[float]) -> str:
    lat = sorted(connects)
    if not lat:
        return "none"
    return (
        f"{len(lat)}: {run.p50(lat):.1f} / {run.p99(lat):.1f} / {lat[-1]:.0f} ms "
        f"({sum(lat) / 1000:.0f} s in all)"
    )


def _cpu_per_request(run: Run) -> float:
    return run.cpu_s * 1000 / max(1, len(run.stats.latencies))


def _attack_share(base: Run, hostile: Run) -> str:
    """The service's CPU under attack beyond its baseline cost of the normal requests served."""
    extra = hostile.cpu_s - _cpu_per_request(base) / 1000 * len(hostile.stats.latencies)
    return f"{extra / hostile.duration * 100:.0f}% of a core"


def _failures(run: Run) -> str:
    found = run.failures()
    return ", ".join(f"{k}: {v}" for k, v in sorted(found.items())) or "none"


def verdicts(base: Run, hostile: Run) -> dict[str, bool]:
    at, end, allowed = hostile.rss_growth()
    return {
        "rate": hostile.rate() >= RATE_TARGET * base.rate(),
        "p99": hostile.p99() <= P99_TARGET * base.p99(),
        "failures": set(hostile.failures()) <= {f"{a} ({k})" for a in ALLOWED for k in EXPECTED},
        "500": hostile.stats.statuses.get("500", 0) == 0 and base.stats.statuses.get("500", 0) == 0,
        "rss": end - at <= allowed,
    }


def report(base: Run, hostile: Run, concurrency: int, serve_args: list[str]) -> str:
    ok = verdicts(base, hostile)
    b_at, b_end, _ = base.rss_growth()
    at, end, allowed = hostile.rss_growth()
    share = hostile.rate() / base.rate() * 100
    found = hostile.attackers
    rows = [
        (
            "normal requests",
            f"{len(base.stats.latencies)} ({base.rate():.0f}/s)",
            f"{len(hostile.stats.latencies)} ({hostile.rate():.0f}/s, {share:.0f}%)",
            f"≥ {RATE_TARGET:.0%} of the baseline",
            _verdict(ok["rate"]),
        ),
        (
            "latency p50 / p99",
            f"{base.p50():.1f} / {base.p99():.1f} ms",
            f"{hostile.p50():.1f} / {hostile.p99():.1f} ms ({hostile.p99() / base.p99():.2f}x)",
            f"p99 ≤ {P99_TARGET:g}x the baseline's",
            _verdict(ok["p99"]),
        ),
        (
            "hits' latency p50 / p99",
            _hits(base),
            _hits(hostile),
            "",
            "",
        ),
        (
            "failures (answers its kind of request does not get), by code",
            _failures(base),
            _failures(hostile),
            "none but 503 `overloaded`",
            _verdict(ok["failures"]),
        ),
        (
            "500 answers",
            str(base.stats.statuses.get("500", 0)),
            str(hostile.stats.statuses.get("500", 0)),
            "0",
            _verdict(ok["500"]),
        ),
        ("RSS start / middle / end", _rss(base), _rss(hostile), "", ""),
        (
            "RSS each minute",
            f"{_each_minute(base.stats.samples)} MB",
            f"{_each_minute(hostile.stats.samples)} MB",
            "",
            "",
        ),
        (
            "RSS at the end against minute 2",
            f"{b_end - b_at:+.0f} MB ({b_at:.0f} to {b_end:.0f})",
            f"{end - at:+.0f} MB ({at:.0f} to {end:.0f})",
            f"≤ +{allowed:.0f} MB (the larger of {GROWTH_MB:.0f} MB and {GROWTH_SHARE:.0%})",
            _verdict(ok["rss"]),
        ),
        ("open fds start / middle / end", _fds(base), _fds(hostile), "", ""),
        (
            "connections open, peak (`previewer_connections_open`)",
            f"{base.open_peak:.0f}",
            f"{hostile.open_peak:.0f}",
            "",
            "",
        ),
        ("connections closed: " + " / ".join(REASONS), _closed(base), _closed(hostile), "", ""),
        (
            "connections refused at the cap (503)",
            f"{base.metrics.get(REFUSED, 0):.0f}",
            f"{hostile.metrics.get(REFUSED, 0):.0f}",
            "",
            "",
        ),
        (
            "503 for lack of file descriptors",
            f"{base.metrics.get(DESCRIPTORS, 0):.0f}",
            f"{hostile.metrics.get(DESCRIPTORS, 0):.0f}",
            "",
            "",
        ),
        (
            "normal clients' connects for their requests: count: p50 / p99 / max",
            _connects(base, base.pool_connect_ms),
            _connects(hostile, hostile.pool_connect_ms),
            "",
            "",
        ),
        (
            "normal clients' connects for their aborts: count: p50 / p99 / max",
            _connects(base, base.stats.connect_ms),
            _connects(hostile, hostile.stats.connect_ms),
            "",
            "",
        ),
        (
            "listen queue overflows (the machine's, `ListenOverflows`)",
            str(base.listen_overflows),
            str(hostile.listen_overflows),
            "",
            "",
        ),
        (
            "the machine's TCP sockets: orphans, memory (peaks, `/proc/net/sockstat`)",
            f"{base.orphans_peak}, {base.tcp_mem_peak_mb:.0f} MB",
            f"{hostile.orphans_peak}, {hostile.tcp_mem_peak_mb:.0f} MB",
            "",
            "",
        ),
        (
            "log lines summarising cut connections",
            str(base.cut_log_lines),
            str(hostile.cut_log_lines),
            "",
            "",
        ),
        ("slowloris", "-", _attacker(found, "slowloris"), "", ""),
        ("non-readers of the 4000x3000 preview", "-", _attacker(found, "non_readers"), "", ""),
        ("idle flood", "-", _attacker(found, "flood"), "", ""),
        (
            "CPU: service / attackers' process",
            f"{base.cpu_s:.0f} s / -",
            f"{hostile.cpu_s:.0f} s / {found['cpu_s'] if found else 0:.0f} s",
            "",
            "",
        ),
        (
            "service CPU per normal request",
            f"{_cpu_per_request(base):.2f} ms",
            f"{_cpu_per_request(hostile):.2f} ms (the attack: {_attack_share(base, hostile)})",
            "",
            "",
        ),
        (
            "other programs' share of the CPU; load average start / end",
            f"{base.other_cpu_pct:.0f}%; {base.load[0]:.1f} / {base.load[1]:.1f}",
            f"{hostile.other_cpu_pct:.0f}%; {hostile.load[0]:.1f} / {hostile.load[1]:.1f}",
            "",
            "",
        ),
    ]
    lines = [
        f"Runs of {base.duration:.0f} s each at concurrency {concurrency}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"`python bench/soak.py --hostile --duration {base.duration:.0f}"
        + "".join(f" --serve-arg={a}" for a in serve_args)
        + "`.",
        "",
        "| measure | baseline | under attack | target | |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]
    return "\n".join(lines)


async def hostile_soak(args: argparse.Namespace) -> int:
    print(f"baseline: {args.duration:g} s of the mix alone", flush=True)
    base = await one_run("baseline", args, attack=False)
    print(f"under attack: {args.duration:g} s of the mix and the attackers", flush=True)
    hostile = await one_run("hostile", args, attack=True)
    text = report(base, hostile, args.concurrency, args.serve_arg)
    print(text)
    print(f"status mix, baseline: {dict(sorted(base.stats.statuses.items()))}")
    print(f"status mix, under attack: {dict(sorted(hostile.stats.statuses.items()))}")
    print(f"attackers: {json.dumps(hostile.attackers)}")
    for run in (base, hostile):
        print(f"{run.name}: service exit code {run.exit_code}; {run.cap_line.strip()}")
        print(f"{run.name}: error lines in the log: {len(run.errors)}")
        for line in run.errors[:20]:
            print("  " + line)
    if args.report:
        write_block(args.report, text, MARK_BEGIN, MARK_END)
    failed = not all(verdicts(base, hostile).values())
    failed = failed or any(run.exit_code != 0 or run.errors for run in (base, hostile))
    return 1 if failed else 0
