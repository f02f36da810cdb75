"""What real browsers, CDNs and HTTP clients send: Accept, half-closes, long requests, dates."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
from aiohttp import web

import images
from conftest import Service, ServiceFactory, ServiceProcess
from origin import Gate, NginxOrigin, Origin, RouteHandler
from previewer import signing
from previewer.fetch.headers import DECODABLE_TYPES
from previewer.http.server import MAX_HEADER_FIELD, MAX_REQUEST_TARGET
from previewer.render.renderer import EmbeddedRenderer

pytestmark = pytest.mark.both_modes

WIDTH, HEIGHT = 120, 90

# The Accept headers browsers send for images (<img>, srcset, <picture>).
CHROMIUM = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
CHROMIUM_JXL = "image/jxl," + CHROMIUM  # with JPEG XL decoding enabled
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
SAFARI = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
CURL = "*/*"  # also python-requests, httpx and wget
CLIENT_ACCEPTS = {
    "chromium": CHROMIUM,
    "chromium-jxl": CHROMIUM_JXL,
    "firefox": FIREFOX,
    "safari": SAFARI,
    "curl": CURL,
}
UNREADABLE = ("image/jxl", "image/svg+xml", "image/apng", "image/heic", "image/heif", "video/")


def _explicitly_accepted(accept: str, media_type: str) -> bool:
    """Is `media_type` listed by name with a q above 0? (How image CDNs decide.)"""
    for element in accept.split(","):
        name, *params = (part.strip() for part in element.split(";"))
        if name.lower() != media_type:
            continue
        q = next((p.split("=", 1)[1] for p in params if p.lower().startswith("q=")), "1")
        return float(q) > 0
    return False


# What the negotiating photo origin can answer, best first, like an image CDN:
# AVIF when the request names it, else WebP, else JPEG.
PHOTO_FORMATS = ("image/avif", "image/webp", "image/jpeg")
_ENCODERS = {
    "image/avif": lambda: images.avif(400, 300),
    "image/webp": lambda: images.webp(400, 300),
    "image/jpeg": lambda: images.jpeg(400, 300),
}


def _photo_variants() -> list[tuple[str, bytes]]:
    return [(kind, _ENCODERS[kind]()) for kind in PHOTO_FORMATS]


def negotiating(variants: list[tuple[str, bytes]], served: list[str]) -> RouteHandler:
    """An origin route choosing the first variant the request's Accept names."""

    async def handler(request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        media_type, body = next(
            ((kind, data) for kind, data in variants[:-1] if _explicitly_accepted(accept, kind)),
            variants[-1],
        )
        served.append(media_type)
        return web.Response(body=body, content_type=media_type, headers={"Vary": "Accept"})

    return handler


def _forwarded_accepts(origin: Origin, path: str) -> list[list[str]]:
    return [
        [v for n, v in r.headers if n.lower() == "accept"]
        for r in origin.requests
        if r.path == path
    ]


@pytest.fixture(autouse=True)
def _access_level(caplog: pytest.LogCaptureFixture) -> None:
    """The access log follows the level of its logger, as `--log-level info` sets it."""
    caplog.set_level(logging.INFO, logger="previewer.access")


# --- Accept: an origin that picks the format --------------------------------------------


@pytest.mark.parametrize("client", CLIENT_ACCEPTS)
async def test_every_browser_gets_a_preview_from_a_negotiating_photo_origin(
    service: Service, origin: Origin, client: str
) -> None:
    served: list[str] = []
    variants = _photo_variants()
    origin.route("/photo", negotiating(variants, served))
    status, response, body = await service.get(
        f"/fill/{WIDTH}/{HEIGHT}/{origin.authority}/photo", {"Accept": CLIENT_ACCEPTS[client]}
    )
    assert status == 200, body
    preview = images.decode(body)
    assert (preview.width, preview.height) == (WIDTH, HEIGHT)
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "public, max-age=31536000"  # Vary: Accept is harmless
    # the origin saw only what previewer reads, in the client's order
    ((value,),) = _forwarded_accepts(origin, "/photo")
    assert not any(kind in value for kind in UNREADABLE)
    sent = [e for e in CLIENT_ACCEPTS[client].split(",") if not e.startswith(UNREADABLE)]
    assert value.split(",") == sent
    assert served == [variants[0][0] if client != "curl" else "image/jpeg"]


async def test_a_vector_origin_sends_the_raster_variant(service: Service, origin: Origin) -> None:
    """Every browser names image/svg+xml: forwarded as is, it would get SVG (422)."""
    served: list[str] = []
    variants = [
        ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'),
        ("image/png", images.png_alpha(160, 120)),
    ]
    origin.route("/logo", negotiating(variants, served))
    for name in ("chromium", "firefox", "safari"):
        status, response, body = await service.get(
            f"/fill/40/30/{origin.authority}/logo?{name}", {"Accept": CLIENT_ACCEPTS[name]}
        )
        assert status == 200, (name, body)
        assert response["Content-Type"] == "image/png"
        assert images.decode(body).width == 40
    assert served == ["image/png"] * 3


async def test_an_accept_with_nothing_readable_names_what_previewer_reads(
    service: Service, origin: Origin
) -> None:
    origin.add("/p.jpg", images.jpeg(200, 150))
    status, _, _ = await service.get(
        f"/fill/20/20/{origin.authority}/p.jpg", {"Accept": "image/jxl, text/html"}
    )
    assert status == 200
    assert _forwarded_accepts(origin, "/p.jpg") == [[",".join(DECODABLE_TYPES)]]


# --- paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/fillx/100/100/x.jpg",
        "/filler",
        "/fill.jpg",
        "/Fill/100/100/x.jpg",
        "/healthz",
        "/health/x",
        "/favicon.ico",
        "/robots.txt",
        "/index.html",  # "/" is the playground page (test_playground_routes.py)
        "/playground",
        "/x/fill/100/100/example.com/a.jpg",
        "//fill/100/100/example.com/a.jpg",
    ],
)
async def test_paths_other_than_the_endpoints_are_404(service: Service, path: str) -> None:
    for method in ("GET", "HEAD"):
        status, headers, body = await service.request(method, path)
        assert status == 404, (method, path)
        assert headers["Cache-Control"] == "no-store"
        if method == "GET":
            assert json.loads(body)["error"] == "not_found"


KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        # shaped like a signed path, for no known operation: malformed
        (signing.signed_path("/fillx/10/10/example.com/a.jpg", KEY), 400, "bad_request"),
        (signing.signed_path("/resize/10/10/example.com/a.jpg", KEY), 400, "bad_request"),
        ("/" + "A" * 43 + "/anything", 400, "bad_request"),
        # a well-signed /fill path that does not parse
        (signing.signed_path("/fill/10/abc/example.com/a.jpg", KEY), 400, "bad_request"),
        (signing.signed_path("/fill/10/10", KEY), 400, "bad_request"),
        # /fill paths without a good signature
        ("/fill/10/10/example.com/a.jpg", 403, "bad_signature"),
        ("/short/fill/10/10/example.com/a.jpg", 403, "bad_signature"),
        ("/" + "A" * 43 + "/fill/10/10/example.com/a.jpg", 403, "bad_signature"),
        # neither
        ("/favicon.ico", 404, "not_found"),
        ("/short/resize/10/10/example.com/a.jpg", 404, "not_found"),
        ("/fillx/10/10/example.com/a.jpg", 404, "not_found"),
    ],
)
async def test_paths_when_signing_is_on(
    start_service: ServiceFactory, path: str, status: int, code: str
) -> None:
    service = await start_service(signing_key=KEY.hex())
    got, headers, body = await service.get(path)
    assert (got, json.loads(body)["error"]) == (status, code), path
    assert headers["Cache-Control"] == "no-store"
    assert (await service.get("/health"))[0] == 200


# --- conditional requests ---------------------------------------------------------------


async def test_if_modified_since_without_if_none_match(service: Service, origin: Origin) -> None:
    origin.add("/p.jpg", images.jpeg(200, 150))
    path = f"/fill/50/50/{origin.authority}/p.jpg"
    _, headers, _ = await service.get(path)
    modified = parsedate_to_datetime(headers["Last-Modified"]).timestamp()
    fetches = origin.hits["/p.jpg"]

    def date(offset: float) -> str:
        return formatdate(modified + offset, usegmt=True)

    for since in (date(0), date(3600), date(86400 * 365)):
        for method in ("GET", "HEAD"):
            status, h304, body = await service.request(method, path, {"If-Modified-Since": since})
            assert (status, body) == (304, b""), (method, since)
            assert h304["ETag"] == headers["ETag"]
            assert h304["Last-Modified"] == headers["Last-Modified"]
            assert h304["Cache-Control"] == headers["Cache-Control"]
    for since in (date(-1), date(-86400), "not a date", ""):
        status, _, body = await service.get(path, {"If-Modified-Since": since})
        assert status == 200, since
        assert images.decode(body).width == 50
    assert origin.hits["/p.jpg"] == fetches


