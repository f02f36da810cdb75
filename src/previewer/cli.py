"""Command line: argv, logging set-up, and the wiring of every component.

    previewer serve [--flags]     run the HTTP service
    previewer worker --broker URL run a render worker of broker mode
    previewer sign PATH...        print signed request paths
    previewer warm TARGET ...     warm a cache or load-test a service (warm/)

Each command's flags are the settings config/settings.py declares for it; each has a
`PREVIEWER_*` variable, and a flag wins over its variable. Nothing imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from previewer import __version__, signing
from previewer.broker.consumer import JobConsumer
from previewer.broker.front import BrokerRenderer
from previewer.broker.worker import Worker
from previewer.cache.disk import DiskCache
from previewer.cache.index import CacheIndex
from previewer.cache.storage import Storage
from previewer.config.settings import (
    SERVE,
    WORKER,
    ConfigError,
    Option,
    ServerConfig,
    Settings,
    load,
    options_for,
)
from previewer.fetch.fetcher import Fetcher, Resolver
from previewer.http.accesslog import FLUSH_INTERVAL, AccessLog
from previewer.http.connections import ConnectionGuard, ConnectionLimits
from previewer.http.server import HttpServer, build_app, build_metrics_app
from previewer.metrics import (
    ConnectionCollector,
    HealthCollector,
    JobDurationCollector,
    PrometheusMetrics,
    WorkerCollector,
)
from previewer.observe import logs
from previewer.observe.recorder import NoMetrics, Recorder
from previewer.options import OPERATIONS
from previewer.process import descriptors, memory
from previewer.render import imaging
from previewer.render.renderer import EmbeddedRenderer, Renderer
from previewer.service import PreviewService
from previewer.warm import plan as warm_plan

log = logging.getLogger("previewer")

SOURCES_DIR = "sources"  # under --cache-dir; preview shards are two-character names
# Connections the metrics port keeps open at most: a scraper or two, and an
# operator's curl; the port gets the public port's timeouts too.
METRICS_CONNECTIONS = 32


_COMMANDS = {
    SERVE: (
        "run the HTTP service",
        "Run the HTTP service. Every flag also reads PREVIEWER_<FLAG> "
        "from the environment; a flag wins over its variable.",
    ),
    WORKER: (
        "run a render worker (broker mode)",
        "Consume render jobs from RabbitMQ (--broker) and answer them: fetch the "
        "source under the source policy, keep it in the source cache, render it. "
        "Every flag also reads PREVIEWER_<FLAG> from the environment; a flag wins "
        "over its variable.",
    ),
    "sign": (
        "print signed request paths",
        "Print the signed form of each request path or URL, e.g. "
        "`previewer sign /fill/300/200/example.com/a.jpg /fit/300/200/example.com/a.jpg`. "
        "Every flag also reads PREVIEWER_<FLAG> from the environment; a flag wins "
        "over its variable.",
    ),
    "warm": (
        "fill a cache from a URL list, or load-test a service",
        "Request every URL at every size, or a random mix for a number of requests or "
        "a duration, and print a summary (docs/warm.md). The signing flags also read "
        "PREVIEWER_<FLAG> from the environment; a flag wins over its variable.",
    ),
}


def _add_settings(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """One flag per setting, its help text, variable and default from config/settings.py."""
    for opt in options:
        text = f"{opt.help.replace('`', '')} [{opt.env_var}] (default: {opt.default_text()})"
        text = text.replace("%", "%%")  # argparse formats help with %
        if opt.is_switch:
            parser.add_argument(
                f"--{opt.flag}", action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            parser.add_argument(f"--{opt.flag}", metavar="VALUE", default=None, help=text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="previewer",
        description="HTTP image preview service with a persistent LRU disk cache.",
    )
    parser.add_argument("--version", action="version", version=f"previewer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command, (summary, description) in _COMMANDS.items():
        sub = commands.add_parser(command, help=summary, description=description)
        _add_settings(sub, options_for(command))
        if command == "sign":
            sub.add_argument("paths", metavar="PATH_OR_URL", nargs="+")
        if command == "warm":
            warm_plan.add_arguments(sub)
    return parser


class Invocation(NamedTuple):
    command: str
    settings: Settings
    paths: list[str]  # for `sign`


def parse_args(argv: Sequence[str], environ: dict[str, str]) -> Invocation:
    """The command, and the settings it takes from `environ` and its flags."""
    return _invocation(_parser().parse_args(argv), environ)


def _invocation(args: argparse.Namespace, environ: dict[str, str]) -> Invocation:
    overrides: dict[str, str] = {}
    for opt in options_for(args.command):
        value = getattr(args, opt.flag.replace("-", "_"))
        if value is not None:
            overrides[opt.flag] = ("true" if value else "false") if opt.is_switch else value
    settings = load(environ, overrides, command=args.command)
    return Invocation(args.command, settings, getattr(args, "paths", []))


def sign_paths(paths: Sequence[str], key: bytes, salt: bytes) -> list[str]:
    """Signed forms of `/fill/...` or `/fit/...` paths, or of URLs whose path starts so.

    The signed text is the path and query as they are sent (a fragment never is).
    """
    signed = []
    for text in paths:
        parts = urlsplit(text)
        if not parts.path.startswith(tuple(f"/{operation}/" for operation in OPERATIONS)):
            raise ConfigError(f"not a /fill/ or /fit/ path or URL: {text}")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        signed_target = signing.signed_path(target, key, salt)
        path, _, query = signed_target.partition("?")
        signed.append(urlunsplit(parts._replace(path=path, query=query)))
    return signed


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The public port's bounds; raises the open-file limit first, and logs both.

    `--max-connections 0` derives the cap from the open-file limit, after
    what the render slots, the queue and the broker need (process/descriptors.py).
    """
    server, imaging_config = settings.server, settings.imaging
    limit = descriptors.raise_limit()
    reserved = descriptors.reserve(
        imaging_config.workers + imaging_config.queue_size, bool(settings.broker.url)
    )
    cap = server.max_connections or descriptors.connection_cap(limit.soft, reserved)
    raised = f" (raised from {limit.before})" if limit.soft != limit.before else ""
    log.info("open-file limit %d%s; at most %d client connections", limit.soft, raised, cap)
    if server.max_connections and cap > limit.soft - reserved:
        log.warning(
            "--max-connections %d leaves fewer than %d of the %d open files for caches, "
            "origins and the broker: requests may get 503 for want of descriptors",
            cap,
            reserved,
            limit.soft,
        )
    return ConnectionLimits(
        server.header_timeout, server.keepalive_timeout, server.send_timeout, cap
    )


