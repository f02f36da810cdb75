"""Hostile origins: every attack ends in its documented status, within its deadline, with
memory bounded, and the service serves a normal request afterwards.

Answers aiohttp's server refuses to give (silence, a dripped status line, a reset, ten
thousand headers) come from `raw_origin.RawOrigin`, a scripted raw-TCP origin. Memory is
measured on a `previewer serve` child process: VmHWM in /proc/<pid>/status is the peak
resident set since it started, so one reading after an attack covers all of it.
docs/hostile-origins.md records what each test measured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

import images
import raw_origin
from conftest import Service, ServiceFactory, ServiceProcess
from origin import Origin, StubResolver
from previewer.fetch import policy
from raw_origin import RawOrigin, head

pytestmark = pytest.mark.both_modes

JPEG = images.jpeg(300, 200)
FETCH_TIMEOUT = 1.0
# Scheduling slack on top of a deadline, and the bound on an answer that must not wait
# for one. Generous, for a shared and busy machine, yet far below what each attack
# would take unchecked (minutes of dripping, gigabytes to inflate or decode).
MARGIN = 5.0
RSS_LIMIT_KB = 300 * 1024

log = logging.getLogger(__name__)


@dataclass
class Answer:
    status: int
    code: str | None  # the JSON error code, None for a preview
    body: bytes
    elapsed: float


async def fill(service: Service, source: str, size: tuple[int, int] = (40, 30)) -> Answer:
    started = time.monotonic()
    status, headers, body = await service.get(f"/fill/{size[0]}/{size[1]}/{source}")
    elapsed = time.monotonic() - started
    code = (
        json.loads(body).get("error")
        if headers["Content-Type"].startswith("application/json")
        else None
    )
    log.info("%s -> %d %s in %.3fs", source, status, code or "preview", elapsed)
    return Answer(status, code, body, elapsed)


async def still_serves(service: Service, origin: Origin) -> None:
    """The shared post-check: nothing left rendering, and a normal request gets its preview."""
    assert (await service.get("/health"))[0] == 200
    assert (await service.render_stage())["renders_in_progress"] == 0
    origin.add("/after.jpg", JPEG)
    answer = await fill(service, f"{origin.authority}/after.jpg", (64, 48))
    assert answer.status == 200
    preview = images.decode(answer.body)
    assert (preview.width, preview.height) == (64, 48)


@pytest.fixture
async def raw() -> AsyncIterator[RawOrigin]:
    async with raw_origin.raw_origin() as server:
        yield server


# --- 1. stalls and drips: 504 within --fetch-timeout ----------------------------------


async def test_origin_silent_after_the_request_gives_504_within_the_fetch_timeout(
    start_service: ServiceFactory, origin: Origin, raw: RawOrigin
) -> None:
    raw.route("/silent.jpg", raw_origin.silent())
    service = await start_service(fetch_timeout=FETCH_TIMEOUT)
    answer = await fill(service, f"{raw.authority}/silent.jpg")
    assert (answer.status, answer.code) == (504, "source_timeout")
    assert FETCH_TIMEOUT * 0.9 <= answer.elapsed < FETCH_TIMEOUT + MARGIN
    # the service let go of the origin's connection: no fetch is left waiting on it
    (held,) = await raw.hang_ups("/silent.jpg", within=MARGIN)
    log.info("the service held the silent connection for %.3fs", held)
    assert held < FETCH_TIMEOUT + MARGIN
    await still_serves(service, origin)


@pytest.mark.parametrize("interval", [1.0, 0.05], ids=["1-byte-per-s", "20-bytes-per-s"])
async def test_origin_dripping_its_status_line_and_headers_gives_504(
    start_service: ServiceFactory, origin: Origin, raw: RawOrigin, interval: float
) -> None:
    """Slowloris from the origin side. At 20 bytes a second every read succeeds quickly, so
    only a deadline on the whole fetch (not an idle timeout) can stop it."""
    response = head(headers=[("Content-Type", "image/jpeg"), ("Content-Length", str(len(JPEG)))])
    raw.route("/drip.jpg", raw_origin.drip(response + JPEG, interval))
    service = await start_service(fetch_timeout=FETCH_TIMEOUT)
    answer = await fill(service, f"{raw.authority}/drip.jpg")
    assert (answer.status, answer.code) == (504, "source_timeout")
    assert FETCH_TIMEOUT * 0.9 <= answer.elapsed < FETCH_TIMEOUT + MARGIN
    await raw.hang_ups("/drip.jpg", within=MARGIN)
    (conn,) = raw.to("/drip.jpg")
    log.info("%d of the head's %d bytes were sent", conn.sent, len(response))
    assert conn.sent < len(response)  # cut off while the head was still dripping
    await still_serves(service, origin)


async def test_redirect_chain_of_slow_hops_is_bounded_by_one_deadline(
    start_service: ServiceFactory, origin: Origin, raw: RawOrigin
) -> None:
    """Each hop answers in 0.3 s, well inside the timeout; the deadline covers the chain."""
    for hop in range(5):
        response = head("302 Found", [("Location", f"/hop{hop + 1}"), ("Content-Length", "0")])
        raw.route(f"/hop{hop}", raw_origin.drip(response, 0.3 / len(response)))
    service = await start_service(fetch_timeout=FETCH_TIMEOUT, max_redirects="10")
    answer = await fill(service, f"{raw.authority}/hop0")
    assert (answer.status, answer.code) == (504, "source_timeout")
    assert answer.elapsed < FETCH_TIMEOUT + MARGIN
    # redirects were followed, and the deadline cut the 1.5 s chain after at most four
    # hops (a deadline per hop would have let all five through, then a 404)
    assert 2 <= len(raw.connections) <= 4
    await still_serves(service, origin)


# --- 2. broken bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(
            raw_origin.send(
                head(headers=[("Content-Length", str(len(JPEG)))]) + JPEG[: len(JPEG) // 2]
            ),
            (502, "source_unreachable"),
            id="shorter-than-content-length",
        ),
        pytest.param(
            raw_origin.send(
                head(headers=[("Content-Length", str(len(JPEG)))]) + JPEG[: len(JPEG) // 2],
                then="reset",
                pause=0.1,
            ),
            (502, "source_unreachable"),
            id="reset-mid-body",
        ),
        pytest.param(
            raw_origin.send(
                head(headers=[("Transfer-Encoding", "chunked")])
                + f"{len(JPEG):x}\r\n".encode()
                + JPEG[: len(JPEG) // 2]
            ),
            (502, "source_unreachable"),
            id="chunk-cut-short",
        ),
    ],
)
async def test_broken_body_gives_502(
    start_service: ServiceFactory,
    origin: Origin,
    raw: RawOrigin,
    script: raw_origin.Script,
    expected: tuple[int, str],
) -> None:
    raw.route("/broken.jpg", script)
    service = await start_service(fetch_timeout=FETCH_TIMEOUT)
    answer = await fill(service, f"{raw.authority}/broken.jpg")
    assert (answer.status, answer.code) == expected
    assert answer.elapsed < MARGIN
    await still_serves(service, origin)


async def test_endless_chunked_body_gives_422_and_the_service_hangs_up(
    start_service: ServiceFactory, origin: Origin, raw: RawOrigin
) -> None:
    """A chunked body that never ends (not merely a long one): the byte cap stops the read
    and the connection is dropped, so the origin cannot keep a fetch busy."""
    raw.route("/endless.jpg", raw_origin.endless_chunks(JPEG[:1024], bytes(64 * 1024)))
    service = await start_service(fetch_timeout="5", max_source_bytes="1MiB")
    answer = await fill(service, f"{raw.authority}/endless.jpg")
    assert (answer.status, answer.code) == (422, "source_too_large")
    assert answer.elapsed < MARGIN
    (held,) = await raw.hang_ups("/endless.jpg", within=MARGIN)
    (conn,) = raw.to("/endless.jpg")
    log.info("the origin sent %d bytes in %.3fs before the service hung up", conn.sent, held)
    await still_serves(service, origin)


# --- 3. redirects (loops, long chains, file:, ftp: and literal link-local are in
# test_fetch.py) ------------------------------------------------------------------------


def _redirect(origin: Origin, path: str, location: str) -> None:
    origin.add(path, status=302, headers={"Location": location}, content_type="text/plain")


# Port 1 on the metadata address: should the check regress, the test fails on a refused or
# timed-out connection instead of talking to whatever answers at 169.254.169.254 (something
# does, on some build machines).
@pytest.mark.parametrize(
    "location",
    [
        "//169.254.169.254:1/latest/meta-data/",  # scheme-relative
        "http://2852039166:1/latest/meta-data/",  # 169.254.169.254 as one number
        "http://0xa9.0xfe.0xa9.0xfe:1/latest/meta-data/",
        "http://[::ffff:169.254.169.254]:1/latest/meta-data/",
        "HTTP://169.254.169.254.:1/latest/meta-data/",
        "http://metadata.test:1/latest/meta-data/",  # a name that resolves there
        "ftp://files.example.org/x.jpg",
        "gopher://127.0.0.1:70/_GET",
        "data:image/png;base64,iVBORw0KGgo=",
    ],
)
async def test_redirect_to_metadata_in_any_spelling_or_another_scheme_gives_403(
    start_service: ServiceFactory, origin: Origin, location: str
) -> None:
    resolver = StubResolver({"origin.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"]})
    service = await start_service(resolver=resolver)
    _redirect(origin, "/evil", location)
    answer = await fill(service, f"{origin.authority}/evil")
    assert (answer.status, answer.code) == (403, "source_forbidden")
    assert [r.path for r in origin.requests] == ["/evil"]
    await still_serves(service, origin)


STAND_IN = ipaddress.ip_address("127.0.0.2")


@pytest.fixture
def stand_in_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Judge 127.0.0.2 as a public address, and nothing else differently.

    With private networks refused, no origin on loopback can be reached, and a test may
    not leave loopback; so one loopback address stands in for "somewhere on the
    internet". Every other address, 127.0.0.1 included, still meets the real policy.
    """
    real = policy.check_address

    def check_address(address: str | policy.IPAddress, *, allow_private: bool) -> None:
        if ipaddress.ip_address(str(address)) != STAND_IN:
            real(address, allow_private=allow_private)

    monkeypatch.setattr(policy, "check_address", check_address)


