"""`previewer warm`: fill a deployment's cache from a URL list, or load-test it.

    previewer warm TARGET --urls FILE|- --sizes 300x200,640x480 [--concurrency N]
                   [--requests N | --duration S] [--random-sizes WxH-WxH] [--seed N]
                   [--header 'Name: value']... [--json] [--max-error-ratio R]

The tool's terminal edge: the only module that imports rich (the progress
bar and the summary table). Requests go through warm/client.py, the tool's own
HTTP/1.1 client; the plan (warm/plan.py) and the tally (warm/stats.py) are pure.

Exit status: 0, or 1 when the error ratio passes --max-error-ratio, 2 for a
bad argument or URL list, 130 when interrupted (after the summary of what ran).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from yarl import URL

from previewer import __version__
from previewer.warm.client import BadResponse, Connection, Target
from previewer.warm.plan import (
    PlanError,
    Signer,
    SizeRange,
    every_path,
    parse_header,
    parse_operations,
    parse_size_range,
    parse_sizes,
    parse_sources,
    random_paths,
)
from previewer.warm.stats import Tally

REFRESH_SECONDS = 0.1  # progress bar updates
EXIT_ERRORS, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


@dataclass(frozen=True)
class Plan:
    """The parsed arguments: where to send what, how fast, and what counts as failure."""

    base: str
    paths: Iterator[str]
    total: int | None  # None: bounded by `duration`
    duration: float | None
    concurrency: int
    headers: tuple[tuple[str, str], ...]
    timeout: float
    seed: int | None
    max_error_ratio: float


def plan_from(args: argparse.Namespace, key: bytes, salt: bytes, stdin: TextIO) -> Plan:
    try:
        target = URL(args.target)
    except ValueError:
        target = URL()
    if target.scheme not in ("http", "https") or not target.host:
        raise PlanError(f"not an http:// or https:// base URL: {args.target!r}")
    if args.concurrency < 1:
        raise PlanError("--concurrency must be at least 1")
    if args.requests is not None and args.requests < 1:
        raise PlanError("--requests must be at least 1")
    if args.duration is not None and not args.duration > 0:
        raise PlanError("--duration must be a positive number of seconds")
    if not args.timeout > 0:
        raise PlanError("--timeout must be a positive number of seconds")
    if not 0 <= args.max_error_ratio <= 1:
        raise PlanError("--max-error-ratio must be from 0 to 1")
    random_mix = args.requests is not None or args.duration is not None
    if args.random_sizes and not random_mix:
        raise PlanError("--random-sizes needs --requests or --duration")
    if args.seed is not None and not random_mix:
        raise PlanError("--seed needs --requests or --duration")
    if bool(args.sizes) == bool(args.random_sizes):
        raise PlanError("give --sizes or --random-sizes (one of them)")
    sizes = parse_size_range(args.random_sizes) if args.random_sizes else parse_sizes(args.sizes)
    operations = parse_operations(args.op)
    headers = tuple(parse_header(text) for text in args.header)
    sources = _read_sources(args.urls, stdin)
    signer = Signer(key, salt)
    seed = None
    if random_mix:
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
        paths = random_paths(sources, sizes, signer, seed, args.requests, operations)
        total = args.requests
    else:
        assert not isinstance(sizes, SizeRange)
        paths = every_path(sources, sizes, signer, operations)
        total = len(sources) * len(sizes) * len(operations)
    return Plan(
        base=str(target).rstrip("/"),
        paths=paths,
        total=total,
        duration=args.duration,
        concurrency=args.concurrency,
        headers=headers,
        timeout=args.timeout,
        seed=seed,
        max_error_ratio=args.max_error_ratio,
    )


def _read_sources(name: str, stdin: TextIO) -> tuple[str, ...]:
    if name == "-":
        return parse_sources(stdin)
    try:
        with open(name, encoding="utf-8") as lines:
            return parse_sources(lines)
    except OSError as exc:
        raise PlanError(f"cannot read --urls {name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PlanError(f"--urls {name} is not UTF-8 text") from None


# --- the run --------------------------------------------------------------------------


async def _one(connection: Connection, path: str, limit: float, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit):
            reply = await connection.get(path)
    except TimeoutError:
        tally.failure(time.perf_counter() - started, "timeout")
        return
    except (OSError, asyncio.IncompleteReadError):
        tally.failure(time.perf_counter() - started, "connection")
        return
    except BadResponse:
        tally.failure(time.perf_counter() - started, "bad_response")
        return
    elapsed = time.perf_counter() - started
    code = None
    if reply.body and reply.headers.get("content-type", "").startswith("application/json"):
        code = _error_code(reply.body)
    tally.answer(reply.status, elapsed, reply.size, reply.headers.get("x-cache"), code)


def _error_code(body: bytes) -> str | None:
    """The `error` of the service's JSON error body, when it is one."""
    with contextlib.suppress(ValueError):
        payload = json.loads(body)
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            code: str = payload["error"]
            return code
    return None


