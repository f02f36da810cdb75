"""The hostile soak: the soak's mix alone, then under bench/attackers.py's attack, side by side.

Run by `bench/soak.py --hostile`; docs/reliability.md ("Hostile soak") tells the attack, the
figures and the targets, checked here (PASS or FAIL each; non-zero exit if any fails).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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
import soak
from procs import OtherCpu, free_port
from writer import table, write_block

import images  # the images shared with the test suite (testkit, on the path via soak)

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
ALLOWED = "503 overloaded"


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


@dataclass
class Probe:
    """The service's open connections (its metric) and the machine's TCP sockets, every 10 s;
    the normal clients' connects."""

    address: str  # the service's --metrics-address
    open_peak: float = 0.0
    orphans_peak: int = 0
    tcp_mem_peak_mb: float = 0.0
    connects_ms: list[float] = field(default_factory=list)  # the clients' pool's connects

    async def sample(self, until: float) -> None:
        while True:
            try:
                found = await asyncio.to_thread(scrape, f"http://{self.address}/metrics")
                self.open_peak = max(self.open_peak, found.get("previewer_connections_open", 0))
            except OSError:
                pass  # the metrics port under the same attack is not the point here
            orphans, mem = _sockstat()
            self.orphans_peak = max(self.orphans_peak, orphans)
            self.tcp_mem_peak_mb = max(self.tcp_mem_peak_mb, mem)
            if time.monotonic() >= until:
                return
            await asyncio.sleep(min(10.0, max(0.0, until - time.monotonic())))

    def trace(self) -> aiohttp.TraceConfig:
        """Times each new connection of the clients' session into `connects_ms`."""
        trace = aiohttp.TraceConfig()

        async def start(_s: object, context: SimpleNamespace, _p: object) -> None:
            context.connect_started = time.perf_counter()

        async def end(_s: object, context: SimpleNamespace, _p: object) -> None:
            self.connects_ms.append((time.perf_counter() - context.connect_started) * 1000)

        trace.on_connection_create_start.append(start)
        trace.on_connection_create_end.append(end)
        return trace


@dataclass(frozen=True)
class Hostile:
    """One run: the mix's, and what the service's metrics, the machine and the attackers showed."""

    run: soak.Run
    probe: Probe
    metrics: dict[str, float]
    other_cpu_pct: float
    load: tuple[float, float]  # the machine's load average at the start and the end
    listen_overflows: int  # the machine's, during the run (TcpExt ListenOverflows)
    attackers: dict[str, Any] | None  # bench/attackers.py's JSON

    def failures(self) -> dict[str, int]:
        outcomes = self.run.stats.outcomes.items()
        return {f"{o} ({k})": n for (k, o), n in outcomes if o not in EXPECTED[k]}

    def rss_growth(self) -> tuple[float, float, float]:
        """(RSS at minute 2, RSS at the end, the growth allowed), in MB.

        Minute 2, or half-way through a run shorter than four minutes."""
        samples = self.run.stats.samples
        mark = min(120.0, self.run.duration / 2)
        at = min(samples, key=lambda s: abs(s.t - mark)).rss_mb
        return at, samples[-1].rss_mb, max(GROWTH_MB, GROWTH_SHARE * at)

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.run.log.read_text().splitlines() if needle in line]


async def one_run(name: str, args: argparse.Namespace, attack: bool) -> Hostile:
    """An origin and a fresh service; the mix (and the attackers) for the duration."""
    origin = await soak.start_origin()
    origin.add("/big.jpg", images.photo(4000, 3000, sigma=45).jpegsave_buffer(Q=90))
    probe = Probe(f"127.0.0.1:{free_port()}")
    found, attackers = None, None
    with tempfile.TemporaryDirectory(prefix="previewer-hostile-") as tmp:
        work, service = Path(tmp), f"service-{name}"
        extra = ("--metrics-address", probe.address, "--cache-size", CACHE_SIZE, *args.serve_arg)
        server = await asyncio.to_thread(soak.start_service, work, service, None, extra)
        try:
            load = os.getloadavg()[0]
            overflows = _listen_overflows()
            with OtherCpu(server.roots) as other:
                if attack:
                    command = [sys.executable, str(Path(__file__).parent / "attackers.py")]
                    command += ["--url", server.url, "--duration", f"{args.duration:g}"]
                    command += ["--big-path", BIG_PATH.format(authority=origin.authority)]
                    command += ["--slowloris", str(args.slowloris), "--flood", str(args.flood)]
                    command += ["--non-readers", str(args.non_readers)]
                    attackers = await asyncio.to_thread(
                        subprocess.Popen, command, stdout=subprocess.PIPE, text=True
                    )
                clients = (origin.authority, args.duration, args.concurrency)
                stats = await soak.mix(server, *clients, probe.sample, trace=[probe.trace()])
                if attackers is not None:
                    out, _ = await asyncio.to_thread(attackers.communicate, timeout=60)
                    found = json.loads(out.strip().splitlines()[-1])
            load_end = os.getloadavg()[0]
            overflows = _listen_overflows() - overflows
            metrics = await asyncio.to_thread(scrape, f"http://{probe.address}/metrics")
        finally:
            if attackers is not None and attackers.poll() is None:
                attackers.kill()
            await asyncio.to_thread(server.stop)
            await origin.stop()
            errors = soak.keep_logs(work, [service])
    code = server.procs[0].returncode
    run = soak.Run(
        args.duration, args.concurrency, stats, code, errors, soak.LOGS / f"{service}.log"
    )
    return Hostile(run, probe, metrics, other.percent, (load, load_end), overflows, found)


