"""WebP and AVIF by negotiation, through the running service: the format each
browser's real `Accept` gets, the bytes decoded, `Vary`, and the cache entries
and single flights that Accept values leading to one format share."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import pyvips

import images
from conftest import Service, ServiceFactory
from origin import Gate, Origin
from previewer.render import imaging
from waiting import until

# The Accept headers browsers send for <img> (current releases).
CHROMIUM = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
SAFARI = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
# Safari 14 to 16.3 (macOS Big Sur and later): WebP, no AVIF.
SAFARI_WEBP_ONLY = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
CURL = "*/*"

JPEG = images.jpeg(640, 480)
LOADERS = {
    "image/jpeg": "jpegload_buffer",
    "image/png": "pngload_buffer",
    "image/webp": "webpload_buffer",
    "image/avif": "heifload_buffer",
}


def decoded(body: bytes) -> Any:
    """Decode any preview with libvips, AVIF included.

    The service blocks every loader it does not read sources with, process
    wide; the HEIF loader is let through for this decode only, then the
    service's set-up is restored.
    """
    pyvips.operation_block_set("VipsForeignLoadHeif", False)
    try:
        image = pyvips.Image.new_from_buffer(body, "")
        loader = image.get("vips-loader")
        image = image.copy_memory()  # every pixel decoded while the loader is allowed
    finally:
        imaging.configure()
    image.set_type(pyvips.GValue.gstr_type, "vips-loader", loader)
    return image


def check_preview(headers: Any, body: bytes, content_type: str, size: tuple[int, int]) -> Any:
    """The decoded body, after checking its real format matches the Content-Type."""
    assert headers["Content-Type"] == content_type
    image = decoded(body)
    assert image.get("vips-loader") == LOADERS[content_type]
    assert (image.width, image.height) == size
    return image


async def _health(service: Service) -> dict[str, Any]:
    status, _, body = await service.get("/health")
    assert status == 200
    payload: dict[str, Any] = json.loads(body)
    return payload


def _entries(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and "sources" not in p.parts]


@pytest.fixture
async def negotiating(start_service: ServiceFactory, origin: Origin) -> Service:
    origin.add("/photo.jpg", JPEG)
    origin.add("/alpha.png", images.png_alpha(), content_type="image/png")
    return await start_service(webp="true", avif="true")


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (CHROMIUM, "image/avif"),
        (FIREFOX, "image/avif"),
        (SAFARI, "image/avif"),
        (SAFARI_WEBP_ONLY, "image/webp"),
        (CURL, "image/jpeg"),
        (None, "image/jpeg"),
        ("image/*", "image/jpeg"),
        ("image/avif;q=0, image/webp", "image/webp"),
        ("image/avif;q=0, image/webp;q=0, */*", "image/jpeg"),
        ("IMAGE/AVIF;Q=0.5", "image/avif"),
    ],
)
async def test_negotiated_format_is_what_the_body_is(
    negotiating: Service, origin: Origin, accept: str | None, content_type: str
) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    status, response, body = await negotiating.get(
        f"/fill/120/90/{origin.authority}/photo.jpg", headers
    )
    assert status == 200
    image = check_preview(response, body, content_type, (120, 90))
    assert not image.hasalpha()
    assert response["Vary"] == "Accept"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [(CHROMIUM, "image/avif"), (SAFARI_WEBP_ONLY, "image/webp"), (CURL, "image/png")],
)
async def test_alpha_is_kept_in_every_format(
    negotiating: Service, origin: Origin, accept: str, content_type: str
) -> None:
    status, response, body = await negotiating.get(
        f"/fill/60/40/{origin.authority}/alpha.png", {"Accept": accept}
    )
    assert status == 200
    image = check_preview(response, body, content_type, (60, 40))
    assert image.hasalpha()
    alpha = image[image.bands - 1]
    assert 100 < alpha.avg() < 156  # the source is half transparent (alpha 128)


async def test_each_format_is_rendered_once_and_kept_in_its_own_entry(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    origin.add("/photo.jpg", JPEG)
    service = await start_service(webp="true", avif="true")
    path = f"/fill/100/100/{origin.authority}/photo.jpg"
    formats = {}
    for accept in (CHROMIUM, SAFARI_WEBP_ONLY, CURL):
        status, headers, body = await service.get(path, {"Accept": accept})
        assert (status, headers["X-Cache"]) == (200, "MISS")
        formats[headers["Content-Type"]] = (headers["ETag"], body)
    assert set(formats) == {"image/avif", "image/webp", "image/jpeg"}
    assert len({etag for etag, _ in formats.values()}) == 3
    assert len(_entries(tmp_path)) == 3
    for accept, content_type in (
        (FIREFOX, "image/avif"),
        (SAFARI_WEBP_ONLY, "image/webp"),
        (None, "image/jpeg"),
    ):
        status, headers, body = await service.get(path, {"Accept": accept} if accept else {})
        assert (status, headers["X-Cache"]) == (200, "HIT")
        assert headers["Content-Type"] == content_type
        assert (headers["ETag"], body) == formats[content_type]
    counters = (await _health(service))["counters"]
    assert counters["renders"] == 3
    assert origin.hits["/photo.jpg"] == 1  # the source cache served the other two formats


async def test_accept_values_leading_to_one_format_share_one_render(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    service = await start_service(webp="true", avif="true", source_cache_size="0")
    gate = Gate(JPEG)
    origin.route("/gated.jpg", gate.handler)
    path = f"/fill/100/80/{origin.authority}/gated.jpg"
    accepts = [CHROMIUM, FIREFOX, SAFARI] * 4
    tasks = [asyncio.ensure_future(service.get(path, {"Accept": a})) for a in accepts]
    await gate.all_arrived.wait()

    async def all_waiting() -> bool:
        return bool((await _health(service))["counters"]["misses"] >= len(accepts))

    await until(all_waiting)  # every request has reached the service
    gate.release()
    results = await asyncio.gather(*tasks)
    assert {status for status, _, _ in results} == {200}
    assert {headers["Content-Type"] for _, headers, _ in results} == {"image/avif"}
    assert len({body for _, _, body in results}) == 1
    assert origin.hits["/gated.jpg"] == 1
    counters = (await _health(service))["counters"]
    assert (counters["fetches"], counters["renders"]) == (1, 1)
    assert len(_entries(tmp_path)) == 1


async def test_vary_is_on_304s_and_on_the_default_format_too(
    negotiating: Service, origin: Origin
) -> None:
    path = f"/fill/80/60/{origin.authority}/photo.jpg"
    for accept in (CHROMIUM, CURL):
        status, headers, _ = await negotiating.get(path, {"Accept": accept})
        assert (status, headers["Vary"]) == (200, "Accept")
        status, again, body = await negotiating.get(
            path, {"Accept": accept, "If-None-Match": headers["ETag"]}
        )
        assert (status, body) == (304, b"")
        assert again["Vary"] == "Accept"
        assert again["ETag"] == headers["ETag"]


async def test_an_etag_of_another_format_is_not_a_match(
    negotiating: Service, origin: Origin
) -> None:
    path = f"/fill/80/60/{origin.authority}/photo.jpg"
    _, avif, _ = await negotiating.get(path, {"Accept": CHROMIUM})
    status, headers, body = await negotiating.get(
        path, {"Accept": CURL, "If-None-Match": avif["ETag"]}
    )
    assert status == 200
    check_preview(headers, body, "image/jpeg", (80, 60))


async def test_only_the_formats_turned_on_are_negotiated(
    start_service: ServiceFactory, origin: Origin
) -> None:
    origin.add("/photo.jpg", JPEG)
    service = await start_service(webp="true")
    status, headers, body = await service.get(
        f"/fill/70/50/{origin.authority}/photo.jpg", {"Accept": CHROMIUM}
    )
    assert status == 200
    check_preview(headers, body, "image/webp", (70, 50))
    assert headers["Vary"] == "Accept"


@pytest.mark.parametrize("accept", [CHROMIUM, FIREFOX, SAFARI, CURL])
async def test_without_the_flags_every_browser_gets_jpeg_and_no_vary(
    service: Service, origin: Origin, accept: str
) -> None:
    origin.add("/photo.jpg", JPEG)
    path = f"/fill/70/50/{origin.authority}/photo.jpg"
    status, headers, body = await service.get(path, {"Accept": accept})
    assert status == 200
    check_preview(headers, body, "image/jpeg", (70, 50))
    assert "Vary" not in headers
    status, headers, _ = await service.get(path, {"If-None-Match": headers["ETag"]})
    assert status == 304
    assert "Vary" not in headers


async def test_quality_settings_reach_the_encoders(
    start_service: ServiceFactory, origin: Origin, tmp_path: Path
) -> None:
    """A lower quality gives a smaller body, for each negotiated format."""
    origin.add("/photo.jpg", JPEG)
    low = await start_service(webp="true", avif="true", webp_quality="10", avif_quality="10")
    path = f"/fill/200/150/{origin.authority}/photo.jpg"
    sizes = {}
    for accept in (CHROMIUM, SAFARI_WEBP_ONLY):
        _, headers, body = await low.get(path, {"Accept": accept})
        sizes[headers["Content-Type"]] = len(body)
    high = await start_service(
        webp="true",
        avif="true",
        webp_quality="95",
        avif_quality="95",
        cache_dir=str(tmp_path / "high"),
    )
    for accept in (CHROMIUM, SAFARI_WEBP_ONLY):
        _, headers, body = await high.get(path, {"Accept": accept})
        assert len(body) > 2 * sizes[headers["Content-Type"]]