@pytest.mark.usefixtures("stand_in_is_public")
@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret.jpg",
        "http://127.1:{port}/secret.jpg",
        "http://2130706433:{port}/secret.jpg",
        "http://[::ffff:127.0.0.1]:{port}/secret.jpg",
        "http://localhost:{port}/secret.jpg",
        "http://inward.test:{port}/secret.jpg",  # a name that resolves to loopback
    ],
)
async def test_redirect_to_loopback_is_refused_when_private_networks_are_not_allowed(
    start_service: ServiceFactory, origin: Origin, target: str
) -> None:
    """A public origin (the stand-in) redirects to a loopback service: 403, and the
    loopback service never sees a request."""
    async with raw_origin.raw_origin(str(STAND_IN)) as public:
        location = target.format(port=origin.port)
        public.route("/start", raw_origin.send(head("302 Found", [("Location", location)])))
        public.route(
            "/fine.jpg", raw_origin.send(head(headers=[("Content-Length", str(len(JPEG)))]) + JPEG)
        )
        origin.add("/secret.jpg", JPEG)
        resolver = StubResolver({"public.test": [str(STAND_IN)], "inward.test": ["127.0.0.1"]})
        service = await start_service(resolver=resolver, allow_private_networks="false")

        # control: the stand-in is reachable, and so is a redirect that stays public
        redirect = raw_origin.send(head("302 Found", [("Location", "/fine.jpg")]))
        public.route("/control", redirect)
        control = await fill(service, f"public.test:{public.port}/control")
        assert control.status == 200

        answer = await fill(service, f"public.test:{public.port}/start")
        assert (answer.status, answer.code) == (403, "source_forbidden")
        assert [c.path for c in public.connections] == ["/control", "/fine.jpg", "/start"]
        assert origin.requests == []
        assert (await fill(service, f"public.test:{public.port}/fine.jpg")).status == 200


