"""Property-based attack on the request path: always 4xx, never a fetch outside policy.

The service runs on its own event loop in a thread (hypothesis drives a
plain function), with loopback and private sources refused and a resolver
that maps every name to a canary listener on 127.0.0.1. The policy must keep
every request away from the canary, whatever the path says.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origin import StubResolver
from previewer.cli import running
from previewer.config.settings import load


class Canary:
    """A listener that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class EverythingIsHere(StubResolver):
    """Every name resolves to 127.0.0.1, as a rebinding attacker would arrange."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ):  # type: ignore[no-untyped-def]
        self.table[host] = ["127.0.0.1"]
        return await super().resolve(host, port, family)


class ThreadedService:
    def __init__(self, cache_dir: Path) -> None:
        self.url = ""
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._cache_dir = cache_dir
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        settings = load({}, {"port": "0", "cache-dir": str(self._cache_dir)})
        async with running(settings, EverythingIsHere()) as run:
            self.url = run.url
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadedService:
        self._thread.start()
        assert self._started.wait(30), "service did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedService]:
    with ThreadedService(tmp_path_factory.mktemp("fuzz-cache")) as service:
        yield service


def raw_status(url: str, target_bytes: bytes) -> int | None:
    """Send one request line as raw bytes; the status code, or None if none came."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"GET " + target_bytes + b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


# --- strategies ------------------------------------------------------------------------

VALID_DIMENSION = st.integers(min_value=1, max_value=4096).map(str)
DIMENSIONS = st.one_of(
    VALID_DIMENSION,
    VALID_DIMENSION,
    VALID_DIMENSION,
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "",
            "0",
            "00",
            "1e3",
            "0x10",
            "+5",
            " 5",
            "5 ",
            "\u0663",
            "\uff13",
            "\u00b2",
            "\u216b",
            "%31",
        ]
    ),
    st.text(max_size=8),
)
SCHEMES = st.sampled_from(
    [
        "",
        "http://",
        "https://",
        "http:/",
        "https:/",
        "HTTP://",
        "hTTp:",
        "http:///",
        "ftp://",
        "file://",
        "file:/",
        "gopher://",
        "javascript:",
        "data:",
        "//",
        "\\\\",
        "http:\\\\",
    ]
)
HOSTS = st.one_of(
    st.sampled_from(
        [
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[0:0::1]",
            "localhost",
            "LOCALHOST.",
            "app.localhost",
            "0",
            "0.0.0.0",
            "169.254.169.254",
            "[fe80::1]",
            "10.0.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "evil.test",
            "xn--nxasmq6b.test",
            "ünïcode.test",
            "a@127.0.0.1",
            "127.0.0.1%2f@evil.test",
            "127.0.0.1%00.evil.test",
            "%31%32%37.0.0.1",
        ]
    ),
    st.text(max_size=20),
)
PATHS = st.one_of(
    st.sampled_from(
        [
            "/a.jpg",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/..%2f..%2fa",
            "/%252e%252e/a",
            "/a%00.jpg",
            "/a\x00.jpg",
            "/%2F%2Fevil.test/a",
            "/a?x=%00",
            "/a#frag",
            "/ spaced",
            "/\u202e/a",
            "/a?" + "q" * 200,
        ]
    ),
    st.text(max_size=40).map(lambda t: "/" + t),
)


@st.composite
def request_targets(draw: st.DrawFn, canary_port: int) -> bytes:
    if draw(st.integers(0, 20)) == 0:
        return b"/fill/10/10/" + b"a" * draw(st.sampled_from([9000, 100_000]))
    host = draw(HOSTS)
    port = draw(st.sampled_from(["", f":{canary_port}", ":0", ":99999", ":-1", ":80"]))
    text = f"/fill/{draw(DIMENSIONS)}/{draw(DIMENSIONS)}/{draw(SCHEMES)}{host}{port}{draw(PATHS)}"
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.fault
def test_any_request_path_gets_4xx_and_never_reaches_a_refused_address(
    target: ThreadedService, canary: Canary
) -> None:
    seen: set[int | None] = set()

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(request_targets(canary.port))
    def attack(raw: bytes) -> None:
        status = raw_status(target.url, raw)
        seen.add(status)
        assert status is not None, raw
        assert 400 <= status < 500, (status, raw)

    attack()
    assert canary.connections == 0
    assert {400, 403} <= seen  # both refusals were exercised
