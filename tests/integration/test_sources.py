"""Source formats, colour profiles, thin sources and truncation, through HTTP.

The service runs in this process against the programmable origin, or as a
subprocess against nginx where its memory and its log are what is measured.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pyvips

import images
from conftest import Service, ServiceProcess
from origin import NginxOrigin, Origin
from previewer.render.geometry import Size, fit

pytestmark = pytest.mark.both_modes


def _mean(image: pyvips.Image) -> list[float]:
    return [image[band].avg() for band in range(image.bands)]


async def _preview(service: Service, origin: Origin, name: str, data: bytes, size: str) -> bytes:
    origin.add(f"/{name}", data, content_type="application/octet-stream")
    status, headers, body = await service.get(f"/fill/{size}/{origin.authority}/{name}")
    assert status == 200, body
    assert headers["Content-Type"] == "image/jpeg"
    return body


# --- formats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.avif", images.avif(200, 150)),
        ("photo.tiff", images.tiff(images.photo(200, 150))),
        ("big.tiff", images.tiff(images.photo(200, 150), bigtiff=True)),
        ("lzw.tiff", images.tiff(images.photo(200, 150), compression="lzw")),
        ("jpeg.tiff", images.tiff(images.photo(200, 150), compression="jpeg", tile=True)),
    ],
)
async def test_avif_and_tiff_sources(
    service: Service, origin: Origin, name: str, data: bytes
) -> None:
    body = await _preview(service, origin, name, data, "70/50")
    image = images.decode(body)
    assert (image.width, image.height, image.bands) == (70, 50, 3)


async def test_tiff_orientation_cmyk_16_bit_and_pages(service: Service, origin: Origin) -> None:
    halves = images.rotated_jpeg(200, 100, 6)  # white left half, tagged 6
    rotated = images.tiff(images.decode(halves))
    body = await _preview(service, origin, "rotated.tiff", rotated, "50/100")
    image = images.decode(body)
    assert image(25, 10)[0] > 200  # upright, the white half is on top
    assert image(25, 90)[0] < 50

    colour = images.solid(120, 80, [40, 200, 90])
    cmyk = colour.icc_transform("cmyk", input_profile="srgb")
    body = await _preview(service, origin, "cmyk.tiff", images.tiff(cmyk), "60/40")
    expected = _mean(cmyk.icc_transform("srgb", embedded=True))
    assert all(abs(a - b) <= 3 for a, b in zip(_mean(images.decode(body)), expected, strict=True))

    deep = (colour * 257).cast("ushort").copy(interpretation="rgb16")
    body = await _preview(service, origin, "deep.tiff", images.tiff(deep), "60/40")
    assert all(
        abs(a - b) <= 2 for a, b in zip(_mean(images.decode(body)), [40, 200, 90], strict=True)
    )

    pages = images.multipage_tiff([[255, 0, 0], [0, 0, 255]])
    red, green, blue = _mean(
        images.decode(await _preview(service, origin, "p.tiff", pages, "30/20"))
    )
    assert red > 240
    assert green < 15
    assert blue < 15


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("bomb.heic", images.declaring(images.heic(64, 48), 20_000, 20_000), "source_too_large"),
        ("liar.heic", images.declaring(images.heic(64, 48), 128, 96), "source_not_image"),
        ("ojpeg.tiff", images.ojpeg_tiff(), "source_not_image"),
        (
            "long.avif",
            images.frames_declared(images.avif_sequence([[255, 0, 0]] * 2), 1001),
            "source_too_large",
        ),
        ("bomb.tiff", images.tiff_declaring(60_000, 60_000), "source_too_large"),
        ("bomb.avif", images.avif_declaring(20_000, 20_000), "source_too_large"),
        ("page.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "source_not_image"),
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
            "source_not_image",
        ),
        (
            "film.mp4",
            b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64),
            "source_not_image",
        ),
    ],
)
async def test_refused_sources(
    service: Service, origin: Origin, name: str, data: bytes, code: str
) -> None:
    origin.add(f"/{name}", data, content_type="image/avif")
    status, headers, body = await service.get(f"/fill/100/100/{origin.authority}/{name}")
    assert status == 422
    assert headers["Cache-Control"] == "no-store"
    error = json.loads(body)
    assert error["error"] == code


# --- HEIC, AVIF sequences, alpha ----------------------------------------------------------

DATA = Path(__file__).parent.parent / "data"


@pytest.mark.parametrize(
    ("name", "data", "size", "content_type"),
    [
        ("photo.heic", images.heic(320, 240), (70, 50), "image/jpeg"),
        (
            "alpha.heic",
            images.heic(image=images.photo(160, 120).bandjoin(128).copy(interpretation="srgb")),
            (70, 50),
            "image/png",
        ),
        ("turned.heic", images.heic(320, 160, orientation=6), (40, 80), "image/jpeg"),
        ("thumbor.heic", (DATA / "thumbor-image.heic").read_bytes(), (100, 60), "image/jpeg"),
        ("seq.avif", images.avif_sequence([[0, 0, 255], [255, 0, 0]]), (30, 20), "image/jpeg"),
    ],
)
async def test_heic_and_avif_sequences(
    service: Service,
    origin: Origin,
    name: str,
    data: bytes,
    size: tuple[int, int],
    content_type: str,
) -> None:
    origin.add(f"/{name}", data, content_type="application/octet-stream")
    path = f"/fill/{size[0]}/{size[1]}/{origin.authority}/{name}"
    status, headers, body = await service.get(path)
    assert status == 200, body
    assert headers["Content-Type"] == content_type
    assert headers["Cache-Control"].startswith("public")
    image = images.decode(body)
    assert (image.width, image.height) == size
    if name == "seq.avif":  # the first frame
        assert _mean(image)[2] > 240
        assert _mean(image)[0] < 15
    status, headers, _ = await service.get(path)
    assert headers["X-Cache"] == "HIT"


async def test_heic_display_p3_becomes_srgb(service: Service, origin: Origin) -> None:
    colour = [40, 200, 90]
    p3 = images.solid(1, 1, [0, 0, 0]).icc_transform("p3", input_profile="srgb")
    profile = p3.get("icc-profile-data")
    source = images.heic(image=images.solid(120, 80, colour), profile=profile)
    got = _mean(images.decode(await _preview(service, origin, "p3.heic", source, "60/40")))
    expected = images.with_profile(images.solid(1, 1, colour), profile)
    want = expected.icc_transform("srgb", embedded=True)(0, 0)
    assert all(abs(a - b) <= 4 for a, b in zip(got, want, strict=True)), (got, want)


async def test_truncated_heic_is_a_clean_refusal(service: Service, origin: Origin) -> None:
    source = images.heic(320, 240)
    for fraction in (0.01, 0.3, 0.7, 0.97):
        name = f"cut{fraction}.heic"
        origin.add(f"/{name}", source[: int(len(source) * fraction)])
        status, headers, body = await service.get(f"/fill/60/40/{origin.authority}/{name}")
        assert status == 422, body
        assert json.loads(body)["error"] == "source_not_image"
        assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("gravity", ["centre", "attention"])
async def test_one_source_gives_one_output_type(
    start_service: Callable[..., Any], origin: Origin, gravity: str
) -> None:
    """A GIF whose only transparent pixels are a 10x10 corner: PNG at every size."""
    service = await start_service(gravity=gravity)
    origin.add("/corner.gif", images.gif_transparent_corner(200, 100))
    origin.add("/opaque.gif", images.solid(200, 100, [90, 90, 90]).gifsave_buffer())
    for width, height in ((200, 100), (50, 50), (20, 80), (400, 30), (3, 3)):
        for name, content_type in (("corner.gif", "image/png"), ("opaque.gif", "image/jpeg")):
            path = f"/fill/{width}/{height}/{origin.authority}/{name}"
            status, headers, body = await service.get(path)
            assert status == 200, body
            assert headers["Content-Type"] == content_type, (name, width, height)


# --- colour profiles --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("p3.jpg", images.p3_jpeg([40, 200, 90])),
        (
            "adobe.jpg",
            images.with_profile(
                images.solid(120, 80, [40, 200, 90]), images.adobe_rgb_profile()
            ).jpegsave_buffer(Q=95),
        ),
        (
            "grey.png",
            images.with_profile(
                images.solid(120, 80, [128], "b-w"), images.grey_profile(1.0)
            ).pngsave_buffer(),
        ),
    ],
)
async def test_colour_profiles_are_applied(
    service: Service, origin: Origin, name: str, source: bytes
) -> None:
    body = await _preview(service, origin, name, source, "60/40")
    preview = images.decode(body)
    assert preview.get_typeof("icc-profile-data") == 0
    expected = _mean(images.decode(source).icc_transform("srgb", embedded=True))
    expected = expected * 3 if len(expected) == 1 else expected
    raw = _mean(images.decode(source))
    raw = raw * 3 if len(raw) == 1 else raw
    got = _mean(preview)
    assert all(abs(a - b) <= 3 for a, b in zip(got, expected, strict=True)), (got, expected)
    assert any(abs(a - b) > 15 for a, b in zip(got, raw, strict=True))  # not the raw values


async def test_a_source_without_a_profile_is_left_as_srgb(service: Service, origin: Origin) -> None:
    source = images.solid(120, 80, [40, 200, 90]).jpegsave_buffer(Q=95)
    got = _mean(images.decode(await _preview(service, origin, "plain.jpg", source, "60/40")))
    assert all(abs(a - b) <= 2 for a, b in zip(got, [40, 200, 90], strict=True))


# --- thin sources, in a separate process whose peak memory is read ----------------------

THIN = [(1, 50_000), (50_000, 1)]
PEAK_RSS_BOUND = 400 * 1024 * 1024


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.subprocess
@pytest.mark.nginx
def test_thin_sources_cost_what_the_output_costs(
    service_process: Callable[..., ServiceProcess], nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    """1x50000 and 50000x1 (the largest under --max-source-pixels 50000) at 4096x4096 and
    1000x1000, both gravities: the covers would be 4096x204,800,000 pixels and more.
    Fitted too: the fit of a line is a line, never more than its output."""
    for width, height in THIN:
        path = nginx_origin.root / f"thin_{width}x{height}.png"
        path.write_bytes(images.thin_png(width, height))
        path.chmod(0o644)
    for gravity in ("centre", "attention"):  # gravity is a setting of the service
        proc = service_process(
            [
                *("--cache-dir", str(tmp_path / gravity), "--gravity", gravity),
                *("--max-source-pixels", "50000"),
            ],
            env={"PREVIEWER_ALLOW_PRIVATE_NETWORKS": "true"},
        )
        for (width, height), size, operation in itertools.product(
            THIN, ((4096, 4096), (1000, 1000)), ("fill", "fit")
        ):
            url = (
                f"{proc.url}/{operation}/{size[0]}/{size[1]}/{nginx_origin.authority}"
                f"/thin_{width}x{height}.png"
            )
            started = time.monotonic()
            with urllib.request.urlopen(url, timeout=60) as resp:
                assert resp.status == 200
                preview = images.decode(resp.read())
            elapsed = time.monotonic() - started
            assert elapsed < 30, (url, gravity, elapsed)
            expected = Size(*size)
            if operation == "fit":  # the whole line: 4096x1 or 1x4096, say
                expected = fit(Size(width, height), expected)
            assert (preview.width, preview.height) == (expected.width, expected.height)
        peak = _peak_rss(proc.proc.pid)
        assert peak < PEAK_RSS_BOUND, f"{gravity}: peak RSS {peak / 2**20:.0f} MiB"
    # one pixel over the limit is still refused before decoding
    path = nginx_origin.root / "over.png"
    path.write_bytes(images.thin_png(1, 50_001))
    path.chmod(0o644)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{proc.url}/fill/100/100/{nginx_origin.authority}/over.png")
    assert info.value.code == 422
    assert json.loads(info.value.read())["error"] == "source_too_large"
    assert proc.stop() == 0


# --- truncated sources: one log line, with the source ----------------------------------


@pytest.mark.subprocess
@pytest.mark.nginx
def test_a_truncated_source_logs_one_line_with_its_url(
    service_process: Callable[..., ServiceProcess], nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    whole = images.jpeg(1024, 504)
    path = nginx_origin.root / "truncated.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    path.chmod(0o644)
    proc = service_process(
        ["--cache-dir", str(tmp_path / "c")], env={"PREVIEWER_ALLOW_PRIVATE_NETWORKS": "true"}
    )
    source = f"http://{nginx_origin.authority}/truncated.jpg"
    with urllib.request.urlopen(
        f"{proc.url}/fill/300/200/{nginx_origin.authority}/truncated.jpg"
    ) as resp:
        assert resp.status == 200
        assert images.decode(resp.read()).width == 300
    assert proc.stop() == 0
    renderer = proc.worker or proc  # the process that rendered: in broker mode, the worker
    if proc.worker is not None:
        assert proc.worker.stop() == 0
    log = renderer.log_lines
    truncated = [line for line in log if "source truncated" in line]
    assert len(truncated) == 1, log
    assert source in truncated[0]
    assert "premature end of JPEG" in truncated[0]
    assert "WARNING" in truncated[0]
    assert not [line for line in log if "VIPS" in line or "pyvips" in line], log
    assert os.environ.get("PREVIEWER_LOG_LEVEL") is None  # the default level: info