# --- 4. gzip bomb -----------------------------------------------------------------------

GZIP_BOMB_INFLATED = 2 << 30  # 2 GiB of zeros


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    bomb = images.gzip_bomb(GZIP_BOMB_INFLATED)
    assert len(bomb) < 3_000_000
    return bomb


async def test_gzip_bomb_is_capped_on_the_inflated_stream(
    start_service: ServiceFactory, origin: Origin, gzip_bomb: bytes
) -> None:
    """2 MB on the wire, 2 GiB inflated, under a 10 MiB cap: refused once 10 MiB have
    been inflated, long before the compressed body has all arrived."""
    origin.add("/bomb.jpg", gzip_bomb, headers={"Content-Encoding": "gzip"})
    service = await start_service(max_source_bytes="10MiB")
    answer = await fill(service, f"{origin.authority}/bomb.jpg")
    assert (answer.status, answer.code) == (422, "source_too_large")
    assert answer.elapsed < MARGIN
    await still_serves(service, origin)


# --- 5. header bombs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            head(headers=[(f"X-Bomb-{i}", "x") for i in range(10_000)]), id="10000-headers"
        ),
        pytest.param(head(headers=[("X-Bomb", "x" * (1 << 20))]), id="one-1MB-header"),
        pytest.param(b"HTTP/1.1 200 " + b"O" * (1 << 20) + b"\r\n\r\n", id="1MB-status-line"),
    ],
)
async def test_header_bomb_gives_502_at_once(
    start_service: ServiceFactory, origin: Origin, raw: RawOrigin, response: bytes
) -> None:
    raw.route("/headers.jpg", raw_origin.send(response + JPEG, then="wait"))
    service = await start_service(fetch_timeout=FETCH_TIMEOUT)
    answer = await fill(service, f"{raw.authority}/headers.jpg")
    assert (answer.status, answer.code) == (502, "source_unreachable")
    assert answer.elapsed < MARGIN
    await raw.hang_ups("/headers.jpg", within=MARGIN)
    await still_serves(service, origin)