async def test_if_none_match_decides_over_if_modified_since(
    service: Service, origin: Origin
) -> None:
    origin.add("/p.jpg", images.jpeg(200, 150))
    path = f"/fill/50/50/{origin.authority}/p.jpg"
    _, headers, _ = await service.get(path)
    modified = parsedate_to_datetime(headers["Last-Modified"]).timestamp()
    recent = formatdate(modified + 60, usegmt=True)
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    cases = [
        ({"If-None-Match": '"other"', "If-Modified-Since": recent}, 200),
        ({"If-None-Match": headers["ETag"], "If-Modified-Since": old}, 304),
        ({"If-None-Match": "W/" + headers["ETag"], "If-Modified-Since": old}, 304),
        ({"If-None-Match": "*", "If-Modified-Since": old}, 304),
        ({"If-None-Match": "garbage", "If-Modified-Since": recent}, 200),
    ]
    for request_headers, expected in cases:
        assert (await service.get(path, request_headers))[0] == expected, request_headers


# --- half-closed connections ------------------------------------------------------------


def _exchange(url: str, requests: bytes, *, half_close: bool = True) -> bytes:
    """Send raw `requests`, shut down the sending side, and read until the server closes.

    A server that kept the connection open would fail this on the socket's timeout.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(requests)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a stream of HTTP/1.1 responses with Content-Length bodies."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        out.append((int(status_line.split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return out


def _get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: previewer", *extra, "", ""]).encode()


def _assert_preview(response: tuple[int, dict[str, str], bytes], cache: str) -> None:
    status, headers, body = response
    assert status == 200
    assert headers["x-cache"] == cache
    preview = images.decode(body)
    assert (preview.width, preview.height) == (WIDTH, HEIGHT)


async def test_a_half_closed_client_gets_its_miss_and_its_hit(
    service: Service, origin: Origin
) -> None:
    origin.add("/p.jpg", images.jpeg(400, 300))
    path = f"/fill/{WIDTH}/{HEIGHT}/{origin.authority}/p.jpg"
    for cache in ("MISS", "HIT"):
        (response,) = _responses(await asyncio.to_thread(_exchange, service.url, _get(path)))
        _assert_preview(response, cache)


async def test_a_client_half_closing_during_a_slow_miss_gets_it(
    service: Service, origin: Origin
) -> None:
    gate = Gate(images.jpeg(400, 300))
    origin.route("/slow.jpg", gate.handler)
    path = f"/fill/{WIDTH}/{HEIGHT}/{origin.authority}/slow.jpg"
    exchange = asyncio.ensure_future(asyncio.to_thread(_exchange, service.url, _get(path)))
    async with asyncio.timeout(30):
        await gate.all_arrived.wait()  # the client has long since half-closed
    assert not exchange.done()
    gate.release()
    (response,) = _responses(await exchange)
    _assert_preview(response, "MISS")
    assert response[1]["connection"] == "close"  # its end of input came before the answer


async def test_a_half_closed_client_gets_every_pipelined_answer(
    service: Service, origin: Origin
) -> None:
    origin.add("/p.jpg", images.jpeg(400, 300))
    path = f"/fill/{WIDTH}/{HEIGHT}/{origin.authority}/p.jpg"
    raw = await asyncio.to_thread(_exchange, service.url, _get(path) + _get("/health") + _get(path))
    first, health, last = _responses(raw)
    _assert_preview(first, "MISS")
    assert health[0] == 200
    assert json.loads(health[2])["status"] == "ok"
    _assert_preview(last, "HIT")


async def test_a_half_close_with_nothing_to_answer_closes_at_once(service: Service) -> None:
    # idle, and with only part of a request: nothing can be answered
    assert await asyncio.to_thread(_exchange, service.url, b"") == b""
    assert await asyncio.to_thread(_exchange, service.url, b"GET /health HTTP/1.1\r\nHo") == b""


async def test_a_client_that_keeps_its_side_open_is_answered_as_before(
    service: Service, origin: Origin
) -> None:
    origin.add("/p.jpg", images.jpeg(400, 300))
    raw = await asyncio.to_thread(
        _exchange,
        service.url,
        _get(f"/fill/{WIDTH}/{HEIGHT}/{origin.authority}/p.jpg", "Connection: close"),
        half_close=False,
    )
    (response,) = _responses(raw)
    _assert_preview(response, "MISS")


@pytest.mark.subprocess
@pytest.mark.nginx
def test_a_half_closed_client_is_answered_by_the_served_process(
    service_process: Callable[..., ServiceProcess], nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    """`previewer serve` runs on uvloop, whose transports are not asyncio's."""
    process = service_process(["--cache-dir", str(tmp_path), "--allow-private-networks"])
    path = f"/fill/{WIDTH}/{HEIGHT}/{nginx_origin.authority}/_gopher_original_1024x504.jpg"
    for cache in ("MISS", "HIT"):
        (response,) = _responses(_exchange(process.url, _get(path)))
        _assert_preview(response, cache)


