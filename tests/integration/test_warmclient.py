"""warmclient: the warm tool's HTTP/1.1 client against servers on loopback that answer
byte for byte as scripted (lengths, chunks, closes, interim answers, garbage)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from yarl import URL

from origin import free_port
from previewer.warm.client import BadResponse, Connection, Target

CLOSE = object()  # in a script: close the connection instead of answering


@dataclass
class Scripted:
    """Answers each request with the next raw answer of `script`, on any connection."""

    script: list[bytes | object]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.script:
                self.requests.append(await reader.readuntil(b"\r\n\r\n"))
                answer = self.script.pop(0)
                if answer is CLOSE:
                    break
                assert isinstance(answer, bytes)
                writer.write(answer)
                await writer.drain()
                if _runs_to_the_end(answer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _runs_to_the_end(answer: bytes) -> bool:
    """An answer whose body ends where the connection does."""
    framed = (b"Content-Length", b"chunked", b" 204 ", b" 304 ")
    return not any(marker in answer for marker in framed)


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    server = Scripted([])
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    yield server
    listening.close()
    await listening.wait_closed()


def _connect(server: Scripted, path: str = "", **kwargs: object) -> Connection:
    headers = kwargs.get("headers", ())
    assert isinstance(headers, tuple)
    return Connection(Target(URL(f"http://127.0.0.1:{server.port}{path}"), headers, "ua/1"))


def _answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_answers_by_length_share_one_connection(scripted: Scripted) -> None:
    scripted.script = [_answer("200 OK", b"x" * 10, "X-Cache: MISS"), _answer("200 OK", b"yy")]
    connection = _connect(scripted)
    first = await connection.get("/fill/1/1/a")
    second = await connection.get("/fill/2/2/b")
    connection.close()
    assert (first.status, first.size, first.headers["x-cache"]) == (200, 10, "miss")
    assert first.body == b""  # success bodies are counted, not kept
    assert (second.status, second.size) == (200, 2)
    assert scripted.connections == 1


async def test_the_request_names_the_host_agent_and_extra_headers(scripted: Scripted) -> None:
    scripted.script = [_answer("200 OK", b""), _answer("200 OK", b"")]
    plain = _connect(scripted, "/base/", headers=(("Accept", "image/webp"),))
    await plain.get("/fill/1/1/a")
    plain.close()
    own_host = _connect(scripted, headers=(("Host", "cdn.test"), ("User-Agent", "mine")))
    await own_host.get("/fill/1/1/a")
    own_host.close()
    first, second = (request.decode() for request in scripted.requests)
    assert first.startswith("GET /base/fill/1/1/a HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{scripted.port}\r\n" in first
    assert "\r\nUser-Agent: ua/1\r\n" in first
    assert "\r\nAccept: image/webp\r\n" in first
    assert "\r\nHost: cdn.test\r\n" in second
    assert "127.0.0.1" not in second
    assert "\r\nUser-Agent: mine\r\n" in second
    assert "ua/1" not in second


async def test_chunked_bodies_with_extensions_and_trailers(scripted: Scripted) -> None:
    error = b'{"error": "source_status", "message": "no"}'
    scripted.script = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n"
        + f"{len(error):x}\r\n".encode()
        + error
        + b"\r\n0\r\n\r\n",
    ]
    connection = _connect(scripted)
    ok = await connection.get("/a")
    missing = await connection.get("/b")
    connection.close()
    assert (ok.status, ok.size) == (200, 11)
    assert (missing.status, missing.body) == (404, error)
    assert scripted.connections == 1


async def test_a_body_to_the_end_or_connection_close_opens_a_new_connection(
    scripted: Scripted,
) -> None:
    scripted.script = [
        b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
        _answer("200 OK", b"abc", "Connection: close"),
        _answer("200 OK", b"d"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\ne",
        _answer("200 OK", b"f"),
    ]
    connection = _connect(scripted)
    sizes = [(await connection.get(f"/{n}")).size for n in range(5)]
    connection.close()
    assert sizes == [13, 3, 1, 1, 1]
    assert scripted.connections == 4  # after the end-of-connection body, the close and 1.0


async def test_an_idle_connection_the_server_closed_is_replaced_once(scripted: Scripted) -> None:
    scripted.script = [_answer("200 OK", b"a"), CLOSE, _answer("200 OK", b"b")]
    connection = _connect(scripted)
    await connection.get("/1")
    again = await connection.get("/2")  # the server closes instead of answering: sent again
    connection.close()
    assert again.size == 1
    assert scripted.connections == 2


async def test_interim_and_bodiless_answers(scripted: Scripted) -> None:
    scripted.script = [
        b"HTTP/1.1 100 Continue\r\n\r\n" + _answer("200 OK", b"body"),
        b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n',
        b"HTTP/1.1 204 No Content\r\n\r\n",
        _answer("200 OK", b"z"),
    ]
    connection = _connect(scripted)
    replies = [await connection.get(f"/{n}") for n in range(4)]
    connection.close()
    assert [(r.status, r.size) for r in replies] == [(200, 4), (304, 0), (204, 0), (200, 1)]
    assert scripted.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
)
async def test_garbage_is_a_bad_response(scripted: Scripted, answer: bytes) -> None:
    scripted.script = [answer]
    connection = _connect(scripted)
    with pytest.raises(BadResponse):
        await connection.get("/")
    connection.close()


async def test_a_body_cut_short_is_an_incomplete_read(scripted: Scripted) -> None:
    scripted.script = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"]
    connection = _connect(scripted)
    with pytest.raises(asyncio.IncompleteReadError):
        await connection.get("/")
    connection.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    target = Target(URL(f"http://127.0.0.1:{free_port()}"), (), "ua")
    with pytest.raises(ConnectionRefusedError):
        await Connection(target).get("/")


async def test_https_checks_the_certificate(tls_origin: int) -> None:
    target = Target(URL(f"https://127.0.0.1:{tls_origin}"), (), "ua")
    assert target.port == tls_origin
    with pytest.raises(ssl.SSLCertVerificationError):
        await Connection(target).get("/fill/1/1/a")


def test_targets_are_http_or_https_with_a_host() -> None:
    assert Target(URL("https://example.test/"), (), "ua").port == 443
    assert Target(URL("http://example.test"), (), "ua").request("/p").startswith(b"GET /p ")
    for bad in ("ftp://example.test", "http:///path"):
        with pytest.raises(ValueError, match="http"):
            Target(URL(bad), (), "ua")