# --- 6. image bombs -----------------------------------------------------------------------

IMAGE_BOMBS: dict[str, tuple[Callable[[], bytes], tuple[int, str | None]]] = {
    "png-60000x60000": (images.pixel_bomb_png, (422, "source_too_large")),
    "jpeg-60000x60000": (lambda: images.jpeg_declaring(60000, 60000), (422, "source_too_large")),
    "gif-10000-frames": (lambda: images.gif_frames(10_000), (422, "source_too_large")),
    "png-1GiB-chunk": (images.png_huge_chunk, (422, "source_not_image")),
    # libvips skips a text chunk over its limit and decodes the 64x64 image
    "png-256MiB-ztxt": (images.png_text_bomb, (200, None)),
}


@pytest.mark.parametrize("name", [n for n in IMAGE_BOMBS if n != "png-60000x60000"])
async def test_image_bomb(start_service: ServiceFactory, origin: Origin, name: str) -> None:
    """(The 60000x60000 PNG is test_fetch.py's; it joins the memory test below.)"""
    make, expected = IMAGE_BOMBS[name]
    bomb = make()
    assert len(bomb) < 300_000
    origin.add("/bomb", bomb)
    service = await start_service()
    answer = await fill(service, f"{origin.authority}/bomb")
    assert (answer.status, answer.code) == expected
    assert answer.elapsed < MARGIN
    await still_serves(service, origin)


# --- 7. polyglots and liars ---------------------------------------------------------------


def _cmyk() -> bytes:
    data: bytes = images.photo(300, 200).colourspace("cmyk").jpegsave_buffer()
    return data


def _png16() -> bytes:
    data: bytes = images.photo(300, 200).colourspace("rgb16").pngsave_buffer()
    return data


def _grey16_png() -> bytes:
    data: bytes = images.photo(300, 200).colourspace("grey16").pngsave_buffer()
    return data


def _palette_png_with_transparency() -> bytes:
    import pyvips

    photo = images.photo(300, 200)
    alpha = (pyvips.Image.xyz(300, 200)[0] > 100).ifthenelse(255, 0).cast("uchar")
    data: bytes = photo.bandjoin(alpha).copy(interpretation="srgb").pngsave_buffer(palette=True)
    return data