# --- over-long and malformed requests ---------------------------------------------------

SECRET = "s3cr3t-session-value"


def _refused(raw: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
    (response,) = _responses(raw)
    status, headers, body = response
    assert headers["content-type"].startswith("application/json")
    assert headers["cache-control"] == "no-store"
    assert SECRET.encode() not in raw
    assert b"aaaa" not in raw
    payload = json.loads(body)
    assert set(payload) == {"error", "message"}
    return status, headers, payload


@pytest.mark.parametrize("half_close", [False, True])
async def test_an_over_long_request_target_is_414(
    service: Service, logs: Logs, half_close: bool
) -> None:
    path = f"/fill/10/10/example.com/{SECRET}/" + "a" * MAX_REQUEST_TARGET
    raw = await asyncio.to_thread(_exchange, service.url, _get(path), half_close=half_close)
    status, _, payload = _refused(raw)
    assert (status, payload["error"]) == (414, "uri_too_long")
    logs.assert_one_line("status=414", "error=uri_too_long", f"over {MAX_REQUEST_TARGET} bytes")


async def test_a_request_target_at_the_limit_is_served(service: Service) -> None:
    path = "/fill/10/10/example.com/"
    path += "a" * (MAX_REQUEST_TARGET - len(path))
    (response,) = _responses(await asyncio.to_thread(_exchange, service.url, _get(path)))
    assert response[0] == 502  # parsed and fetched: example.com does not resolve here


@pytest.mark.parametrize("name", ["Cookie", "X-Long"])
async def test_an_over_large_header_is_431(service: Service, logs: Logs, name: str) -> None:
    value = SECRET + "a" * MAX_HEADER_FIELD
    raw = await asyncio.to_thread(_exchange, service.url, _get("/health", f"{name}: {value}"))
    status, _, payload = _refused(raw)
    assert (status, payload["error"]) == (431, "header_too_large")
    logs.assert_one_line("status=431", "error=header_too_large", f"over {MAX_HEADER_FIELD} bytes")


async def test_a_16k_cookie_within_the_limit_is_served(service: Service) -> None:
    cookie = "Cookie: c=" + "a" * (MAX_HEADER_FIELD - len("Cookie") - 10)
    (response,) = _responses(await asyncio.to_thread(_exchange, service.url, _get("/x", cookie)))
    assert response[0] == 404


@pytest.mark.parametrize(
    "raw",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + SECRET.encode() + b"\r\n\r\n",  # TLS
        b"GET /health HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Header" + SECRET.encode() + b"\r\n\r\n",
        _get("/health", *(f"X-{i}: {SECRET}" for i in range(200))),
    ],
)
async def test_other_malformed_requests_are_400_json(
    service: Service, logs: Logs, raw: bytes
) -> None:
    status, _, payload = _refused(await asyncio.to_thread(_exchange, service.url, raw))
    assert (status, payload["error"]) == (400, "bad_request")
    logs.assert_one_line("status=400", "error=bad_request")


class Logs:
    """The access lines written to stderr, and the records sent through logging."""

    def __init__(self, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
        self.capsys = capsys
        self.caplog = caplog

    def assert_one_line(self, *parts: str) -> None:
        err = self.capsys.readouterr().err
        lines = [line for line in err.splitlines() if all(part in line for part in parts)]
        assert len(lines) == 1, err
        assert " INFO previewer.access - - " in lines[0]
        assert SECRET not in err
        assert not [r for r in self.caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert not any(SECRET in r.getMessage() for r in self.caplog.records)


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Logs:
    caplog.set_level(logging.DEBUG)
    return Logs(capsys, caplog)


# --- bugs ----------------------------------------------------------------------------------


# breaks the front's own render pool, which a front in broker mode does not have
@pytest.mark.embedded_only
async def test_a_bug_is_a_500_with_its_traceback_on_the_server_logger(
    service: Service, origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    origin.add("/p.jpg", images.jpeg(64, 48))
    # a render pool already shut down: submitting to it raises, which nothing expects
    renderer = service.running.service._renderer
    assert isinstance(renderer, EmbeddedRenderer)
    renderer._executor.shutdown()
    with caplog.at_level(logging.ERROR):
        status, headers, body = await service.get(f"/fill/10/10/{origin.authority}/p.jpg")
    assert status == 500
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body)["error"] == "internal"
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.name == "previewer.http.server"
