"""Hostile clients: signing, allowlist, DNS rebinding, cache-key confusion, aborts."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import pyvips
from aiohttp import web

import images
from conftest import Service, ServiceFactory, ServiceProcess
from origin import Gate, Origin, StubResolver
from previewer import signing
from waiting import until

pytestmark = pytest.mark.both_modes

JPEG = images.jpeg(400, 300)
KEY = bytes.fromhex("0123456789abcdef0123456789abcdef")
SALT = bytes.fromhex("5a17")


# --- URL signing -------------------------------------------------------------------


async def test_signed_requests_pass_and_others_get_403(
    start_service: ServiceFactory, origin: Origin
) -> None:
    service = await start_service(signing_key=KEY.hex(), signing_salt=SALT.hex())
    origin.add("/s.jpg", JPEG)
    path = f"/fill/60/40/{origin.authority}/s.jpg?v=1"
    status, _, body = await service.get(signing.signed_path(path, KEY, SALT))
    assert status == 200
    assert images.decode(body).width == 60

    forged = [
        path,  # unsigned
        signing.signed_path(path, b"wrong key", SALT),
        signing.signed_path(path, KEY, SALT).replace("/60/", "/61/"),
        signing.signed_path(path, KEY, SALT) + "&v=2",
        "/" + "A" * 43 + path,
    ]
    for attempt in forged:
        status, headers, body = await service.get(attempt)
        assert status == 403, attempt
        assert headers["Cache-Control"] == "no-store"
        assert json.loads(body)["error"] == "bad_signature"
    assert origin.hits["/s.jpg?v=1"] == 1


async def test_signed_form_is_unknown_when_signing_is_off(service: Service, origin: Origin) -> None:
    path = signing.signed_path(f"/fill/60/40/{origin.authority}/s.jpg", KEY, SALT)
    status, _, _ = await service.get(path)
    assert status == 404


# --- allowlist -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("images.test", 200),
        ("a.cdn.test", 200),
        ("evil.test", 403),
        ("images.test.evil.test", 403),
        ("cdn.test", 403),
    ],
)
async def test_allowlist(
    start_service: ServiceFactory, origin: Origin, host: str, status: int
) -> None:
    names = ["images.test", "a.cdn.test", "evil.test", "images.test.evil.test", "cdn.test"]
    resolver = StubResolver({name: ["127.0.0.1"] for name in names})
    service = await start_service(resolver=resolver, allowed_sources="images.test,*.cdn.test")
    origin.add("/a.jpg", JPEG)
    got, _, body = await service.get(f"/fill/20/20/{host}:{origin.port}/a.jpg")
    assert got == status
    if status == 403:
        assert json.loads(body)["error"] == "source_forbidden"
        assert origin.requests == []


async def test_allowlist_applies_to_redirect_hops(
    start_service: ServiceFactory, origin: Origin
) -> None:
    resolver = StubResolver({"images.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]})
    service = await start_service(resolver=resolver, allowed_sources="images.test")
    origin.add(
        "/r",
        status=302,
        headers={"Location": f"http://evil.test:{origin.port}/a.jpg"},
        content_type="text/plain",
    )
    origin.add("/a.jpg", JPEG)
    status, _, _ = await service.get(f"/fill/20/20/images.test:{origin.port}/r")
    assert status == 403
    assert [r.path for r in origin.requests] == ["/r"]


@pytest.mark.parametrize(
    "source",
    [
        "images.test@evil.test/a.jpg",
        "images.test:80@evil.test/a.jpg",
        "evil.test%2F@images.test/a.jpg",
        "evil.test%40images.test/a.jpg",
        "images.test%2eevil.test/a.jpg",
    ],
)
async def test_userinfo_and_encoding_tricks_cannot_pass_the_allowlist(
    start_service: ServiceFactory, origin: Origin, source: str
) -> None:
    resolver = StubResolver({"images.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]})
    service = await start_service(resolver=resolver, allowed_sources="images.test")
    status, _, _ = await service.get(f"/fill/20/20/{source}")
    assert status == 400  # every one of these is a malformed source, refused before policy
    assert origin.requests == []
    assert resolver.lookups["evil.test"] == 0


# --- DNS rebinding ----------------------------------------------------------------------


class RebindingResolver(StubResolver):
    """Answers each lookup of a name with the next answer in its script."""

    def __init__(self, script: dict[str, list[list[str]]]) -> None:
        super().__init__()
        self.script = script

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ):  # type: ignore[no-untyped-def]
        answers = self.script[host]
        self.table[host] = answers[min(self.lookups[host], len(answers) - 1)]
        return await super().resolve(host, port, family)


async def test_rebinding_to_a_refused_address_is_refused_at_connect(
    start_service: ServiceFactory, origin: Origin
) -> None:
    resolver = RebindingResolver({"rebind.test": [["127.0.0.1"], ["169.254.169.254"]]})
    # no DNS cache and no kept-alive connection: every request resolves anew
    service = await start_service(resolver=resolver, dns_cache_ttl="0")
    origin.add("/a.jpg", JPEG, headers={"Connection": "close"})
    origin.add("/b.jpg", JPEG, headers={"Connection": "close"})
    first = await service.get(f"/fill/20/20/rebind.test:{origin.port}/a.jpg")
    second = await service.get(f"/fill/20/20/rebind.test:{origin.port}/b.jpg")
    assert first[0] == 200
    assert second[0] == 403
    assert json.loads(second[2])["error"] == "source_forbidden"
    assert resolver.lookups["rebind.test"] == 2
    assert origin.hits["/a.jpg"] == 1
    assert origin.hits["/b.jpg"] == 0


async def test_connection_goes_only_to_the_address_that_passed(
    start_service: ServiceFactory, origin: Origin
) -> None:
    # The refused address comes first: dialling it would hang (nothing
    # answers at 169.254.169.254 here) and time the request out.
    resolver = StubResolver({"mixed.test": ["169.254.169.254", "127.0.0.1"]})
    service = await start_service(resolver=resolver, fetch_timeout="3")
    origin.add("/a.jpg", JPEG)
    status, _, _ = await service.get(f"/fill/20/20/mixed.test:{origin.port}/a.jpg")
    assert status == 200
    assert origin.hits["/a.jpg"] == 1


# --- cache-key confusion ---------------------------------------------------------------


def _colour_jpeg(rgb: list[int]) -> bytes:
    data: bytes = (
        (pyvips.Image.black(40, 40) + rgb).cast("uchar").copy(interpretation="srgb")
    ).jpegsave_buffer()
    return data


async def test_urls_the_origin_tells_apart_never_share_a_preview(
    service: Service, origin: Origin
) -> None:
    variants = {
        "/pic.jpg?a=1&b=2": [255, 0, 0],
        "/pic.jpg?b=2&a=1": [0, 255, 0],
        "/Pic.jpg": [0, 0, 255],
        "/pic.jpg": [255, 255, 0],
        "/p%69c.jpg": [0, 255, 255],
        "/dir%2Fpic.jpg": [255, 0, 255],
        "/dir/pic.jpg": [128, 128, 128],
    }

    def route(colour: list[int]) -> Callable[[web.Request], object]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=_colour_jpeg(colour), content_type="image/jpeg")

        return handler

    async def by_raw_path(request: web.Request) -> web.Response:
        return web.Response(
            body=_colour_jpeg(variants[request.raw_path]), content_type="image/jpeg"
        )

    for raw in variants:
        origin.route(raw, by_raw_path)
    for round_ in ("MISS", "HIT"):
        for raw, colour in variants.items():
            status, headers, body = await service.get(f"/fill/10/10/{origin.authority}{raw}")
            assert status == 200
            assert headers["X-Cache"] == round_, raw
            image = images.decode(body)
            got = [round(image.extract_band(b).avg()) for b in range(3)]
            assert all(abs(g - c) < 8 for g, c in zip(got, colour, strict=True)), (raw, got)
    for raw in variants:
        assert origin.hits[raw] == 1, raw


async def test_spellings_the_origin_cannot_tell_apart_share_a_preview(
    start_service: ServiceFactory, origin: Origin
) -> None:
    resolver = StubResolver({"images.test": ["127.0.0.1"]})
    service = await start_service(resolver=resolver)
    origin.add("/a.jpg", JPEG)
    spellings = [
        f"images.test:{origin.port}/a.jpg",
        f"IMAGES.test:{origin.port}/a.jpg",
        f"http://images.test.:{origin.port}/a.jpg",
        f"HTTP://Images.Test:{origin.port}/a.jpg",
    ]
    caches = [(await service.get(f"/fill/30/30/{s}"))[1]["X-Cache"] for s in spellings]
    assert caches == ["MISS", "HIT", "HIT", "HIT"]
    assert origin.hits["/a.jpg"] == 1


# --- disconnects ---------------------------------------------------------------------


async def test_a_client_leaving_does_not_cancel_the_shared_render(
    service: Service, origin: Origin
) -> None:
    gate = Gate(JPEG)
    origin.route("/g.jpg", gate.handler)
    path = f"/fill/50/50/{origin.authority}/g.jpg"
    leaver = asyncio.ensure_future(service.get(path))
    stayer = asyncio.ensure_future(service.get(path))
    await gate.all_arrived.wait()

    async def both_waiting() -> bool:
        return bool(json.loads((await service.get("/health"))[2])["counters"]["misses"] >= 2)

    await until(both_waiting)
    leaver.cancel()  # closes its connection mid-request
    with pytest.raises(asyncio.CancelledError):
        await leaver
    gate.release()
    status, _, body = await stayer
    assert status == 200
    assert images.decode(body).width == 50
    assert origin.hits["/g.jpg"] == 1
    assert (await service.get(path))[1]["X-Cache"] == "HIT"


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _abort_after_first_bytes(url: str, path: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(1)
        # RST instead of FIN: the server's send fails mid-body
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.fault
async def test_aborted_cache_hits_leak_no_file_handles(
    service_process: Callable[..., ServiceProcess], origin: Origin, tmp_path: Path
) -> None:
    big = (
        (
            pyvips.Image.gaussnoise(1500, 1500, seed=images.SEED)
            .bandjoin([128, 128, 128])
            .cast("uchar")
        )
        .copy(interpretation="srgb")
        .pngsave_buffer(compression=0)
    )
    origin.add("/big.png", big, content_type="image/png")
    proc = await asyncio.to_thread(
        service_process, ["--cache-dir", str(tmp_path / "c"), "--allow-private-networks"]
    )
    path = f"/fill/1400/1400/{origin.authority}/big.png"
    _, _ = await asyncio.to_thread(_warm, proc.url, path)
    before = _open_fds(proc.proc.pid)

    def abort_many() -> None:
        for _ in range(1000):
            _abort_after_first_bytes(proc.url, path)

    await asyncio.to_thread(abort_many)
    # the service is still healthy, and holds no more descriptors than before
    status, cache = await asyncio.to_thread(_warm, proc.url, path)
    assert (status, cache) == (200, "HIT")
    assert _open_fds(proc.proc.pid) <= before + 2  # + the pooled client connection, at most
    assert await asyncio.to_thread(proc.stop) == 0


def _warm(url: str, path: str) -> tuple[int, str]:
    import urllib.request

    with urllib.request.urlopen(url + path, timeout=30) as resp:
        resp.read()
        return resp.status, resp.headers["X-Cache"]