def _jpeg_with_html() -> bytes:
    """A JPEG with an HTML page in a comment segment: both a valid JPEG and a page."""
    page = b"<html><script>alert(document.cookie)</script></html>"
    com = b"\xff\xfe" + (len(page) + 2).to_bytes(2, "big") + page
    return JPEG[:2] + com + JPEG[2:]


BROKEN_ICC = b"this is not an ICC profile " * 20

LIARS: dict[str, tuple[Callable[[], bytes], str, tuple[int, str | None]]] = {
    "html-as-jpeg": (
        lambda: b"<!doctype html><html><body>Not found</body></html>",
        "image/jpeg",
        (422, "source_not_image"),
    ),
    "svg": (
        # the external reference points at the origin itself: it must never be fetched
        lambda: (
            b'<svg xmlns="http://www.w3.org/2000/svg" '
            b'xmlns:xlink="http://www.w3.org/1999/xlink" width="300" height="200">'
            b'<image xlink:href="http://{authority}/svg-ref.png" width="300" height="200"/></svg>'
        ),
        "image/svg+xml",
        (422, "source_not_image"),
    ),
    "jpeg-html-polyglot": (_jpeg_with_html, "text/html", (200, None)),
    "truncated-jpeg": (lambda: JPEG[: len(JPEG) // 2], "image/jpeg", (200, None)),
    "cmyk-jpeg": (_cmyk, "image/jpeg", (200, None)),
    "16-bit-png": (_png16, "image/png", (200, None)),
    "16-bit-grey-png": (_grey16_png, "image/png", (200, None)),
    "palette-png-with-transparency": (_palette_png_with_transparency, "image/png", (200, None)),
    "jpeg-broken-icc": (lambda: images.jpeg_with_icc(JPEG, BROKEN_ICC), "image/jpeg", (200, None)),
    "cmyk-jpeg-broken-icc": (
        lambda: images.jpeg_with_icc(_cmyk(), BROKEN_ICC),
        "image/jpeg",
        (200, None),
    ),
}
ALPHA = {"palette-png-with-transparency"}


@pytest.mark.parametrize("name", LIARS)
async def test_polyglot_or_liar(start_service: ServiceFactory, origin: Origin, name: str) -> None:
    make, content_type, expected = LIARS[name]
    body = make().replace(b"{authority}", origin.authority.encode())
    origin.add("/liar", body, content_type=content_type)
    origin.add("/svg-ref.png", images.png_alpha())
    service = await start_service()
    answer = await fill(service, f"{origin.authority}/liar", (90, 60))
    assert (answer.status, answer.code) == expected
    if answer.status == 200:
        preview = images.decode(answer.body)
        assert (preview.width, preview.height, preview.format) == (90, 60, "uchar")
        assert preview.interpretation == "srgb"
        assert preview.bands == (4 if name in ALPHA else 3)
        assert b"<script" not in answer.body
    assert origin.hits["/svg-ref.png"] == 0
    await still_serves(service, origin)


# --- memory, measured on a child process ------------------------------------------------


def _memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of `pid`, in kB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


async def _at_once(url: str, paths: list[str]) -> list[Answer]:
    async def one(session: aiohttp.ClientSession, path: str) -> Answer:
        started = time.monotonic()
        async with session.get(URL(url + path, encoded=True)) as resp:
            body = await resp.read()
            elapsed = time.monotonic() - started
            code = (
                json.loads(body).get("error") if resp.content_type == "application/json" else None
            )
            return Answer(resp.status, code, body, elapsed)

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(session, p) for p in paths))


def _spawn(
    service_process: Callable[..., ServiceProcess], tmp_path: Path, *extra: str
) -> ServiceProcess:
    return service_process(
        [
            "--cache-dir",
            str(tmp_path / "cache"),
            "--allow-private-networks",
            "--workers",
            "8",
            "--queue-size",
            "8",
            *extra,
        ]
    )


async def _serves_after(child: ServiceProcess, origin: Origin) -> None:
    origin.add("/after.jpg", JPEG)
    (answer,) = await _at_once(child.url, [f"/fill/64/48/{origin.authority}/after.jpg"])
    assert answer.status == 200
    (health,) = await _at_once(child.url, ["/health"])
    assert json.loads(health.body)["renders_in_progress"] == 0


