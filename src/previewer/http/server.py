"""HTTP routes, response headers, and the one place errors become responses.

The only module that imports the web framework (aiohttp.web).

    GET|HEAD /fill/{width}/{height}/{source}   the preview, cropped to exactly that size
    GET|HEAD /fit/{width}/{height}/{source}    the preview, the whole source inside that box
    GET|HEAD /{signature}/fill/... and /{signature}/fit/...
                                               the same, when URL signing is on
    GET|HEAD /health                           liveness: 200 while the process serves
    GET|HEAD /ready                            readiness: 200, or 503 with the reasons
    GET|HEAD / and /playground/...             the playground page (http/playground.py)

Any other path is 404. A path under `/fill` or `/fit` (or, with signing on, a
path whose first segment has the form of a signature) that does not parse is 400.

With `--webp` or `--avif` on, the output format is negotiated from `Accept`
(options.OutputRules) before the cache key is made, and every preview
response, 304s included, carries `Vary: Accept`.

Every error is JSON `{"error": code, "message": sentence}` with
`Cache-Control: no-store`. A PreviewError keeps its status; anything else is
a bug, logged with its traceback and answered 500. Requests aiohttp cannot
parse (over-long request lines or headers, garbage) get the same format.

Every response carries `X-Request-Id` (observe/logs.py): the client's when well
formed, else a new one; every log line about the request carries it too.
Every response but the probes' is reported to the `metrics.Recorder`.
Stopping drains: /ready turns 503 (`PreviewService.drain`), and the server
keeps listening until the requests in flight are answered or
`--shutdown-timeout` passes, so that load balancers see the instance leave
before its connections close.

Each connection answers a client that half-closes after its request
(`shutdown(SHUT_WR)`): asyncio would otherwise close the whole connection on
the client's end of input, before the answer is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import json
import logging
import socket
import struct
import termios
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.payload import BytesPayload

from previewer import __version__, signing
from previewer.config.settings import ImagingConfig, ServerConfig
from previewer.errors import (
    HeaderTooLarge,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PreviewError,
    UriTooLong,
)
from previewer.fetch.headers import REQUEST_ID
from previewer.http import playground
from previewer.http.accesslog import AccessLog
from previewer.http.connections import ConnectionGuard
from previewer.observe.logs import current_request, new_request_id, request_id_for
from previewer.observe.recorder import NoMetrics, Recorder
from previewer.options import OPERATIONS, Output, OutputRules, PreviewOptions, parse_request
from previewer.service import Preview, PreviewService

log = logging.getLogger(__name__)

SERVER_NAME = f"previewer/{__version__}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SERVICE = web.AppKey("service", PreviewService)
_SETTINGS = web.AppKey("settings", ServerConfig)
_ACCESS_LOG = web.AppKey("access_log", AccessLog)
_PARSE: web.AppKey[Callable[..., PreviewOptions]] = web.AppKey("parse")
_NEGOTIATE: web.AppKey[Callable[[str | None], Output] | None] = web.AppKey("negotiate")
_METRICS: web.AppKey[Recorder] = web.AppKey("metrics")
_REQUEST_ID = web.RequestKey("request_id", str)  # the request's id
_OPERATION = web.RequestKey("operation", str)  # fill or fit: the preview route's operation
# Probes are answered like any request but are neither counted nor waited for on stop.
PROBES = frozenset({"/health", "/ready"})
# Paths parsed lately, remembered: hits repeat them. Errors are not remembered;
# a path is at most 8 KB (aiohttp's request-line limit), so the memo stays small.
PARSE_MEMO_SIZE = 1024
_CUT_AT_ONCE = 0.001  # seconds: the least shutdown timeout aiohttp is given (0 means none)
# Request size limits, enforced by aiohttp's parser. The two differ so that
# the limit a LineTooLong reports tells which one was passed.
MAX_REQUEST_TARGET = 8190  # bytes of the path and query (414 beyond)
MAX_HEADER_FIELD = 16384  # bytes of one header's name and value (431 beyond)
MAX_HEADERS = 128  # header lines (400 beyond)
# The first segment of a signed path: base64url of an HMAC-SHA256, unpadded.
_SIGNATURE = "/{signature:[A-Za-z0-9_-]{43}}"
# Accept values negotiated lately: browsers send a handful of distinct ones.
NEGOTIATE_MEMO_SIZE = 256
# A body larger than this is sent in slices of this size, each once the one
# before has drained into the kernel: a client that does not read holds at
# most a slice and the transport's buffer, never a copy of the whole body.
SEND_SLICE = 64 * 1024
# Connections the kernel completes before previewer accepts them: under a
# flood of new connections aiohttp's 128 overflows and a client's SYN waits a
# second or more to be retried. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096
# aiohttp's own keep-alive timer is left unarmed (ConnectionGuard does the
# job and counts it); asyncio and uvloop both take a far but finite time.
_NEVER = 10.0**7


def build_app(
    service: PreviewService,
    server_config: ServerConfig,
    imaging_config: ImagingConfig,
    access_log: AccessLog | None = None,
    metrics: Recorder | None = None,
) -> web.Application:
    """The routes; `access_log` defaults to one on stderr that follows `--access-log`."""
    app = web.Application(middlewares=[_errors_and_logging])
    app[_SERVICE] = service
    app[_SETTINGS] = server_config
    app[_ACCESS_LOG] = access_log or AccessLog(
        successes=server_config.access_log, as_json=server_config.log_format == "json"
    )
    app[_METRICS] = metrics or NoMetrics()
    app[_TRAFFIC] = Traffic()
    app.on_cleanup.append(_flush_access_log)
    parse: Callable[..., PreviewOptions] = functools.lru_cache(maxsize=PARSE_MEMO_SIZE)(
        functools.partial(
            parse_request,
            max_dimension=imaging_config.max_dimension,
            gravity=imaging_config.gravity,
            quality=imaging_config.quality,
        )
    )
    app[_PARSE] = parse
    rules = OutputRules(
        webp=imaging_config.webp,
        avif=imaging_config.avif,
        quality=imaging_config.quality,
        webp_quality=imaging_config.webp_quality,
        avif_quality=imaging_config.avif_quality,
        avif_effort=imaging_config.avif_effort,
    )
    app[_NEGOTIATE] = (
        functools.lru_cache(maxsize=NEGOTIATE_MEMO_SIZE)(rules.choose) if rules.negotiates else None
    )
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    for operation in OPERATIONS:
        preview = functools.partial(_preview, operation)
        app.router.add_get(f"/{operation}{{tail:(?:/.*)?}}", preview)
        if server_config.signing_key:
            app.router.add_get(f"/{{signature}}/{operation}{{tail:(?:/.*)?}}", preview)
    if server_config.signing_key:
        app.router.add_get(_SIGNATURE + "/{tail:.*}", _unknown_signed_path)
    elif server_config.playground:  # never with signing: the page cannot sign
        for route, asset in playground.assets(imaging_config).items():
            app.router.add_get(route, functools.partial(_asset, asset))
    return app


Scrape = Callable[[str | None], tuple[bytes, str]]
_SCRAPE: web.AppKey[Scrape] = web.AppKey("scrape")


def build_metrics_app(scrape: Scrape) -> web.Application:
    """The metrics port's one route, `GET /metrics`: `scrape(Accept)` gives body and type.

    Served by its own HttpServer, under the same connection bounds as the
    public port; every other path is 404.
    """
    app = web.Application()
    app[_SCRAPE] = scrape
    app[_ACCESS_LOG] = AccessLog(successes=False)
    app[_METRICS] = NoMetrics()
    app[_TRAFFIC] = Traffic()
    app.router.add_get("/metrics", _metrics)
    return app


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = await asyncio.to_thread(
        request.app[_SCRAPE], request.headers.get(hdrs.ACCEPT)
    )
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})


async def _asset(asset: playground.Asset, request: web.Request) -> web.Response:
    return web.Response(
        body=asset.body,
        content_type=asset.content_type,
        charset=asset.charset,
        headers=asset.headers,
    )


def error_response(exc: PreviewError) -> web.Response:
    body = json.dumps({"error": exc.code, "message": exc.public_message})
    return web.Response(
        status=exc.status,
        text=body,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **exc.headers()},
    )


class Traffic:
    """Requests in flight (probes aside), and a wait for there to be none."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self._idle.set()

    async def idle(self, within: float) -> bool:
        """Wait until no request is in flight; False if `within` seconds pass first."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


_TRAFFIC = web.AppKey("traffic", Traffic)
_CACHE_LABELS = {"HIT": "hit", "MISS": "miss"}


@web.middleware
async def _errors_and_logging(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request_id_for(request.headers.get(REQUEST_ID))
    request[_REQUEST_ID] = request_id
    context = current_request.set(request_id)
    probe = request.raw_path in PROBES
    app = request.app
    if not probe:
        app[_TRAFFIC].enter()
    code, cause, overload = "ok", "", None
    try:
        response = await handler(request)
    except web.HTTPMethodNotAllowed:
        response = error_response(MethodNotAllowed())
        code = MethodNotAllowed.code
    except web.HTTPNotFound:
        response = error_response(NotFound())
        code = NotFound.code
    except PreviewError as exc:
        response = error_response(exc)
        code, cause = exc.code, exc.detail
        overload = exc.reason if isinstance(exc, Overloaded) else None
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.raw_path)
        response = error_response(PreviewError())
        code = PreviewError.code
    finally:
        current_request.reset(context)
        if not probe:
            app[_TRAFFIC].leave()
    response.headers["Server"] = SERVER_NAME
    response.headers[REQUEST_ID] = request_id
    seconds = time.perf_counter() - started
    x_cache = response.headers.get("X-Cache", "-")
    if not probe:
        cache = _CACHE_LABELS.get(x_cache)
        sent = 0
        if cache is not None and request.method != "HEAD" and isinstance(response, web.Response):
            body = response.body
            sent = len(body) if isinstance(body, bytes) else getattr(body, "size", None) or 0
        operation = request.get(_OPERATION)
        app[_METRICS].request(response.status, code, cache, seconds, sent, overload, operation)
    app[_ACCESS_LOG].record(
        request.method,
        request.raw_path,
        response.status,
        x_cache,
        seconds * 1000,
        error="" if code == "ok" else code,
        cause=cause,
        request_id=request_id,
    )
    return response


async def _flush_access_log(app: web.Application) -> None:
    app[_ACCESS_LOG].flush()


async def _health(request: web.Request) -> web.Response:
    health = dataclasses.asdict(request.app[_SERVICE].health())
    body = {name: value for name, value in health.items() if value is not None}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _ready(request: web.Request) -> web.Response:
    readiness = request.app[_SERVICE].readiness()
    return web.json_response(
        {"ready": readiness.ready, "reasons": list(readiness.reasons)},
        status=200 if readiness.ready else 503,
        headers={"Cache-Control": "no-store"},
    )


async def _preview(operation: str, request: web.Request) -> web.Response:
    """A preview route: `operation` is the one its path names (fill or fit)."""
    request[_OPERATION] = operation
    config = request.app[_SETTINGS]
    path = request.raw_path
    if config.signing_key:
        path = signing.verify(path, config.signing_key, config.signing_salt)
    negotiate = request.app[_NEGOTIATE]
    if negotiate is None:
        options = request.app[_PARSE](path)
    else:  # several Accept lines are one list (RFC 9110 5.3)
        accept = ", ".join(request.headers.getall("Accept", [])) or None
        options = request.app[_PARSE](path, output=negotiate(accept))
    preview = await request.app[_SERVICE].get(
        options,
        request.headers.items(),
        request.remote,
        config.request_timeout,
        request[_REQUEST_ID],
    )
    return _preview_response(request, preview, config)


async def _unknown_signed_path(request: web.Request) -> web.Response:
    """A path shaped like a signed one, for no operation previewer has."""
    raise InvalidRequest("Use /{signature}/{fill or fit}/{width}/{height}/{source address}.")


def _preview_response(request: web.Request, preview: Preview, config: ServerConfig) -> web.Response:
    headers = {
        "ETag": preview.etag,  # stored in header form: the setter would unquote and requote it
        "Cache-Control": (
            f"public, max-age={config.max_age}" if preview.shareable else "private, no-store"
        ),
        "X-Cache": "HIT" if preview.hit else "MISS",
        "X-Content-Type-Options": "nosniff",
    }
    if request.app[_NEGOTIATE] is not None:
        headers["Vary"] = "Accept"
    if _not_modified(request, preview):
        response = web.Response(status=304, headers=headers)
    elif len(preview.body) > SEND_SLICE:
        response = web.Response(
            body=_SlicedBody(preview.body, content_type=preview.content_type), headers=headers
        )
    else:
        response = web.Response(
            body=preview.body, content_type=preview.content_type, headers=headers
        )
    response.last_modified = int(preview.last_modified)  # whole seconds, as compared below
    return response


class _SlicedBody(BytesPayload):
    """A large body, written a slice at a time, each after the previous one drained.

    The slices are views of the preview's bytes (shared with the cache's
    memory and with every other request for it), so a client that reads
    slowly, or not at all, holds no copy of the body: the transport's buffer
    stays within a slice of its high-water mark, and ConnectionGuard cuts a
    response that makes no progress.
    """

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = memoryview(self._value)[:content_length]
        for start in range(0, len(view), SEND_SLICE):
            await writer.write(view[start : start + SEND_SLICE])  # drains past 64 KiB queued


def _not_modified(request: web.Request, preview: Preview) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since.

    Both are weak comparisons: `W/"x"` matches `"x"`, and `*` matches any
    preview. An unparseable date is ignored, as if it were absent.
    """
    if hdrs.IF_NONE_MATCH in request.headers:
        etag = preview.etag.strip('"')
        return any(tag.value in ("*", etag) for tag in request.if_none_match or ())
    since = request.if_modified_since
    return since is not None and int(preview.last_modified) <= since.timestamp()