# --- the report -----------------------------------------------------------------------


LABELS = (
    "normal requests",
    "latency p50 / p99",
    "hits' latency p50 / p99",
    "failures (answers its kind of request does not get), by code",
    "500 answers",
    "RSS start / middle / end",
    "RSS each minute",
    "RSS at the end against minute 2",
    "open fds start / middle / end",
    "connections open, peak (`previewer_connections_open`)",
    "connections closed: " + " / ".join(REASONS),
    "connections refused at the cap (503)",
    "503 for lack of file descriptors",
    "normal clients' connects for their requests: count: p50 / p99 / max",
    "normal clients' connects for their aborts: count: p50 / p99 / max",
    "listen queue overflows (the machine's, `ListenOverflows`)",
    "the machine's TCP sockets: orphans, memory (peaks, `/proc/net/sockstat`)",
    "log lines summarising cut connections",
    "slowloris",
    "non-readers of the 4000x3000 preview",
    "idle flood",
    "CPU: service / attackers' process",
    "service CPU per normal request",
    "other programs' share of the CPU; load average start / end",
)


def _attacker(found: dict[str, Any] | None, kind: str) -> str:
    if found is None:
        return "-"
    t = found[kind]
    text = f"{t['opened']} opened, {t['cut']} cut by the service"
    if t["held_median_s"] is not None:
        text += f" (held {t['held_median_s']:.0f} s median, {t['held_max_s']:.0f} s max)"
    if t["gave_up"]:
        text += f", {t['gave_up']} given up with no sign of a cut"
    if t["refused_503"]:
        text += f", {t['refused_503']} answered 503"
    if t["connect_errors"]:
        errors = ", ".join(f"{k} {v}" for k, v in t["connect_errors"].items())
        text += f", connects failed: {errors}"
    return text + f", {t['still_open']} still open at the end; at most {t['open_max']} at once"


def _connects(ms: list[float]) -> str:
    if not ms:
        return "none"
    spread = f"{soak.p50(ms):.1f} / {soak.p99(ms):.1f} / {max(ms):.0f} ms"
    return f"{len(ms)}: {spread} ({sum(ms) / 1000:.0f} s in all)"


def _cpu_ms(h: Hostile) -> float:
    """The service's CPU per normal request."""
    return h.run.stats.cpu_s * 1000 / max(1, len(h.run.stats.latencies))