@pytest.mark.fault
@pytest.mark.subprocess
async def test_eight_gzip_bombs_at_once_keep_memory_bounded(
    service_process: Callable[..., ServiceProcess],
    origin: Origin,
    tmp_path: Path,
    gzip_bomb: bytes,
) -> None:
    origin.add("/bomb.jpg", gzip_bomb, headers={"Content-Encoding": "gzip"})
    child = _spawn(service_process, tmp_path, "--max-source-bytes", "10MiB")
    before = _memory_kb(child.proc.pid)
    paths = [f"/fill/{40 + i}/30/{origin.authority}/bomb.jpg?{i}" for i in range(8)]
    answers = await _at_once(child.url, paths)
    after = _memory_kb(child.proc.pid)
    log.info(
        "gzip bombs: kB before %s, after %s; s %s", before, after, [a.elapsed for a in answers]
    )
    assert {(a.status, a.code) for a in answers} == {(422, "source_too_large")}
    assert max(a.elapsed for a in answers) < MARGIN
    assert after["VmHWM"] < RSS_LIMIT_KB
    # 8 x 2 GiB inflated, but the peak grew by little more than 8 x the 10 MiB cap
    assert after["VmHWM"] - before["VmHWM"] < 8 * 3 * 10 * 1024
    await _serves_after(child, origin)


@pytest.mark.fault
@pytest.mark.subprocess
async def test_eight_image_bombs_at_once_keep_memory_bounded(
    service_process: Callable[..., ServiceProcess], origin: Origin, tmp_path: Path
) -> None:
    child = _spawn(service_process, tmp_path)
    peaks = {"start": _memory_kb(child.proc.pid)["VmHWM"]}
    for name, (make, expected) in IMAGE_BOMBS.items():
        origin.add(f"/{name}", make())
        paths = [f"/fill/{100 + i}/100/{origin.authority}/{name}?{i}" for i in range(8)]
        answers = await _at_once(child.url, paths)
        peaks[name] = _memory_kb(child.proc.pid)["VmHWM"]
        assert {(a.status, a.code) for a in answers} == {expected}, name
        assert max(a.elapsed for a in answers) < MARGIN, name
    log.info("image bombs, VmHWM kB after each batch of 8: %s", peaks)
    assert max(peaks.values()) < RSS_LIMIT_KB
    await _serves_after(child, origin)


@pytest.mark.parametrize("cut", ["half", "end-marker"])
async def test_truncated_source_is_previewed_but_never_cached(
    start_service: ServiceFactory, origin: Origin, cut: str
) -> None:
    # A body cut short without Content-Length looks complete to HTTP; caching
    # its half-grey preview for a year would freeze a transient fault.
    body = JPEG[: len(JPEG) // 2] if cut == "half" else JPEG[:-2]
    origin.add("/cut.jpg", body)
    service = await start_service()
    for expected_hits in (1, 2):
        status, headers, preview = await service.get(f"/fill/80/60/{origin.authority}/cut.jpg")
        assert status == 200
        assert headers["Cache-Control"] == "private, no-store"
        assert headers["X-Cache"] == "MISS"
        assert images.decode(preview).width == 80
        assert origin.hits["/cut.jpg"] == expected_hits  # the source is not kept either
    await still_serves(service, origin)


async def test_source_missing_only_its_end_marker_but_no_coded_bit_is_cached(
    service: Service, origin: Origin
) -> None:
    # This source's coded data ends where libjpeg never reads past its last byte
    # (seed 41 at 300x200 with libvips's encoder): without its end marker it
    # decodes in full, to exactly the complete source's preview, which may be kept.
    whole = images.jpeg(300, 200, seed=41)
    origin.add("/whole.jpg", whole)
    origin.add("/no-end.jpg", whole[:-2])
    _, _, expected = await service.get(f"/fill/80/60/{origin.authority}/whole.jpg")
    for cache in ("MISS", "HIT"):
        status, headers, preview = await service.get(f"/fill/80/60/{origin.authority}/no-end.jpg")
        assert status == 200
        assert headers["X-Cache"] == cache
        assert headers["Cache-Control"] == "public, max-age=31536000"
        assert preview == expected
    assert origin.hits["/no-end.jpg"] == 1
