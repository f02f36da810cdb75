"""Fetching sources through the running service, against a programmable origin."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest
from aiohttp import web

import images
from conftest import Service, ServiceFactory
from origin import Origin, StubResolver
from previewer.config.settings import load
from previewer.fetch.fetcher import Fetcher
from previewer.options import parse_source

pytestmark = pytest.mark.both_modes

JPEG = images.jpeg(300, 200)


# --- header forwarding ------------------------------------------------------------


async def _forwarded(
    service: Service, origin: Origin, headers: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    origin.add("/echo.jpg", JPEG)
    status, _, _ = await service.get(f"/fill/50/50/{origin.authority}/echo.jpg", headers)
    assert status == 200
    return origin.requests[-1].headers


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n.lower() == name.lower()]


async def test_end_to_end_headers_reach_the_origin_unchanged(
    service: Service, origin: Origin
) -> None:
    sent = [
        ("User-Agent", "Mozilla/5.0 (X11; test) Gecko/20100101"),
        ("Accept", "image/avif,image/webp,*/*;q=0.8"),
        ("Accept-Language", "en-GB,en;q=0.7"),
        ("Referer", "https://pages.example/article?id=1"),
        ("Cookie", "session=abc; theme=dark"),
        ("Authorization", "Bearer s3cr3t"),
        ("X-Custom-Trace", "trace-1"),
        ("X-Repeated", "one"),
        ("X-Repeated", "two"),
    ]
    got = await _forwarded(service, origin, sent)
    for name, value in sent:
        if name != "X-Repeated":
            assert _values(got, name) == [value], name
    assert _values(got, "X-Repeated") == ["one", "two"]


async def test_hop_by_hop_host_length_and_conditionals_are_not_forwarded(
    service: Service, origin: Origin
) -> None:
    sent = [
        ("Connection", "keep-alive, X-Hop-Secret"),
        ("X-Hop-Secret", "must not pass"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Authenticate", "Basic"),
        ("TE", "trailers"),
        ("Trailer", "Expires"),
        ("Upgrade", "websocket"),
        ("If-None-Match", '"abc"'),
        ("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ("If-Match", '"abc"'),
        ("If-Unmodified-Since", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ("If-Range", '"abc"'),
        ("Range", "bytes=0-99"),
        ("Host", "client-chosen.example"),
        ("X-Kept", "yes"),
    ]
    got = await _forwarded(service, origin, sent)
    names = {n.lower() for n, _ in got}
    for name in (
        "x-hop-secret",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
        "range",
        "transfer-encoding",
    ):
        assert name not in names, name
    assert _values(got, "Host") == [origin.authority]
    assert _values(got, "X-Kept") == ["yes"]
    assert _values(got, "Connection") != ["keep-alive, X-Hop-Secret"]


async def test_forwarding_adds_x_forwarded_for_via_and_identity_encoding(
    service: Service, origin: Origin
) -> None:
    got = await _forwarded(
        service,
        origin,
        [("X-Forwarded-For", "203.0.113.9"), ("Via", "1.1 cdn"), ("Accept-Encoding", "gzip, br")],
    )
    assert _values(got, "X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
    via = _values(got, "Via")
    assert len(via) == 1
    assert via[0].startswith("1.1 cdn, 1.1 previewer/")
    assert _values(got, "Accept-Encoding") == ["identity"]


async def test_drop_headers_narrows_the_forwarded_set(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service(drop_headers="Cookie,X-Internal")
    got = await _forwarded(
        service, origin, [("Cookie", "a=1"), ("X-Internal", "1"), ("X-Public", "2")]
    )
    assert _values(got, "Cookie") == []
    assert _values(got, "X-Internal") == []
    assert _values(got, "X-Public") == ["2"]


async def test_query_string_belongs_to_the_source(service: Service, origin: Origin) -> None:
    origin.add("/img.php", JPEG)
    status, _, _ = await service.get(f"/fill/20/20/{origin.authority}/img.php?id=5&b=%2F")
    assert status == 200
    assert origin.requests[-1].path == "/img.php?id=5&b=%2F"


async def test_percent_encoding_is_kept_as_sent(service: Service, origin: Origin) -> None:
    origin.add("/a%20b/c%2Fd.jpg", JPEG)
    status, _, _ = await service.get(f"/fill/20/20/{origin.authority}/a%20b/c%2Fd.jpg")
    assert status == 200
    assert origin.requests[-1].path == "/a%20b/c%2Fd.jpg"


async def test_explicit_http_scheme_and_merged_slash(service: Service, origin: Origin) -> None:
    origin.add("/s.jpg", JPEG)
    for prefix in ("http://", "http:/", "HTTP://"):
        status, _, body = await service.get(f"/fill/30/20/{prefix}{origin.authority}/s.jpg")
        assert status == 200, prefix
        assert images.decode(body).width == 30


async def test_names_go_through_the_resolver(service: Service, origin: Origin) -> None:
    origin.add("/named.jpg", JPEG)
    status, _, _ = await service.get(f"/fill/20/20/origin.test:{origin.port}/named.jpg")
    assert status == 200
    assert service.resolver.lookups["origin.test"] >= 1
    assert _values(origin.requests[-1].headers, "Host") == [f"origin.test:{origin.port}"]


# --- deadlines and limits ------------------------------------------------------------


async def test_slow_origin_gives_504(start_service: ServiceFactory, origin: Origin) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=JPEG)

    origin.route("/slow.jpg", stall)
    service = await start_service(fetch_timeout="0.3")
    try:
        status, _, body = await service.get(f"/fill/20/20/{origin.authority}/slow.jpg")
    finally:
        release.set()
    assert status == 504
    assert b'"source_timeout"' in body


async def test_dripping_body_hits_the_whole_fetch_deadline(
    start_service: ServiceFactory, origin: Origin
) -> None:
    stop = asyncio.Event()

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        await response.write(JPEG[:10])
        for byte in JPEG[10:]:
            if stop.is_set():
                break
            await response.write(bytes([byte]))
            await asyncio.sleep(0.05)  # the drip under test, not a wait for something
        return response

    origin.route("/drip.jpg", drip)
    service = await start_service(fetch_timeout="0.5")
    try:
        status, _, body = await service.get(f"/fill/20/20/{origin.authority}/drip.jpg")
    finally:
        stop.set()
    assert status == 504
    assert b'"source_timeout"' in body


async def test_declared_content_length_over_the_limit_is_refused(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service(max_source_bytes="10KB")
    origin.add("/big.jpg", images.jpeg(1024, 504))
    assert len(images.jpeg(1024, 504)) > 10_000
    status, _, body = await service.get(f"/fill/20/20/{origin.authority}/big.jpg")
    assert status == 422
    assert b'"source_too_large"' in body


async def test_body_without_content_length_is_capped_while_streaming(
    start_service: ServiceFactory, origin: Origin
) -> None:
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"\xff\xd8\xff" + b"\0" * 65533
        try:
            while sent < 50_000_000:
                await response.write(chunk)
                sent += len(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    origin.route("/endless.jpg", endless)
    service = await start_service(max_source_bytes="1MiB")
    status, _, body = await service.get(f"/fill/20/20/{origin.authority}/endless.jpg")
    assert status == 422
    assert b'"source_too_large"' in body
    assert sent < 50_000_000


async def test_pixel_bomb_is_refused_before_decoding(service: Service, origin: Origin) -> None:
    bomb = images.pixel_bomb_png(60000, 60000)
    assert len(bomb) < 10_000
    origin.add("/bomb.png", bomb, content_type="image/png")
    status, _, body = await service.get(f"/fill/20/20/{origin.authority}/bomb.png")
    assert status == 422
    assert b'"source_too_large"' in body


async def test_max_source_pixels_setting(start_service: ServiceFactory, origin: Origin) -> None:
    service = await start_service(max_source_pixels="10000")
    origin.add("/small.jpg", images.jpeg(100, 100))
    origin.add("/large.jpg", images.jpeg(101, 100))
    assert (await service.get(f"/fill/20/20/{origin.authority}/small.jpg"))[0] == 200
    assert (await service.get(f"/fill/20/20/{origin.authority}/large.jpg"))[0] == 422


# --- redirects ------------------------------------------------------------------------


def _redirect(origin: Origin, path: str, location: str, status: int = 302) -> None:
    origin.add(path, status=status, headers={"Location": location}, content_type="text/plain")


async def test_redirects_are_followed(service: Service, origin: Origin) -> None:
    origin.add("/final.jpg", JPEG)
    _redirect(origin, "/r1", "/r2", 301)
    _redirect(origin, "/r2", f"http://{origin.authority}/final.jpg", 307)
    status, _, body = await service.get(f"/fill/40/30/{origin.authority}/r1")
    assert status == 200
    assert images.decode(body).width == 40
    assert [r.path for r in origin.requests] == ["/r1", "/r2", "/final.jpg"]


async def test_too_many_redirects_gives_502(start_service: ServiceFactory, origin: Origin) -> None:
    service = await start_service(max_redirects="2")
    for i in range(5):
        _redirect(origin, f"/hop{i}", f"/hop{i + 1}")
    status, _, body = await service.get(f"/fill/20/20/{origin.authority}/hop0")
    assert status == 502
    assert b'"source_unreachable"' in body
    assert len(origin.requests) == 3


async def test_redirect_loop_gives_502(service: Service, origin: Origin) -> None:
    _redirect(origin, "/loop", "/loop")
    status, _, body = await service.get(f"/fill/20/20/{origin.authority}/loop")
    assert status == 502
    assert b'"source_unreachable"' in body


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254:1/latest/meta-data/",
        "file:///etc/passwd",
        "ftp://127.0.0.1/image.jpg",
        "http://[fe80::1]/x.jpg",
    ],
)
async def test_redirect_to_a_refused_address_gives_403(
    service: Service, origin: Origin, location: str
) -> None:
    _redirect(origin, "/evil", location)
    status, _, body = await service.get(f"/fill/20/20/{origin.authority}/evil")
    assert status == 403
    assert b'"source_forbidden"' in body


async def test_name_resolving_to_loopback_is_refused_at_connect(
    start_service: ServiceFactory, origin: Origin
) -> None:
    resolver = StubResolver({"public.test": ["127.0.0.1"]})
    service = await start_service(resolver=resolver, allow_private_networks="false")
    status, _, body = await service.get(f"/fill/20/20/public.test:{origin.port}/x.jpg")
    assert status == 403
    assert b'"source_forbidden"' in body
    assert origin.requests == []


async def test_credentials_are_not_carried_across_origins_on_redirect(
    service: Service, origin: Origin
) -> None:
    origin.add("/final.jpg", JPEG)
    _redirect(origin, "/cross", f"http://origin.test:{origin.port}/final.jpg")
    status, _, _ = await service.get(
        f"/fill/20/20/{origin.authority}/cross",
        [("Authorization", "Bearer x"), ("Cookie", "a=1"), ("X-Other", "kept")],
    )
    assert status == 200
    first, second = origin.requests
    assert _values(first.headers, "Authorization") == ["Bearer x"]
    assert _values(second.headers, "Authorization") == []
    assert _values(second.headers, "Cookie") == []
    assert _values(second.headers, "X-Other") == ["kept"]


# --- TLS ------------------------------------------------------------------------------


async def test_https_source_with_untrusted_certificate_gives_502(
    service: Service, tls_origin: int
) -> None:
    status, _, body = await service.get(f"/fill/20/20/https://127.0.0.1:{tls_origin}/x.jpg")
    assert status == 502
    assert b'"source_unreachable"' in body


async def test_an_origin_port_nobody_listens_on_gives_502_unreachable(
    service: Service, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="previewer.access")  # as --log-level info sets it
    with socket.socket() as unused:  # bound, not listening: connections are refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        status, headers, body = await service.get(f"/fill/20/20/127.0.0.1:{port}/x.jpg")
    assert (status, json.loads(body)["error"]) == (502, "source_unreachable")
    assert headers["Cache-Control"] == "no-store"
    # the cause, in the access line (embedded) or in the worker's log (broker mode)
    assert "cannot connect" in caplog.text + capsys.readouterr().err


async def test_a_fetcher_fetches_only_between_start_and_close(origin: Origin) -> None:
    origin.add("/a.jpg", JPEG)
    fetcher = Fetcher(load({}, {"allow-private-networks": "true"}).fetch)
    source = parse_source(f"{origin.authority}/a.jpg")
    with pytest.raises(RuntimeError, match=r"start\(\) was not called"):
        await fetcher.fetch(source, [], None)
    await fetcher.start()
    assert (await fetcher.fetch(source, [], None)).body == JPEG
    await fetcher.close()
    await fetcher.close()  # a second close does nothing
    with pytest.raises(RuntimeError, match=r"start\(\) was not called"):
        await fetcher.fetch(source, [], None)
    assert origin.hits["/a.jpg"] == 1