def cells(h: Hostile, base: Hostile | None) -> list[str]:
    """One run's column of the table, in the order of LABELS; `base` for the ratios to it."""
    stats, samples, lat = h.run.stats, h.run.stats.samples, h.run.stats.latencies
    rss, fds = soak.start_middle_end(samples, "rss_mb"), soak.start_middle_end(samples, "fds")
    at, end, _ = h.rss_growth()
    vs_rate, vs_p99, attack, attackers_cpu = "", "", "", "-"
    if base is not None:
        vs_rate = f", {h.run.rate() / base.run.rate() * 100:.0f}%"
        vs_p99 = f" ({soak.p99(lat) / soak.p99(base.run.stats.latencies):.2f}x)"
        extra = stats.cpu_s - _cpu_ms(base) / 1000 * len(lat)
        attack = f" (the attack: {extra / h.run.duration * 100:.0f}% of a core)"
        attackers_cpu = f"{h.attackers['cpu_s'] if h.attackers else 0:.0f} s"
    return [
        f"{len(lat)} ({h.run.rate():.0f}/s{vs_rate})",
        f"{soak.p50(lat):.1f} / {soak.p99(lat):.1f} ms{vs_p99}",
        f"{soak.p50(stats.hit_latencies):.1f} / {soak.p99(stats.hit_latencies):.1f} ms",
        ", ".join(f"{k}: {v}" for k, v in sorted(h.failures().items())) or "none",
        str(stats.statuses["500"]),
        "{:.0f} / {:.0f} / {:.0f} MB".format(*rss)
        + f" (sampled peak {max(s.rss_mb for s in samples):.0f}, VmHWM {stats.peak_rss_mb:.0f})",
        f"{soak.each_minute(samples)} MB",
        f"{end - at:+.0f} MB ({at:.0f} to {end:.0f})",
        "{:.0f} / {:.0f} / {:.0f}".format(*fds) + f" (peak {max(s.fds for s in samples)})",
        f"{h.probe.open_peak:.0f}",
        " / ".join(f"{h.metrics.get(CLOSED.format(r), 0):.0f}" for r in REASONS),
        f"{h.metrics.get(REFUSED, 0):.0f}",
        f"{h.metrics.get(DESCRIPTORS, 0):.0f}",
        _connects(h.probe.connects_ms),
        _connects(stats.connect_ms),
        str(h.listen_overflows),
        f"{h.probe.orphans_peak}, {h.probe.tcp_mem_peak_mb:.0f} MB",
        str(len(h.log_lines("connections cut in the last"))),
        *(_attacker(h.attackers, kind) for kind in ("slowloris", "non_readers", "flood")),
        f"{stats.cpu_s:.0f} s / {attackers_cpu}",
        f"{_cpu_ms(h):.2f} ms{attack}",
        f"{h.other_cpu_pct:.0f}%; {h.load[0]:.1f} / {h.load[1]:.1f}",
    ]


def verdicts(base: Hostile, hostile: Hostile) -> dict[str, tuple[str, bool]]:
    """The targets, keyed by the label of their row: (the target, met)."""
    at, end, allowed = hostile.rss_growth()
    lat = (base.run.stats.latencies, hostile.run.stats.latencies)
    no_500 = not (hostile.run.stats.statuses["500"] or base.run.stats.statuses["500"])
    only_allowed = all(key.startswith(ALLOWED + " (") for key in hostile.failures())
    growth = f"≤ +{allowed:.0f} MB (the larger of {GROWTH_MB:.0f} MB and {GROWTH_SHARE:.0%})"
    return {
        LABELS[0]: (
            f"≥ {RATE_TARGET:.0%} of the baseline",
            hostile.run.rate() >= RATE_TARGET * base.run.rate(),
        ),
        LABELS[1]: (
            f"p99 ≤ {P99_TARGET:g}x the baseline's",
            soak.p99(lat[1]) <= P99_TARGET * soak.p99(lat[0]),
        ),
        LABELS[3]: ("none but 503 `overloaded`", only_allowed),
        LABELS[4]: ("0", no_500),
        LABELS[7]: (growth, end - at <= allowed),
    }


def report(base: Hostile, hostile: Hostile, serve_args: list[str]) -> str:
    targets = verdicts(base, hostile)
    rows = []
    for label, b, h in zip(LABELS, cells(base, None), cells(hostile, base), strict=True):
        target, met = targets.get(label, ("", None))
        rows.append((label, b, h, target, {None: "", True: "PASS", False: "**FAIL**"}[met]))
    command = f"--hostile --duration {base.run.duration:.0f}"
    command += "".join(f" --serve-arg={a}" for a in serve_args)
    lead = f"Runs of {base.run.duration:.0f} s each at concurrency {base.run.concurrency}"
    header = ("measure", "baseline", "under attack", "target", "")
    return soak.heading(lead, command) + "\n\n" + table(header, rows)


async def main(args: argparse.Namespace) -> int:
    print(f"baseline: {args.duration:g} s of the mix alone", flush=True)
    base = await one_run("baseline", args, attack=False)
    print(f"under attack: {args.duration:g} s of the mix and the attackers", flush=True)
    hostile = await one_run("hostile", args, attack=True)
    text = report(base, hostile, args.serve_arg)
    print(text)
    print(f"status mix, baseline: {dict(sorted(base.run.stats.statuses.items()))}")
    print(f"status mix, under attack: {dict(sorted(hostile.run.stats.statuses.items()))}")
    print(f"attackers: {json.dumps(hostile.attackers)}")
    for name, h in (("baseline", base), ("hostile", hostile)):
        cap = next(iter(h.log_lines("client connections")), "").strip()
        soak.print_exits(f"{name}: service ", h.run, f"; {cap}")
    if args.report:
        write_block(args.report, text, "<!-- soak-hostile:begin -->", "<!-- soak-hostile:end -->")
    failed = not all(met for _, met in verdicts(base, hostile).values())
    failed = failed or any(h.run.exit_code != 0 or h.run.errors for h in (base, hostile))
    return 1 if failed else 0
