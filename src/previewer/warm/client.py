"""The HTTP/1.1 client of `previewer warm`: keep-alive GETs on asyncio streams.

A load tool must not be the bottleneck of what it loads. aiohttp's client
spends about 140 us of CPU on each request; one GET on a kept-alive asyncio
stream, written and parsed here, about 30 us (wrk: 20 us). Measured side by
side in docs/warm.md. So warm speaks the little HTTP it needs itself:

- one connection per worker, kept alive, opened again after a failure or a
  `Connection: close`; a request on a reused connection that the server had
  already closed (no byte of an answer came back) is sent once more on a new one;
- bodies by `Content-Length`, `Transfer-Encoding: chunked`, or up to the end
  of the connection; none for 1xx, 204 and 304; 1xx interim answers skipped;
- https through the standard library's TLS, with certificate checks.

No redirects, no cookies, no proxies, no decompression (no `Accept-Encoding`
is sent): previewer answers none of those. The service's own origin client
is fetch/fetcher.py; this one serves the tool alone and imports nothing else.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass

from yarl import URL

HEAD_LIMIT = 64 * 1024  # bytes of status line and headers
KEPT_BODY = 64 * 1024  # bytes of an error body kept for its JSON code
# on the lower-cased head: name, and value without the whitespace around it
_FIELD_RE = re.compile(r"\r\n([!#$%&'*+.^_`|~0-9a-z-]+):[ \t]*([^\r\n]*?)[ \t]*(?=\r\n)")


class BadResponse(Exception):
    """The server's answer is not HTTP/1.x as this client reads it."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names and values lower-cased; a repeated name keeps its last value
    size: int  # body bytes received
    body: bytes  # kept only for error statuses, at most KEPT_BODY bytes


class Target:
    """Where requests go: scheme, address, TLS context and the request's fixed lines."""

    def __init__(self, base: URL, headers: tuple[tuple[str, str], ...], user_agent: str) -> None:
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"not an http:// or https:// URL: {base}")
        self.host = base.host
        self.port = base.port or (443 if base.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if base.scheme == "https" else None
        self.prefix = base.raw_path.rstrip("/")
        names = {name.lower() for name, _ in headers}
        lines = []
        if "host" not in names:
            default = base.port is None or base.is_default_port()
            lines.append(f"Host: {base.raw_host if default else f'{base.raw_host}:{self.port}'}")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {user_agent}")
        lines += [f"{name}: {value}" for name, value in headers]
        self._tail = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def request(self, path: str) -> bytes:
        return f"GET {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._tail


class Connection:
    """One kept-alive connection; `get` reopens it when needed."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> Reply:
        request = self._target.request(path)
        reused = self._writer is not None
        try:
            return await self._exchange(request)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close()
            started = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if not reused or started:
                raise
        return await self._exchange(request)  # the server had closed the idle connection

    async def _exchange(self, request: bytes) -> Reply:
        try:
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(
                    self._target.host,
                    self._target.port,
                    ssl=self._target.ssl,
                    limit=HEAD_LIMIT,
                )
            assert self._reader is not None
            self._writer.write(request)
            reply, keep = await _read_reply(self._reader)
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return reply

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _read_reply(reader: asyncio.StreamReader) -> tuple[Reply, bool]:
    """One answer; the bool says whether the connection may carry another."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise BadResponse("headers too long") from None
        version, status, headers = _parse_head(head)
        if not 100 <= status < 200:
            break
    keep = version == "HTTP/1.1" and headers.get("connection") != "close"
    kept = bytearray()
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if status >= 400 and len(kept) < KEPT_BODY:
            kept.extend(chunk[: KEPT_BODY - len(kept)])

    if status in (204, 304):
        pass
    elif "chunked" in headers.get("transfer-encoding", ""):
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                length = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadResponse(f"bad chunk size {line[:40]!r}") from None
            if length == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                break
            take(await reader.readexactly(length))
            if await reader.readexactly(2) != b"\r\n":
                raise BadResponse("chunk not followed by CRLF")
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise BadResponse("bad Content-Length") from None
        take(await reader.readexactly(length))
    else:
        take(await reader.read())  # the body runs to the end of the connection
        keep = False
    return Reply(status, headers, size, bytes(kept)), keep


def _parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    text = head.decode("latin-1")
    status_line, _, _ = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BadResponse(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    fields = _FIELD_RE.findall(text.lower(), len(status_line))
    if len(fields) != text.count("\r\n") - 2:  # each line but the status and the blank one
        raise BadResponse("a header line without a name and a colon")
    return parts[0], int(parts[1]), dict(fields)