async def serve_metrics(
    prometheus: PrometheusMetrics, server: ServerConfig, address: tuple[str, int]
) -> HttpServer:
    """Serve `/metrics` on `address`, under the public port's timeouts; started."""
    limits = ConnectionLimits(
        server.header_timeout, server.keepalive_timeout, server.send_timeout, METRICS_CONNECTIONS
    )
    metrics_server = HttpServer(
        build_metrics_app(prometheus.exposition),
        server,
        ConnectionGuard(limits),
        address=address,
    )
    await metrics_server.start()
    return metrics_server


@dataclass
class Running:
    """A started service, the URL it listens on, its access log and its metrics' URL."""

    service: PreviewService
    url: str
    access_log: AccessLog
    metrics_url: str | None = None  # None: --metrics-address is off


@contextlib.asynccontextmanager
async def running(
    settings: Settings, resolver: Resolver | None = None, *, flush_interval: float = FLUSH_INTERVAL
) -> AsyncIterator[Running]:
    """Build every component once, start listening, and tear down in order.

    `resolver` replaces the system DNS resolver (the address policy still
    applies to its answers); tests use it to stage names without a network.
    `flush_interval` is how long the access log keeps successful requests'
    lines; tests shorten it to see a timed write without waiting a second.
    """
    cache = settings.cache
    stack = contextlib.AsyncExitStack()
    prometheus = PrometheusMetrics() if settings.server.metrics_address else None
    metrics: Recorder = prometheus or NoMetrics()
    guard = ConnectionGuard(connection_limits(settings))
    renderer: Renderer
    if settings.broker.url:
        broker = BrokerRenderer(settings.broker, settings.server.request_timeout)
        stack.push_async_callback(broker.close)
        renderer, preview_bytes = broker, cache.size  # the workers keep the sources
    else:
        renderer = await stack.enter_async_context(
            embedded_renderer(settings, cache.source_bytes, resolver, metrics)
        )
        preview_bytes = cache.preview_bytes
    service = PreviewService(
        previews=DiskCache(
            "preview",
            Storage(cache.dir),
            CacheIndex(preview_bytes, cache.max_items, memory_bytes=cache.memory_size),
        ),
        renderer=renderer,
        disk_budget=cache.size,
        metrics=metrics,
    )
    access_log = AccessLog(
        successes=settings.server.access_log,
        interval=flush_interval,
        as_json=settings.server.log_format == "json",
    )
    server = HttpServer(
        build_app(service, settings.server, settings.imaging, access_log, metrics),
        settings.server,
        guard,
    )
    async with stack:
        try:
            await service.start()
            metrics_url = None
            if prometheus is not None and settings.server.metrics_address is not None:
                prometheus.register(HealthCollector(service.health))
                prometheus.register(ConnectionCollector(guard.counts))
                if isinstance(renderer, BrokerRenderer):
                    prometheus.register(JobDurationCollector(renderer.job_durations))
                metrics_server = await serve_metrics(
                    prometheus, settings.server, settings.server.metrics_address
                )
                stack.push_async_callback(metrics_server.stop)
                metrics_url = f"{metrics_server.url}/metrics"
            url = await server.start()
            yield Running(service, url, access_log, metrics_url)
        finally:
            service.drain()  # /ready says 503 while the requests in flight finish
            await server.stop()
            await service.stop()