async def run(plan: Plan, tally: Tally, stop: asyncio.Event) -> float:
    """Send the plan's requests, at most `concurrency` at once; returns the seconds taken."""
    target = Target(URL(plan.base), plan.headers, f"previewer-warm/{__version__}")
    started = time.monotonic()
    deadline = started + plan.duration if plan.duration is not None else None

    async def worker() -> None:
        connection = Connection(target)  # one kept-alive connection per worker
        try:
            for path in plan.paths:
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    return
                await _one(connection, path, plan.timeout, tally)
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    return time.monotonic() - started


class _Bar:
    """The rich progress bar: done/total, req/s over the last second, errors, p99."""

    def __init__(self, plan: Plan, tally: Tally, console: Console) -> None:
        self._plan, self._tally = plan, tally
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]} req/s"),
            TextColumn("errors {task.fields[errors]}"),
            TextColumn("p99 {task.fields[p99]} ms"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
            transient=True,
        )
        total = plan.total if plan.total is not None else plan.duration
        self._task = self._progress.add_task(
            "warm", total=total, counts="0", rate="0", errors="0", p99="-"
        )
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def update(self) -> None:
        now, done = time.monotonic(), self._tally.done
        self._samples.append((now, done))
        while len(self._samples) > 1 and now - self._samples[0][0] > 1.0:
            self._samples.popleft()
        then, done_then = self._samples[0]
        rate = (done - done_then) / (now - then) if now > then else 0.0
        counts = f"{done}/{self._plan.total}" if self._plan.total is not None else str(done)
        completed = done if self._plan.total is not None else now - self._started
        self._progress.update(
            self._task,
            completed=completed,
            counts=counts,
            rate=f"{rate:,.0f}",
            errors=str(self._tally.errors),
            p99=f"{self._tally.latency.percentile(99) * 1000:,.1f}" if done else "-",
        )
        self._progress.refresh()

    async def follow(self) -> None:
        self._started = time.monotonic()
        with self._progress:
            try:
                while True:
                    self.update()
                    await asyncio.sleep(REFRESH_SECONDS)
            finally:
                self.update()


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"previewer warm: {summary['target']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    latency = summary["latency_ms"]
    cache = summary["cache"]
    ratio = cache["hit_ratio"]
    rows = [
        ("requests", f"{summary['requests']:,} in {summary['seconds']:.2f} s"),
        ("req/s", f"{summary['requests_per_second']:,.1f}"),
        ("latency ms", "  ".join(f"{k} {v:,.1f}" for k, v in latency.items())),
        ("statuses", _mix(summary["statuses"])),
        ("errors", f"{summary['errors']:,} ({summary['error_ratio']:.2%})"),
        ("error codes", _mix(summary["error_codes"]) or "none"),
        (
            "X-Cache",
            f"{cache['hits']:,} HIT, {cache['misses']:,} MISS"
            + (f" (hit ratio {ratio:.1%})" if ratio is not None else ""),
        ),
        ("bytes received", f"{summary['bytes_received']:,}"),
        ("warm's own CPU", f"{summary['client_cpu_percent']:.0f}% of one core"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _mix(counts: dict[str, int]) -> str:
    return ", ".join(f"{key}: {value:,}" for key, value in counts.items())


async def _main(plan: Plan, out: TextIO) -> tuple[dict[str, Any], bool]:
    tally, stop = Tally(), asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    follower = None
    if out.isatty():
        follower = asyncio.create_task(_Bar(plan, tally, Console(file=out)).follow())
    cpu = time.process_time()
    try:
        elapsed = await run(plan, tally, stop)
    finally:
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        loop.remove_signal_handler(signal.SIGINT)
    summary = {"target": plan.base, "concurrency": plan.concurrency, "seed": plan.seed}
    summary |= tally.summary(elapsed)
    # near 100: this process, not the service, may be what limits req/s
    summary["client_cpu_percent"] = round((time.process_time() - cpu) / elapsed * 100, 1)
    summary["interrupted"] = stop.is_set()
    return summary, stop.is_set()


def main(args: argparse.Namespace, key: bytes, salt: bytes, stdin: TextIO = sys.stdin) -> int:
    """Run `previewer warm` with parsed arguments; returns the exit status."""
    try:
        plan = plan_from(args, key, salt, stdin)
    except PlanError as exc:
        print(f"previewer warm: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = sys.stdout
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        summary, interrupted = runner.run(_main(plan, out))
    if args.json:
        print(json.dumps(summary, indent=2), file=out)
    else:
        Console(file=out).print(summary_table(summary))
    if interrupted:
        return EXIT_INTERRUPTED
    if summary["error_ratio"] > plan.max_error_ratio:
        print(
            f"previewer warm: error ratio {summary['error_ratio']:.4f} is above "
            f"--max-error-ratio {plan.max_error_ratio:g}",
            file=sys.stderr,
        )
        return EXIT_ERRORS
    return 0


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on some platforms
        return None
    return uvloop.new_event_loop