def _refusal(exc: HttpProcessingError) -> PreviewError:
    """The error for a request aiohttp's parser refused; nothing of the request is echoed."""
    if isinstance(exc, LineTooLong):  # its arguments: (the line's start, the limit passed)
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == MAX_REQUEST_TARGET:
            return UriTooLong(detail=f"request target over {MAX_REQUEST_TARGET} bytes")
        return HeaderTooLarge(detail=f"a header field over {MAX_HEADER_FIELD} bytes")
    return InvalidRequest(detail=f"unparseable request ({type(exc).__name__})")


def _refusal_bytes() -> tuple[bytes, bytes]:
    """The whole answer to a connection refused at the cap: 503, then the connection closes."""
    error = Overloaded(reason="connections")
    body = json.dumps({"error": error.code, "message": error.public_message}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        f"Retry-After: {error.retry_after}\r\n"
        f"Server: {SERVER_NAME}\r\n"
        "Connection: close\r\n"
    )
    return head.encode(), body


class _Connection(web.RequestHandler):
    """aiohttp's protocol for one client connection, with three changes.

    - A client that half-closes after its request still gets its answers.
    - A request the parser refuses gets the JSON error format and one
      access-log line, never aiohttp's text page that echoes the request.
    - It reports to the `ConnectionGuard` (http/connections.py) when it opens,
      receives a whole request head, goes idle after a response, drains its
      send buffer and closes, and the guard cuts it when it passes a bound.
    """

    def __init__(
        self,
        manager: web.Server,
        *,
        refusals: AccessLog,
        metrics: Recorder,
        guard: ConnectionGuard,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._refusals = refusals
        self._metrics = metrics
        self._guard = guard
        self._client_done = False  # the client has sent all it will send

    # --- ConnectionGuard's view (connections.Link) ---------------------------------

    def cut(self) -> None:
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and (self.unsent() or _queued_in_kernel(sock)):
            # Reset rather than close: a FIN would wait behind the unread bytes in
            # the kernel's send buffer (up to a few MiB) for as long as the client
            # keeps acknowledging, and the socket would outlive the connection.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        transport.abort()

    def unsent(self) -> int:
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    # --- the events the guard hears of ---------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._guard.opened(self) and self.transport is not None:
            head, body = _REFUSAL
            request_id = new_request_id().encode()
            self.transport.write(head + b"X-Request-Id: " + request_id + b"\r\n\r\n" + body)
            self.force_close()  # closes once the answer is written

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and self._guard.is_idle(self):
            self._guard.head_started(self)
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            self._guard.busy(self)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._guard.progress(self)

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio: bool | None
        """The client has shut down its sending side; keep ours open if answers are due.

        Returning false lets asyncio close the connection at once: right when
        the connection is idle or holds only part of a request.
        """
        if not self._messages and self._waiter is not None and not self._waiter.done():
            return False
        self._client_done = True
        self._lingering_time = 0.0  # no unread body can arrive any more: never wait for one
        if not self._messages:
            self.close()  # the request being handled is the last one: close after it
        return True

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if self._client_done and not self._messages:
            resp.force_close()  # say `Connection: close`: no request can follow
        finished = await super().finish_response(request, resp, start_time)
        if not self._messages and resp.keep_alive and not (self._close or self._force_close):
            self._guard.idle(self)  # waits for its next request
        return finished

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        error = _refusal(exc)
        request_id = new_request_id()  # nothing of an unparsed request is trusted
        # the detail names no content of the request
        self._refusals.record(
            "-",
            "-",
            error.status,
            "-",
            0.0,
            error=error.code,
            cause=error.detail,
            request_id=request_id,
        )
        self._metrics.request(error.status, error.code, None, 0.0, 0)
        response = error_response(error)
        response.headers["Server"] = SERVER_NAME
        response.headers[REQUEST_ID] = request_id
        response.force_close()
        return response


_REFUSAL = _refusal_bytes()
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST and frees the socket


def _queued_in_kernel(sock: Any) -> bool:
    """Has the kernel bytes of this socket not yet acknowledged by the client? (Linux.)"""
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return True  # unknown: a reset costs nothing a cut connection still needs
    return bool(struct.unpack("i", queued)[0])


class _Server(web.Server):
    """aiohttp's server, making `_Connection` protocols."""

    def __init__(
        self, made: web.Server, refusals: AccessLog, metrics: Recorder, guard: ConnectionGuard
    ) -> None:
        # the arguments aiohttp's runner gave the server it made
        super().__init__(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )
        self._refusals = refusals
        self._metrics = metrics
        self._guard = guard

    def __call__(self) -> _Connection:
        return _Connection(
            self,
            loop=self._loop,
            refusals=self._refusals,
            metrics=self._metrics,
            guard=self._guard,
            **self._kwargs,
        )


class _Runner(web.AppRunner):
    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._guard = guard

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Server(made, self.app[_ACCESS_LOG], self.app[_METRICS], self._guard)


class HttpServer:
    """The listening side: binds, serves `app`, bounds its connections, drains on stop.

    `guard` holds the connection bounds (http/connections.py); the server sweeps
    it every `guard.limits.tick` seconds. `address` replaces the config's
    host and port (the metrics port).
    """

    def __init__(
        self,
        app: web.Application,
        config: ServerConfig,
        guard: ConnectionGuard,
        *,
        address: tuple[str, int] | None = None,
    ) -> None:
        self._config = config
        self._address = address or (config.host, config.port)
        self._traffic = app[_TRAFFIC]
        self.guard = guard
        self._sweeper: asyncio.Task[None] | None = None
        self._runner = _Runner(
            app,
            guard,
            access_log=None,  # the middleware logs one line per request
            handle_signals=False,  # cli.serve owns the signals
            shutdown_timeout=config.shutdown_timeout,
            max_line_size=MAX_REQUEST_TARGET,
            max_field_size=MAX_HEADER_FIELD,
            max_headers=MAX_HEADERS,
            keepalive_timeout=_NEVER,  # ConnectionGuard closes idle connections
        )
        self.url = ""

    async def start(self) -> str:
        """Start listening; returns the URL actually bound (port 0 picks one)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, *self._address, backlog=LISTEN_BACKLOG)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{port}"
        self._sweeper = asyncio.ensure_future(self._sweep())
        return self.url

    async def _sweep(self) -> None:
        tick = self.guard.limits.tick
        while True:
            await asyncio.sleep(tick)
            self.guard.sweep()

    async def stop(self) -> None:
        """Drain, then close: requests in flight get `shutdown_timeout` seconds in all.

        Until they are answered the server still listens (a load balancer
        asking /ready meanwhile hears 503, see `PreviewService.drain`); then
        it stops accepting and closes its connections, giving what is left
        the rest of the time before cancelling it.
        """
        deadline = time.monotonic() + self._config.shutdown_timeout
        if self._traffic.in_flight:
            log.info("draining: %d requests in flight", self._traffic.in_flight)
            await self._traffic.idle(self._config.shutdown_timeout)
        # aiohttp reads the runner's shutdown timeout when it closes the connections,
        # and takes 0 for no limit at all: when the drain used the whole time, what is
        # left is cut at once
        self._runner._shutdown_timeout = max(_CUT_AT_ONCE, deadline - time.monotonic())
        await self._runner.cleanup()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