@contextlib.asynccontextmanager
async def embedded_renderer(
    settings: Settings,
    source_bytes: int,
    resolver: Resolver | None = None,
    metrics: Recorder | None = None,
) -> AsyncIterator[EmbeddedRenderer]:
    """The render stage of the embedded mode and of a worker: fetch, source cache, libvips.

    `source_bytes` bounds the source cache (0: none); `metrics` gets its phases and fetches.
    """
    imaging.configure()
    executor = ThreadPoolExecutor(settings.imaging.workers, thread_name_prefix="render")
    fetcher = Fetcher(settings.fetch, resolver)
    await fetcher.start()
    cache = settings.cache
    try:
        yield EmbeddedRenderer(
            config=settings.imaging,
            fetcher=fetcher,
            sources=DiskCache("source", Storage(cache.dir / SOURCES_DIR), CacheIndex(source_bytes)),
            executor=executor,
            metrics=metrics,
        )
    finally:
        await fetcher.close()
        executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class RunningWorker:
    worker: Worker
    consumer: JobConsumer
    metrics_url: str | None = None  # None: --metrics-address is off


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, resolver: Resolver | None = None
) -> AsyncIterator[RunningWorker]:
    """A render worker consuming jobs; on exit it finishes the jobs in flight, then stops."""
    if not settings.broker.url:
        raise ConfigError("worker needs --broker or PREVIEWER_BROKER")
    # a worker keeps sources only: its whole --cache-size, unless a share is set
    sources = (
        settings.cache.size if settings.cache.source_size is None else settings.cache.source_size
    )
    prometheus = PrometheusMetrics() if settings.server.metrics_address else None
    limit = descriptors.raise_limit()  # origins, cache files and the metrics port's clients
    raised = f" (raised from {limit.before})" if limit.soft != limit.before else ""
    log.info("open-file limit %d%s", limit.soft, raised)
    async with (
        contextlib.AsyncExitStack() as stack,
        embedded_renderer(settings, sources, resolver, prometheus) as renderer,
    ):
        await renderer.load()
        worker = Worker(
            renderer,
            max_dimension=settings.imaging.max_dimension,
            delivery_limit=settings.broker.delivery_limit,
        )
        consumer = JobConsumer(settings.broker, settings.imaging.workers, worker.handle)
        metrics_url = None
        if prometheus is not None and settings.server.metrics_address is not None:
            prometheus.register(
                WorkerCollector(renderer.health, worker.counters, lambda: consumer.connected)
            )
            metrics_server = await serve_metrics(
                prometheus, settings.server, settings.server.metrics_address
            )
            stack.push_async_callback(metrics_server.stop)
            metrics_url = f"{metrics_server.url}/metrics"
        consumer.start()
        try:
            yield RunningWorker(worker, consumer, metrics_url)
        finally:
            await consumer.stop(settings.server.shutdown_timeout)


async def work(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(settings) as running:
        log.info(
            "worker started: %d render slots (cache %s); connecting to the broker",
            settings.imaging.workers,
            settings.cache.dir.absolute(),
        )
        if running.metrics_url:
            log.info("metrics on %s", running.metrics_url)
        ready = asyncio.ensure_future(running.consumer.wait_ready())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and running.consumer.failure is not None:
            return 1  # logged where it happened: the queue's settings differ
        if ready.done():
            log.info("worker consuming %s", settings.broker.queue)
        ready.cancel()
        await stopping
        log.info(
            "stopping: finishing %d jobs in flight (up to %ss)",
            running.consumer.in_flight,
            settings.server.shutdown_timeout,
        )
    log.info("stopped")
    return 0


async def serve(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as service:
        log.info("listening on %s (cache %s)", service.url, settings.cache.dir.absolute())
        if service.metrics_url:
            log.info("metrics on %s", service.metrics_url)
        await stop.wait()
        log.info(
            "stopping: not ready any more, finishing requests in flight (up to %ss)",
            settings.server.shutdown_timeout,
        )
    log.info("stopped")
    return 0


def _run(main: Callable[[Settings], Coroutine[object, object, int]], settings: Settings) -> int:
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is absent on some platforms
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main(settings))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
        command, settings, paths = _invocation(args, dict(os.environ))
        if command == "warm":
            from previewer.warm import tool as warm_tool  # rich loads only for this command

            return warm_tool.main(args, settings.server.signing_key, settings.server.signing_salt)
        if command == "sign":
            if not settings.server.signing_key:
                raise ConfigError("sign needs --signing-key or PREVIEWER_SIGNING_KEY")
            for line in sign_paths(
                paths, settings.server.signing_key, settings.server.signing_salt
            ):
                print(line)
            return 0
    except ConfigError as exc:
        print(f"previewer: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.server.log_level, settings.server.log_format)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Records need no thread or process names (the format shows neither); not
    # collecting them trims each access-log line's cost on the event loop.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # libvips warns per tile and without the request (a truncated JPEG gives a
    # handful of "error in tile" lines); the service logs one line per render instead.
    logging.getLogger("pyvips").setLevel(logging.ERROR)
    if command in (SERVE, WORKER):
        memory.tune(os.environ)  # before any thread starts (a no-op once launch.py set it)
        try:
            return _run(serve if command == SERVE else work, settings)
        except ConfigError as exc:
            print(f"previewer: {exc}", file=sys.stderr)
            return 2
    raise AssertionError(f"unknown command {command}")  # argparse allows only the above
