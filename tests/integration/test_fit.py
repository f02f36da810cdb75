"""`/fit`: the whole source inside the box, over HTTP, in the embedded and the broker mode."""

from __future__ import annotations

import asyncio
import json

import pytest

import images
from conftest import Service, ServiceFactory
from origin import Gate, Origin
from previewer import signing
from previewer.render.geometry import Size, fit
from waiting import until

pytestmark = pytest.mark.both_modes

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


def _error(body: bytes) -> str:
    code: str = json.loads(body)["error"]
    return code


@pytest.mark.parametrize(
    ("name", "body", "box", "expected"),
    [
        ("landscape", images.jpeg(1024, 504), (300, 300), (300, 148)),
        ("portrait", images.jpeg(333, 666), (300, 300), (150, 300)),
        ("same-aspect", images.jpeg(400, 300), (200, 150), (200, 150)),
        ("tiny", images.jpeg(40, 30), (1000, 1000), (1000, 750)),
        ("thin-wide", images.thin_png(5000, 2), (1000, 1000), (1000, 1)),
        ("thin-tall", images.thin_png(2, 940), (1000, 1000), (2, 1000)),
    ],
)
async def test_fit_sizes(
    service: Service,
    origin: Origin,
    name: str,
    body: bytes,
    box: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    origin.add(f"/{name}", body)
    status, headers, preview = await service.get(
        f"/fit/{box[0]}/{box[1]}/{origin.authority}/{name}"
    )
    assert status == 200, preview
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Cache"] == "MISS"
    decoded = images.decode(preview)
    assert (decoded.width, decoded.height) == expected
    source = images.decode(body)
    assert expected == (lambda s: (s.width, s.height))(
        fit(Size(source.width, source.height), Size(*box))
    )


def _colour_at(image: object, x: int, y: int) -> list[float]:
    return list(image(x, y))  # type: ignore[operator]


def _near(got: list[float], want: list[int]) -> bool:
    return all(abs(g - w) <= 40 for g, w in zip(got, want, strict=True))


async def test_nothing_is_cropped_where_fill_crops(service: Service, origin: Origin) -> None:
    """Each corner of a corner-marked source shows in the fit; the fill of the same
    box, which crops half the width, loses the corners on at least one side."""
    origin.add("/corners.png", images.corners(800, 400))
    fitted = images.decode((await service.get(f"/fit/300/300/{origin.authority}/corners.png"))[2])
    assert (fitted.width, fitted.height) == (300, 150)
    inside = [(2, 2), (297, 2), (2, 147), (297, 147)]  # a pixel in from each corner
    for (x, y), colour in zip(inside, images.CORNER_COLOURS, strict=True):
        assert _near(_colour_at(fitted, x, y), colour), (x, y, colour)
    assert _near(_colour_at(fitted, 150, 75), [128, 128, 128])
    filled = images.decode((await service.get(f"/fill/300/300/{origin.authority}/corners.png"))[2])
    assert (filled.width, filled.height) == (300, 300)
    kept = [
        _near(_colour_at(filled, x, y), colour)
        for (x, y), colour in zip(
            [(2, 2), (297, 2), (2, 297), (297, 297)], images.CORNER_COLOURS, strict=True
        )
    ]
    assert kept.count(True) <= 2, kept  # the crop takes a side (at the gravity) or both


async def test_exif_orientation_is_applied_before_fitting(service: Service, origin: Origin) -> None:
    """A 200x100 JPEG tagged 6 is 100x200 upright, white on top: it fits 100x100 as 50x100."""
    origin.add("/turned.jpg", images.rotated_jpeg(200, 100, 6))
    status, _, body = await service.get(f"/fit/100/100/{origin.authority}/turned.jpg")
    assert status == 200
    preview = images.decode(body)
    assert (preview.width, preview.height) == (50, 100)
    assert _colour_at(preview, 25, 10)[0] > 200  # white on top
    assert _colour_at(preview, 25, 90)[0] < 50  # black below


async def test_a_phone_photo_is_fitted_upright(service: Service, origin: Origin) -> None:
    """A HEIC stored 200x100 and turned by its container (orientation 6) is 100x200
    upright: it fits 100x100 as 50x100, with what was the top-left corner on the
    right."""
    pixels = images.solid(200, 100, [0, 0, 0]).draw_rect([255, 255, 255], 0, 0, 100, 100, fill=True)
    origin.add("/turned.heic", images.heic(image=pixels, orientation=6))
    status, headers, body = await service.get(f"/fit/100/100/{origin.authority}/turned.heic")
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    preview = images.decode(body)
    assert (preview.width, preview.height) == (50, 100)
    assert _colour_at(preview, 25, 10)[0] > 200  # white, the stored left half, on top
    assert _colour_at(preview, 25, 90)[0] < 50


async def test_alpha_is_kept_as_png(service: Service, origin: Origin) -> None:
    origin.add("/alpha.png", images.png_alpha(120, 80))
    status, headers, body = await service.get(f"/fit/60/60/{origin.authority}/alpha.png")
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    preview = images.decode(body)
    assert (preview.width, preview.height, preview.hasalpha()) == (60, 40, True)


async def test_head_answers_like_get_without_a_body(service: Service, origin: Origin) -> None:
    origin.add("/a.jpg", images.jpeg(640, 480))
    path = f"/fit/100/100/{origin.authority}/a.jpg"
    head_status, head_headers, head_body = await service.request("HEAD", path)
    assert (head_status, head_body, head_headers["X-Cache"]) == (200, b"", "MISS")
    status, headers, body = await service.get(path)
    assert (status, headers["X-Cache"]) == (200, "HIT")
    assert int(head_headers["Content-Length"]) == len(body)
    for name in ("ETag", "Content-Type", "Cache-Control", "Last-Modified"):
        assert head_headers[name] == headers[name], name
    assert (images.decode(body).width, images.decode(body).height) == (100, 75)


async def test_fit_and_fill_are_separate_cache_entries(service: Service, origin: Origin) -> None:
    origin.add("/a.jpg", images.jpeg(640, 480))
    fill, fit_path = (f"/{op}/100/100/{origin.authority}/a.jpg" for op in ("fill", "fit"))
    _, fill_headers, fill_body = await service.get(fill)
    _, fit_headers, fit_body = await service.get(fit_path)
    assert (fill_headers["X-Cache"], fit_headers["X-Cache"]) == ("MISS", "MISS")
    assert fill_headers["ETag"] != fit_headers["ETag"]
    assert (images.decode(fill_body).width, images.decode(fill_body).height) == (100, 100)
    assert (images.decode(fit_body).width, images.decode(fit_body).height) == (100, 75)
    for path, etag in ((fill, fill_headers["ETag"]), (fit_path, fit_headers["ETag"])):
        status, headers, _ = await service.get(path)
        assert (status, headers["X-Cache"], headers["ETag"]) == (200, "HIT", etag)
        status, _, body = await service.get(path, {"If-None-Match": etag})
        assert (status, body) == (304, b"")
    health = json.loads((await service.get("/health"))[2])
    assert health["cache"]["entries"] == 2
    assert (health["counters"]["misses"], health["counters"]["hits"]) == (2, 4)
    assert (await service.render_stage())["renders"] == 2


async def test_a_negotiated_format_applies_to_fit(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service(webp="true")
    origin.add("/a.jpg", images.jpeg(640, 480))
    status, headers, body = await service.get(
        f"/fit/100/100/{origin.authority}/a.jpg", {"Accept": "image/webp"}
    )
    assert (status, headers["Content-Type"], headers["Vary"]) == (200, "image/webp", "Accept")
    assert (images.decode(body).width, images.decode(body).height) == (100, 75)


async def test_a_source_over_the_pixel_limit_is_refused(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service(max_source_pixels="10000")
    origin.add("/big.png", images.thin_png(101, 100))
    status, _, body = await service.get(f"/fit/50/50/{origin.authority}/big.png")
    assert (status, _error(body)) == (422, "source_too_large")


async def test_origin_errors_pass_through_as_for_fill(service: Service, origin: Origin) -> None:
    status, _, body = await service.get(f"/fit/50/50/{origin.authority}/missing.jpg")
    assert (status, _error(body)) == (404, "source_status")
    origin.add("/text.jpg", b"not an image at all")
    status, _, body = await service.get(f"/fit/50/50/{origin.authority}/text.jpg")
    assert (status, _error(body)) == (422, "source_not_image")


@pytest.mark.parametrize(
    "path",
    [
        "/fit",
        "/fit/",
        "/fit/100",
        "/fit/100/100",
        "/fit/100/100/",
        "/fit/abc/100/example.com/a.jpg",
        "/fit/0/100/example.com/a.jpg",
        "/fit/4097/100/example.com/a.jpg",
        "/fit/100/100/ftp://example.com/a.jpg",
        "/fit/100/100/example.com/a%zz.jpg",
    ],
)
async def test_a_malformed_fit_path_is_400(service: Service, path: str) -> None:
    status, headers, body = await service.get(path)
    assert (status, _error(body)) == (400, "bad_request"), path
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path", ["/fitx/100/100/example.com/a.jpg", "/Fit/100/100/example.com/a.jpg", "/fit-in/1/1/a"]
)
async def test_other_operations_stay_404(service: Service, path: str) -> None:
    for method in ("GET", "HEAD"):
        status, _, body = await service.request(method, path)
        assert status == 404, (method, path)
        if method == "GET":
            assert _error(body) == "not_found"


async def test_signing_covers_the_operation(start_service: ServiceFactory, origin: Origin) -> None:
    service = await start_service(signing_key=KEY.hex())
    origin.add("/a.jpg", images.jpeg(640, 480))
    fit_path = f"/fit/100/100/{origin.authority}/a.jpg"
    fill_path = f"/fill/100/100/{origin.authority}/a.jpg"
    status, _, body = await service.get(signing.signed_path(fit_path, KEY))
    assert status == 200
    assert (images.decode(body).width, images.decode(body).height) == (100, 75)
    fill_signature = signing.sign(fill_path, KEY)
    for path in (f"/{fill_signature}{fit_path}", fit_path, f"/short{fit_path}"):
        status, _, body = await service.get(path)
        assert (status, _error(body)) == (403, "bad_signature"), path
    status, _, body = await service.get(signing.signed_path("/fit/10/10", KEY))
    assert (status, _error(body)) == (400, "bad_request")
    status, _, body = await service.get(signing.signed_path("/fitx/10/10/example.com/a", KEY))
    assert (status, _error(body)) == (400, "bad_request")


async def test_concurrent_fits_share_one_flight_and_the_source_is_kept(
    start_service: ServiceFactory, origin: Origin
) -> None:
    """Three requests for one fit: one fetch, one render; the fill of that source then
    renders from the source cache, without a fetch."""
    service = await start_service()
    gate = Gate(images.jpeg(640, 480))
    origin.route("/held.jpg", gate.handler)
    path = f"/fit/100/100/{origin.authority}/held.jpg"
    tasks = [asyncio.ensure_future(service.get(path)) for _ in range(3)]

    async def all_three_waiting() -> bool:
        return bool(json.loads((await service.get("/health"))[2])["counters"]["misses"] >= 3)

    await until(all_three_waiting)
    gate.release()
    results = await asyncio.gather(*tasks)
    assert [status for status, _, _ in results] == [200] * 3
    assert len({body for _, _, body in results}) == 1
    stage = await service.render_stage()
    assert (stage["fetches"], stage["renders"]) == (1, 1)
    status, _, _ = await service.get(f"/fill/100/100/{origin.authority}/held.jpg")
    assert status == 200
    stage = await service.render_stage()
    assert (stage["fetches"], stage["source_hits"], stage["renders"]) == (1, 1, 2)
    assert origin.hits["/held.jpg"] == 1


async def test_headers_are_forwarded_and_origin_caching_rules_apply(
    service: Service, origin: Origin
) -> None:
    origin.add("/private.jpg", images.jpeg(640, 480), headers={"Cache-Control": "private"})
    status, headers, _ = await service.get(
        f"/fit/100/100/{origin.authority}/private.jpg",
        {"Authorization": "Bearer t0ken", "Accept-Language": "fr"},
    )
    assert (status, headers["Cache-Control"]) == (200, "private, no-store")
    (sent,) = [r for r in origin.requests if r.path == "/private.jpg"]
    assert ("Authorization", "Bearer t0ken") in sent.headers
    assert ("Accept-Language", "fr") in sent.headers
    origin.add("/public.jpg", images.jpeg(640, 480))
    _, headers, _ = await service.get(f"/fit/100/100/{origin.authority}/public.jpg")
    assert headers["Cache-Control"].startswith("public, max-age=")
