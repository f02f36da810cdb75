"""The HTTP interface of the running service: routes, headers, errors, formats."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from aiohttp import web

import images
from conftest import Service, ServiceFactory
from origin import Gate, Origin
from waiting import until

pytestmark = pytest.mark.both_modes

JPEG = images.jpeg(640, 480)


def _error(body: bytes) -> dict[str, str]:
    payload = json.loads(body)
    assert set(payload) == {"error", "message"}
    assert payload["message"]
    return payload  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "path",
    [
        "/fill",
        "/fill/",
        "/fill/100",
        "/fill/100/",
        "/fill/100/100",
        "/fill/100/100/",
        "/fill/abc/100/example.com/a.jpg",
        "/fill/100/1.5/example.com/a.jpg",
        "/fill/-1/100/example.com/a.jpg",
        "/fill/0/100/example.com/a.jpg",
        "/fill/100/0/example.com/a.jpg",
        "/fill/4097/100/example.com/a.jpg",
        "/fill/100/99999999999/example.com/a.jpg",
        "/fill/%EF%BC%93/100/example.com/a.jpg",
        "/fill/100/100/ftp://example.com/a.jpg",
        "/fill/100/100/file:///etc/passwd",
        "/fill/100/100/javascript:alert(1)",
        "/fill/100/100/https:///a.jpg",
        "/fill/100/100/user:pw@example.com/a.jpg",
        "/fill/100/100/exa_mple..com/a.jpg",
        "/fill/100/100/example.com:99999/a.jpg",
        "/fill/100/100/example.com/a%zz.jpg",
    ],
)
async def test_bad_requests_are_400(service: Service, path: str) -> None:
    status, headers, body = await service.get(path)
    assert status == 400, path
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Type"].startswith("application/json")
    assert _error(body)["error"] == "bad_request"


async def test_max_dimension_setting(start_service: ServiceFactory, origin: Origin) -> None:
    service = await start_service(max_dimension="64")
    origin.add("/a.jpg", JPEG)
    assert (await service.get(f"/fill/64/64/{origin.authority}/a.jpg"))[0] == 200
    assert (await service.get(f"/fill/65/64/{origin.authority}/a.jpg"))[0] == 400


async def test_unknown_path_is_404_json(service: Service) -> None:
    status, headers, body = await service.get("/resize/1/1/example.com/a.jpg")
    assert status == 404
    assert headers["Cache-Control"] == "no-store"
    assert _error(body)["error"] == "not_found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_json(service: Service, method: str) -> None:
    status, headers, body = await service.request(method, "/fill/10/10/example.com/a.jpg")
    assert status == 405
    assert "GET" in headers["Allow"]
    assert _error(body)["error"] == "method_not_allowed"


async def test_health(service: Service) -> None:
    status, headers, body = await service.get("/health")
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    payload = json.loads(body)
    assert payload["status"] == "ok"
    assert payload["cache"]["entries"] == 0


def _access_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if " INFO previewer.access " in line]


@pytest.fixture(autouse=True)
def _access_level(caplog: pytest.LogCaptureFixture) -> None:
    """The access log follows the level of its logger, as `--log-level info` sets it."""
    caplog.set_level(logging.INFO, logger="previewer.access")


async def test_no_access_lines_below_their_level(
    service: Service,
    origin: Origin,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="previewer.access")
    await service.get(f"/fill/120/90/{origin.authority}/missing.jpg")
    service.running.access_log.flush()
    assert _access_lines(capsys) == []


async def test_every_request_gets_an_access_log_line(
    service: Service, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    origin.add("/p.jpg", JPEG)
    await service.get(f"/fill/120/90/{origin.authority}/p.jpg")
    await service.get(f"/fill/120/90/{origin.authority}/p.jpg")
    # successful requests' lines wait to be written in one go...
    assert service.running.access_log.waiting == 2
    assert _access_lines(capsys) == []
    # ...and a failure writes them all at once, in order
    await service.get(f"/fill/120/90/{origin.authority}/missing.jpg")
    assert service.running.access_log.waiting == 0
    lines = _access_lines(capsys)
    assert len(lines) == 3
    assert "status=200 cache=MISS" in lines[0]
    assert "status=200 cache=HIT" in lines[1]
    assert "status=404" in lines[2]
    assert "error=source_status" in lines[2]
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.match(stamp + " INFO previewer.access GET /fill/", lines[0])


async def test_access_lines_of_successes_are_written_after_the_flush_interval(
    start_service: ServiceFactory, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    service = await start_service(flush_interval=0.05)
    origin.add("/p.jpg", JPEG)
    assert (await service.get(f"/fill/120/90/{origin.authority}/p.jpg"))[0] == 200
    await until(lambda: service.running.access_log.waiting == 0)
    assert len(_access_lines(capsys)) == 1


async def test_access_log_off_still_logs_failures(
    start_service: ServiceFactory, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> None:
    service = await start_service(access_log="off")
    origin.add("/p.jpg", JPEG)
    assert (await service.get(f"/fill/120/90/{origin.authority}/p.jpg"))[0] == 200
    assert (await service.get(f"/fill/120/90/{origin.authority}/p.jpg"))[0] == 200
    assert (await service.get(f"/fill/120/90/{origin.authority}/missing.jpg"))[0] == 404
    assert (await service.get("/fill/abc/90/example.com/a.jpg"))[0] == 400
    service.running.access_log.flush()
    lines = _access_lines(capsys)
    assert len(lines) == 2
    assert "status=404" in lines[0]
    assert "missing.jpg" in lines[0]
    assert "status=400 cache=- " in lines[1]


async def test_preview_headers(service: Service, origin: Origin) -> None:
    origin.add("/p.jpg", JPEG)
    status, headers, body = await service.get(f"/fill/120/90/{origin.authority}/p.jpg")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert "Content-Disposition" not in headers
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Cache-Control"] == "public, max-age=31536000"
    assert headers["X-Cache"] == "MISS"
    etag = headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert "Last-Modified" in headers


async def test_etag_is_a_hash_of_the_bytes(service: Service, origin: Origin) -> None:
    origin.add("/p.jpg", JPEG)
    a = await service.get(f"/fill/120/90/{origin.authority}/p.jpg")
    b = await service.get(f"/fill/121/90/{origin.authority}/p.jpg")
    c = await service.get(f"/fill/120/90/{origin.authority}/p.jpg")
    assert a[1]["ETag"] != b[1]["ETag"]
    assert a[1]["ETag"] == c[1]["ETag"]


async def test_max_age_setting(start_service: ServiceFactory, origin: Origin) -> None:
    service = await start_service(max_age="60")
    origin.add("/p.jpg", JPEG)
    _, headers, _ = await service.get(f"/fill/10/10/{origin.authority}/p.jpg")
    assert headers["Cache-Control"] == "public, max-age=60"


async def test_head_matches_get_without_body(service: Service, origin: Origin) -> None:
    origin.add("/p.jpg", JPEG)
    path = f"/fill/120/90/{origin.authority}/p.jpg"
    get_status, get_headers, get_body = await service.get(path)
    head_status, head_headers, head_body = await service.request("HEAD", path)
    assert (get_status, head_status) == (200, 200)
    assert head_body == b""
    assert head_headers["Content-Length"] == str(len(get_body))
    assert head_headers["ETag"] == get_headers["ETag"]
    assert head_headers["X-Cache"] == "HIT"


async def test_if_none_match_answers_304_without_the_origin(
    service: Service, origin: Origin
) -> None:
    origin.add("/p.jpg", JPEG)
    path = f"/fill/120/90/{origin.authority}/p.jpg"
    _, headers, _ = await service.get(path)
    hits_before = origin.hits["/p.jpg"]
    for value in (headers["ETag"], f'"other", {headers["ETag"]}', "W/" + headers["ETag"], "*"):
        status, h304, body = await service.get(path, {"If-None-Match": value})
        assert status == 304, value
        assert body == b""
        assert h304["ETag"] == headers["ETag"]
    status, _, body = await service.get(path, {"If-None-Match": '"something-else"'})
    assert status == 200
    assert body
    assert origin.hits["/p.jpg"] == hits_before


# --- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "content_type", "bands"),
    [
        ("alpha.png", images.png_alpha(), "image/png", 4),
        ("anim.gif", images.gif(), "image/jpeg", 3),
        ("photo.webp", images.webp(), "image/jpeg", 3),
        ("photo.jpg", images.jpeg(200, 150), "image/jpeg", 3),
    ],
)
async def test_source_formats(
    service: Service, origin: Origin, name: str, data: bytes, content_type: str, bands: int
) -> None:
    # The origin's Content-Type is wrong on purpose: the format comes from the bytes.
    origin.add(f"/{name}", data, content_type="application/octet-stream")
    status, headers, body = await service.get(f"/fill/70/50/{origin.authority}/{name}")
    assert status == 200
    assert headers["Content-Type"] == content_type
    image = images.decode(body)
    assert (image.width, image.height, image.bands) == (70, 50, bands)


async def test_exif_orientation_is_applied_and_metadata_stripped(
    service: Service, origin: Origin
) -> None:
    # Stored 200x100, white left half, orientation 6: upright it is 100x200
    # with the white half on top. Ignoring the tag would give a 50x100 crop
    # from the middle of the landscape image, white on the left instead.
    origin.add("/rotated.jpg", images.rotated_jpeg(200, 100, 6))
    status, _, body = await service.get(f"/fill/50/100/{origin.authority}/rotated.jpg")
    assert status == 200
    image = images.decode(body)
    assert (image.width, image.height) == (50, 100)
    assert image(25, 10)[0] > 200  # top: white
    assert image(25, 90)[0] < 50  # bottom: black
    assert image.get_typeof("exif-data") == 0
    assert image.get_typeof("orientation") == 0


async def test_svg_is_not_an_image(service: Service, origin: Origin) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    origin.add("/x.svg", svg, content_type="image/svg+xml")
    status, _, body = await service.get(f"/fill/10/10/{origin.authority}/x.svg")
    assert status == 422
    assert _error(body)["error"] == "source_not_image"


async def test_html_served_as_jpeg_is_not_an_image(service: Service, origin: Origin) -> None:
    origin.add("/fake.jpg", b"<html><body>hello</body></html>", content_type="image/jpeg")
    status, _, body = await service.get(f"/fill/10/10/{origin.authority}/fake.jpg")
    assert status == 422
    assert _error(body)["error"] == "source_not_image"


# --- shared-cache rules ------------------------------------------------------------------


SHARED_CACHE_CASES = [
    # (origin's response headers, client's request headers, stored by default, stored strictly)
    ({}, {}, True, True),
    ({"Cache-Control": "no-store"}, {}, False, False),
    ({"Cache-Control": "private, max-age=60"}, {}, False, False),
    ({"Set-Cookie": "id=1"}, {}, False, False),
    ({"Vary": "Cookie"}, {}, False, False),
    ({"Vary": "*"}, {}, False, False),
    ({"Vary": "Accept, Accept-Encoding"}, {"Cookie": "s=1"}, True, False),
    ({}, {"Authorization": "Bearer a"}, False, False),
    ({}, {"Cookie": "s=1"}, True, False),
    ({"Cache-Control": "no-store"}, {"Cookie": "s=1"}, False, False),
    ({"Set-Cookie": "id=2"}, {"Cookie": "s=1"}, False, False),
    ({"Vary": "Cookie"}, {"Cookie": "s=1"}, False, False),
    ({"Cache-Control": "public"}, {"Authorization": "Bearer a"}, True, True),
    ({"Cache-Control": "s-maxage=60"}, {"Cookie": "s=1"}, True, True),
]


@pytest.mark.parametrize("cookie_requests", ["shared", "private", None])
@pytest.mark.parametrize(
    ("response_headers", "request_headers", "shared", "strict"), SHARED_CACHE_CASES
)
async def test_shared_cache_rules(
    start_service: ServiceFactory,
    origin: Origin,
    cookie_requests: str | None,
    response_headers: dict[str, str],
    request_headers: dict[str, str],
    shared: bool,
    strict: bool,
) -> None:
    setting = {"cookie_requests": cookie_requests} if cookie_requests else {}
    service = await start_service(**setting)
    stored = strict if cookie_requests == "private" else shared
    origin.add("/c.jpg", JPEG, headers=response_headers)
    path = f"/fill/40/40/{origin.authority}/c.jpg"
    status, headers, _ = await service.get(path, request_headers)
    assert status == 200
    expected = "public, max-age=31536000" if stored else "private, no-store"
    assert headers["Cache-Control"] == expected
    status, headers, _ = await service.get(path, request_headers)
    assert headers["X-Cache"] == ("HIT" if stored else "MISS")
    assert origin.hits["/c.jpg"] == (1 if stored else 2)


async def test_a_preview_made_for_one_cookie_is_served_to_others(
    service: Service, origin: Origin
) -> None:
    """Analytics cookies on the parent domain no longer turn caching off."""
    origin.add("/site.jpg", JPEG)
    path = f"/fill/40/40/{origin.authority}/site.jpg"
    first = await service.get(path, {"Cookie": "_ga=GA1.1.1"})
    again = await service.get(path, {"Cookie": "_ga=GA1.1.2; theme=dark"})
    anonymous = await service.get(path)
    assert [r[1]["X-Cache"] for r in (first, again, anonymous)] == ["MISS", "HIT", "HIT"]
    assert first[2] == again[2] == anonymous[2]
    assert origin.hits["/site.jpg"] == 1


# --- single flight --------------------------------------------------------------------


async def test_concurrent_identical_requests_share_one_fetch_and_render(
    service: Service, origin: Origin
) -> None:
    gate = Gate(JPEG)
    origin.route("/gated.jpg", gate.handler)
    path = f"/fill/100/80/{origin.authority}/gated.jpg"
    tasks = [asyncio.ensure_future(service.get(path)) for _ in range(50)]
    await gate.all_arrived.wait()

    async def all_waiting() -> bool:
        return bool(json.loads((await service.get("/health"))[2])["counters"]["misses"] >= 50)

    await until(all_waiting)  # every request has reached the service
    gate.release()
    results = await asyncio.gather(*tasks)
    assert {status for status, _, _ in results} == {200}
    assert len({body for _, _, body in results}) == 1
    assert origin.hits["/gated.jpg"] == 1
    stage = await service.render_stage()
    assert (stage["fetches"], stage["renders"]) == (1, 1)


async def test_requests_with_different_credentials_do_not_share_a_flight(
    service: Service, origin: Origin
) -> None:
    release = asyncio.Event()
    arrivals = 0

    async def per_user(request: web.Request) -> web.Response:
        nonlocal arrivals
        arrivals += 1
        if arrivals == 2:
            release.set()
        await release.wait()
        return web.Response(
            body=JPEG, content_type="image/jpeg", headers={"Cache-Control": "private"}
        )

    origin.route("/mine.jpg", per_user)
    path = f"/fill/30/30/{origin.authority}/mine.jpg"
    alice, bob = await asyncio.gather(
        service.get(path, {"Cookie": "user=alice"}), service.get(path, {"Cookie": "user=bob"})
    )
    assert alice[0] == bob[0] == 200
    assert origin.hits["/mine.jpg"] == 2
    cookies = sorted(v for r in origin.requests for n, v in r.headers if n == "Cookie")
    assert cookies == ["user=alice", "user=bob"]


async def test_different_cookies_do_not_share_a_flight_even_when_shareable(
    service: Service, origin: Origin
) -> None:
    """The stored answer is shared afterwards; a flight in progress never is."""
    gate = Gate(JPEG, expected=2)
    origin.route("/shared.jpg", gate.handler)
    path = f"/fill/30/30/{origin.authority}/shared.jpg"
    alice = asyncio.ensure_future(service.get(path, {"Cookie": "user=alice"}))
    bob = asyncio.ensure_future(service.get(path, {"Cookie": "user=bob"}))
    async with asyncio.timeout(30):  # a shared flight would bring one request only
        await gate.all_arrived.wait()
    gate.release()
    results = await asyncio.gather(alice, bob)
    assert [status for status, _, _ in results] == [200, 200]
    assert origin.hits["/shared.jpg"] == 2
    _, headers, _ = await service.get(path, {"Cookie": "user=carol"})
    assert headers["X-Cache"] == "HIT"
    assert origin.hits["/shared.jpg"] == 2
