"""A scripted origin that speaks raw TCP on 127.0.0.1, for the answers no HTTP server gives.

aiohttp's own server always sends well-formed responses. The hostile-origin
tests need the ones it refuses to send: silence after the request, a status
line dripped a byte at a time, a body shorter than its `Content-Length`, a
reset in the middle of the body, thousands of headers. Each route is a
`Script` that gets the connection after the request head has been read and
writes whatever bytes it likes.

Every connection is recorded with the time the peer (the service) hung up, so
a test can show that the service let go of the origin, not only that it
answered its own client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Script = Callable[["Connection"], Awaitable[None]]

_HEAD_LIMIT = 64 * 1024


@dataclass
class Connection:
    """One request to the raw origin, with what the script sent and when the peer left."""

    path: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened: float = field(default_factory=time.monotonic)
    sent: int = 0
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # the peer hung up
    hung_up: float | None = None  # when it did, monotonic

    def hang_up(self) -> None:
        if self.hung_up is None:
            self.hung_up = time.monotonic()
        self.gone.set()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()
        self.sent += len(data)

    async def until_hang_up(self) -> None:
        """Read (and discard) until the peer closes; records when it did."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(_HEAD_LIMIT):
                pass
        self.hang_up()

    def reset(self) -> None:
        """Close with SO_LINGER 0, so the peer gets a TCP RST instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


@dataclass
class RawOrigin:
    """A TCP server on 127.0.0.1 that runs one `Script` per request path."""

    scripts: dict[str, Script] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    def route(self, path: str, script: Script) -> None:
        self.scripts[path] = script

    async def start(self, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._serve, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and end every script: reads see EOF, writes fail."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode("latin-1")
            conn = Connection(path, reader, writer)
            self.connections.append(conn)
            script = self.scripts.get(path) or self.scripts.get(path.partition("?")[0])
            if script is None:
                await conn.send(head("404 Not Found", [("Content-Length", "0")]))
            else:
                await script(conn)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    def to(self, path: str) -> list[Connection]:
        """The connections that asked for `path` (query ignored), oldest first."""
        return [c for c in self.connections if c.path.partition("?")[0] == path]

    async def hang_ups(self, path: str, within: float) -> list[float]:
        """Wait for the peer to leave every connection to `path`; seconds each stayed."""
        connections = self.to(path)
        async with asyncio.timeout(within):
            for conn in connections:
                await conn.gone.wait()
        return [c.hung_up - c.opened for c in connections if c.hung_up is not None]


@contextlib.asynccontextmanager
async def raw_origin(host: str = "127.0.0.1") -> AsyncIterator[RawOrigin]:
    origin = RawOrigin()
    await origin.start(host)
    try:
        yield origin
    finally:
        await origin.stop()


# --- scripts ------------------------------------------------------------------------


def head(status: str = "200 OK", headers: list[tuple[str, str]] | None = None) -> bytes:
    """A response head: status line, the given headers, `Connection: close`, blank line.

    The raw origin answers one request per connection, so the client must not reuse one.
    """
    lines = [f"HTTP/1.1 {status}", *(f"{n}: {v}" for n, v in headers or []), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def silent() -> Script:
    """Read the request, say nothing, wait for the peer to give up."""

    async def script(conn: Connection) -> None:
        await conn.until_hang_up()

    return script


def drip(data: bytes, interval: float) -> Script:
    """Send `data` one byte every `interval` seconds, until done or the peer leaves."""

    async def script(conn: Connection) -> None:
        watcher = asyncio.ensure_future(conn.until_hang_up())
        for byte in data:
            await conn.send(bytes([byte]))
            await asyncio.wait([watcher], timeout=interval)
            if watcher.done():
                return
        await watcher

    return script


def send(data: bytes, then: str = "close", pause: float = 0.0) -> Script:
    """Send `data` at once, then "close" (FIN), "reset" (RST) or "wait" for the peer.

    `pause` seconds pass before the close or reset: an origin that stalls mid-body,
    then resets. The pause is part of the scenario, not a wait for the peer: a test
    using it must expect the same answer whether the peer read the data before the
    RST or not (the kernel drops unread data when a RST arrives).
    """

    async def script(conn: Connection) -> None:
        await conn.send(data)
        await asyncio.sleep(pause)
        if then == "reset":
            conn.reset()
        elif then == "wait":
            await conn.until_hang_up()

    return script


def endless_chunks(first: bytes, chunk: bytes) -> Script:
    """A chunked body that starts with `first` and repeats `chunk` until the peer leaves."""

    async def script(conn: Connection) -> None:
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        await conn.send(
            head(headers=[("Content-Type", "image/jpeg"), ("Transfer-Encoding", "chunked")])
        )
        await conn.send(f"{len(first):x}\r\n".encode() + first + b"\r\n")
        with contextlib.suppress(ConnectionError):
            while True:
                await conn.send(framed)
        conn.hang_up()

    return script
