"""The original assignment's scenarios, against a real nginx origin on 127.0.0.1."""

from __future__ import annotations

import pytest

import images
from conftest import GOPHER_SIZES, Service, ServiceFactory
from origin import NginxOrigin, StubResolver

pytestmark = [pytest.mark.nginx, pytest.mark.both_modes]

ORIGINAL = "/_gopher_original_1024x504.jpg"


@pytest.mark.parametrize(("width", "height"), GOPHER_SIZES)
async def test_image_returned_with_exact_size(
    service: Service, nginx_origin: NginxOrigin, width: int, height: int
) -> None:
    status, headers, body = await service.get(
        f"/fill/{width}/{height}/{nginx_origin.authority}{ORIGINAL}"
    )
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert int(headers["Content-Length"]) == len(body)
    image = images.decode(body)
    assert (image.width, image.height, image.bands) == (width, height, 3)
    assert image.get("vips-loader") == "jpegload_buffer"


async def test_cache_hit_makes_no_second_origin_request(
    service: Service, nginx_origin: NginxOrigin
) -> None:
    path = "/fill/321/123/" + nginx_origin.authority + ORIGINAL
    before = nginx_origin.requests_for(ORIGINAL)

    first = await service.get(path)
    assert first[0] == 200
    assert first[1]["X-Cache"] == "MISS"
    assert await nginx_origin.wait_for_requests(ORIGINAL, before + 1) == before + 1

    second = await service.get(path)
    assert second[0] == 200
    assert second[1]["X-Cache"] == "HIT"
    assert second[2] == first[2]
    assert second[1]["ETag"] == first[1]["ETag"]
    # a later request to nginx would be logged before this one completes (counted from
    # now: other tests ask the session's nginx for the same file, in any order)
    small = nginx_origin.requests_for("/small_40x30.jpg")
    await service.get(f"/fill/10/10/{nginx_origin.authority}/small_40x30.jpg")
    assert await nginx_origin.wait_for_requests("/small_40x30.jpg", small + 1) == small + 1
    assert nginx_origin.requests_for(ORIGINAL) == before + 1


async def test_origin_host_does_not_exist(start_service: ServiceFactory) -> None:
    service = await start_service(resolver=StubResolver({}))
    status, headers, body = await service.get("/fill/100/100/no-such-host.test/image.jpg")
    assert status == 502
    assert b'"source_unreachable"' in body
    assert headers["Cache-Control"] == "no-store"


async def test_image_not_found_passes_404_through(
    service: Service, nginx_origin: NginxOrigin
) -> None:
    status, _, body = await service.get(f"/fill/100/100/{nginx_origin.authority}/missing.jpg")
    assert status == 404
    assert b'"source_status"' in body


async def test_not_an_image_is_422(service: Service, nginx_origin: NginxOrigin) -> None:
    status, headers, body = await service.get(
        f"/fill/100/100/{nginx_origin.authority}/_gopher_not_image.jpg"
    )
    assert status == 422
    assert headers["Content-Type"].startswith("application/json")
    assert b'"source_not_image"' in body


async def test_origin_500_becomes_502(service: Service, nginx_origin: NginxOrigin) -> None:
    status, _, body = await service.get(f"/fill/100/100/{nginx_origin.authority}/error/500")
    assert status == 502
    assert b'"source_status"' in body


async def test_origin_403_stays_403(service: Service, nginx_origin: NginxOrigin) -> None:
    status, _, body = await service.get(f"/fill/100/100/{nginx_origin.authority}/error/403")
    assert status == 403
    assert b'"source_status"' in body


async def test_image_smaller_than_target_is_enlarged(
    service: Service, nginx_origin: NginxOrigin
) -> None:
    status, _, body = await service.get(f"/fill/400/300/{nginx_origin.authority}/small_40x30.jpg")
    assert status == 200
    image = images.decode(body)
    assert (image.width, image.height) == (400, 300)


async def test_png_with_alpha_gives_png(service: Service, nginx_origin: NginxOrigin) -> None:
    status, headers, body = await service.get(f"/fill/60/60/{nginx_origin.authority}/alpha.png")
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    image = images.decode(body)
    assert (image.width, image.height, image.bands) == (60, 60, 4)


async def test_loopback_origin_refused_without_allow_private_networks(
    start_service: ServiceFactory, nginx_origin: NginxOrigin
) -> None:
    service = await start_service(allow_private_networks="false")
    before = nginx_origin.requests_for(ORIGINAL)
    status, _, body = await service.get(f"/fill/100/100/{nginx_origin.authority}{ORIGINAL}")
    assert status == 403
    assert b'"source_forbidden"' in body
    assert nginx_origin.requests_for(ORIGINAL) == before
