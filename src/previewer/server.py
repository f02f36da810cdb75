"""HTTP routes, response headers, and the one place errors become responses.

The only module that imports the web framework (aiohttp.web).

    GET|HEAD /fill/{width}/{height}/{source}   the preview
    GET|HEAD /{signature}/fill/...             the same, when URL signing is on
    GET|HEAD /health                           200 while the service can serve

Every error is JSON `{"error": code, "message": sentence}` with
`Cache-Control: no-store`. A PreviewError keeps its status; anything else is
a bug, logged with its traceback and answered 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from previewer import __version__, signing
from previewer.accesslog import AccessLog
from previewer.config import ImagingConfig, ServerConfig
from previewer.errors import (
    MethodNotAllowed,
    NotFound,
    PreviewError,
    RequestTimeout,
)
from previewer.options import PreviewOptions, parse_request
from previewer.service import Preview, PreviewService

log = logging.getLogger("previewer.access")

SERVER_NAME = f"previewer/{__version__}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SERVICE = web.AppKey("service", PreviewService)
_SETTINGS = web.AppKey("settings", ServerConfig)
_ACCESS_LOG = web.AppKey("access_log", AccessLog)
_PARSE: web.AppKey[Callable[[str], PreviewOptions]] = web.AppKey("parse")
# Paths parsed lately, remembered: hits repeat them. Errors are not remembered;
# a path is at most 8 KB (aiohttp's request-line limit), so the memo stays small.
PARSE_MEMO_SIZE = 1024


def build_app(
    service: PreviewService,
    server_config: ServerConfig,
    imaging_config: ImagingConfig,
    access_log: AccessLog | None = None,
) -> web.Application:
    """The routes; `access_log` defaults to one on stderr that follows `--access-log`."""
    app = web.Application(middlewares=[_errors_and_logging])
    app[_SERVICE] = service
    app[_SETTINGS] = server_config
    app[_ACCESS_LOG] = access_log or AccessLog(successes=server_config.access_log)
    app.on_cleanup.append(_flush_access_log)
    parse: Callable[[str], PreviewOptions] = functools.lru_cache(maxsize=PARSE_MEMO_SIZE)(
        functools.partial(
            parse_request,
            max_dimension=imaging_config.max_dimension,
            gravity=imaging_config.gravity,
            quality=imaging_config.quality,
        )
    )
    app[_PARSE] = parse
    app.router.add_get("/health", _health)
    app.router.add_get("/fill{tail:.*}", _fill)
    if server_config.signing_key:
        app.router.add_get("/{signature}/fill{tail:.*}", _fill)
    return app


def error_response(exc: PreviewError) -> web.Response:
    body = json.dumps({"error": exc.code, "message": exc.public_message})
    return web.Response(
        status=exc.status,
        text=body,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **exc.headers()},
    )


@web.middleware
async def _errors_and_logging(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    cause = ""
    try:
        response = await handler(request)
    except web.HTTPMethodNotAllowed:
        response = error_response(MethodNotAllowed())
    except web.HTTPNotFound:
        response = error_response(NotFound())
    except PreviewError as exc:
        response = error_response(exc)
        cause = f" error={exc.code} cause={exc.detail!r}"
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.raw_path)
        response = error_response(PreviewError())
        cause = " error=internal"
    response.headers["Server"] = SERVER_NAME
    request.app[_ACCESS_LOG].record(
        request.method,
        request.raw_path,
        response.status,
        response.headers.get("X-Cache", "-"),
        (time.perf_counter() - started) * 1000,
        cause,
    )
    return response


async def _flush_access_log(app: web.Application) -> None:
    app[_ACCESS_LOG].flush()


async def _health(request: web.Request) -> web.Response:
    service = request.app[_SERVICE]
    caches = {"cache": service.previews}
    if service.sources is not None:
        caches["source_cache"] = service.sources
    body: dict[str, object] = {
        name: {
            "entries": len(cache.index),
            "bytes": cache.index.total_bytes,
            "max_bytes": cache.index.max_bytes,
            "loaded": cache.loaded.is_set(),
            "memory_entries": len(cache.hot) if cache.hot is not None else 0,
            "memory_bytes": cache.hot.total_bytes if cache.hot is not None else 0,
            **dataclasses.asdict(cache.stats),
        }
        for name, cache in caches.items()
    }
    body["status"] = "ok"
    body["renders_in_progress"] = service.renders_in_progress
    body["counters"] = {
        **dataclasses.asdict(service.counters),
        "stored": service.previews.stats.stored,
        "abandoned": service.abandoned,
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _fill(request: web.Request) -> web.Response:
    config = request.app[_SETTINGS]
    path = request.raw_path
    if config.signing_key:
        path = signing.verify(path, config.signing_key, config.signing_salt)
    options = request.app[_PARSE](path)
    service = request.app[_SERVICE]
    preview = service.cached(options)  # a hit in memory needs no deadline
    if preview is None:
        try:
            async with asyncio.timeout(config.request_timeout):
                preview = await service.get(options, list(request.headers.items()), request.remote)
        except TimeoutError:
            raise RequestTimeout(detail=f"no preview within {config.request_timeout}s") from None
    return _preview_response(request, preview, config)


def _preview_response(request: web.Request, preview: Preview, config: ServerConfig) -> web.Response:
    headers = {
        "ETag": preview.etag,
        "Last-Modified": _http_date(int(preview.last_modified)),
        "Cache-Control": (
            f"public, max-age={config.max_age}" if preview.shareable else "private, no-store"
        ),
        "X-Cache": "HIT" if preview.hit else "MISS",
        "X-Content-Type-Options": "nosniff",
    }
    if _etag_matches(request.headers.getall("If-None-Match", []), preview.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=preview.body, content_type=preview.content_type, headers=headers)


@functools.lru_cache(maxsize=1024)
def _http_date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


def _etag_matches(if_none_match: list[str], etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison against each listed tag, or `*`."""
    for value in if_none_match:
        for tag in value.split(","):
            tag = tag.strip()
            if tag == "*" or tag.removeprefix("W/") == etag:
                return True
    return False


class _MalformedRequestFilter(logging.Filter):
    """aiohttp logs each unparseable request with a traceback at ERROR.

    Garbage from clients is not a server error, and a traceback per request
    would let anyone flood the log: keep one short line at DEBUG instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            log.debug("malformed request refused: %s", str(exc).splitlines()[0])
            return False
        return True


_MALFORMED_FILTER = _MalformedRequestFilter()


class HttpServer:
    """The listening side: binds, serves `app`, and drains requests on stop."""

    def __init__(self, app: web.Application, config: ServerConfig) -> None:
        logging.getLogger("aiohttp.server").addFilter(_MALFORMED_FILTER)
        self._config = config
        self._runner = web.AppRunner(
            app,
            access_log=None,  # the middleware logs one line per request
            handle_signals=False,  # cli.serve owns the signals
            shutdown_timeout=config.shutdown_timeout,
        )
        self.url = ""

    async def start(self) -> str:
        """Start listening; returns the URL actually bound (port 0 picks one)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._config.host, self._config.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop accepting, then wait up to shutdown_timeout for requests in flight."""
        await self._runner.cleanup()
