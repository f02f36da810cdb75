"""Async source fetch: forwarded headers, redirects, limits, deadline, address policy.

The only module that imports the HTTP client (aiohttp's). Client exceptions
are translated into previewer errors here and nowhere else.

Every address is checked against the policy at connect time: literal hosts
before each hop, names inside the resolver, whose checked answers are exactly
the addresses the connector then dials. Redirects are followed here, one hop
at a time, so each hop is re-checked.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict
from yarl import URL

from previewer.config.settings import FetchConfig
from previewer.errors import (
    NoDescriptors,
    PreviewError,
    SourceForbidden,
    SourceStatus,
    SourceTimeout,
    SourceTooLarge,
    SourceUnavailable,
)
from previewer.fetch import policy
from previewer.fetch.headers import Headers, forwarded_headers, is_shareable, without_credentials
from previewer.options import SourceURL
from previewer.process import descriptors

log = logging.getLogger(__name__)

Resolver = AbstractResolver  # what Fetcher accepts to replace the system resolver
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SUCCESS = frozenset({200, 203})
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    body: bytes
    headers: Headers  # the origin's response headers
    shareable: bool  # may be stored for other clients (headers.is_shareable)


class PolicyResolver(AbstractResolver):
    """Resolves names, then drops every address the policy refuses.

    The connector dials only what this returns, so the address checked is
    the address connected to, whatever the name resolves to later.
    """

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        policy.check_host(host, allow_private=self._allow_private)
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refusal: SourceForbidden | None = None
        for result in results:
            try:
                policy.check_address(result["host"], allow_private=self._allow_private)
            except SourceForbidden as exc:
                refusal = exc
            else:
                allowed.append(result)
        if not allowed:
            raise refusal or SourceUnavailable(detail=f"{host} resolved to nothing")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class Fetcher:
    """Downloads sources over one pooled client session."""

    def __init__(self, config: FetchConfig, resolver: AbstractResolver | None = None) -> None:
        self.config = config
        self._resolver = PolicyResolver(config.allow_private_networks, resolver)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            limit=256,
            use_dns_cache=self.config.dns_cache_ttl > 0,
            ttl_dns_cache=self.config.dns_cache_ttl or None,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry one client's cookies to another
            timeout=aiohttp.ClientTimeout(total=None),  # fetch() sets the deadline
            skip_auto_headers=("User-Agent",),
            trust_env=False,
            auto_decompress=True,  # the byte cap applies to the inflated stream
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self,
        source: SourceURL,
        client_headers: Headers,
        client_address: str | None,
        request_id: str | None = None,
    ) -> FetchResult:
        """GET `source` with the client's headers, following redirects, within the deadline.

        The client's headers are filtered by the forwarding rules of `fetch/headers.py`,
        and the answer is judged by its sharing rules (`cookie_requests` decides
        whether a `Cookie` restricts storing as `Authorization` does). `request_id`
        is sent as `X-Request-Id`.
        """
        headers = forwarded_headers(
            client_headers, client_address, self.config.drop_headers, request_id
        )
        try:
            async with asyncio.timeout(self.config.timeout):
                body, response_headers = await self._follow(source, headers)
        except PreviewError:
            raise
        except (TimeoutError, aiohttp.ClientError, ValueError, OSError) as exc:
            raise _source_error(exc, self.config.timeout) from exc
        shareable = is_shareable(
            client_headers,
            response_headers,
            cookies_private=self.config.cookie_requests == "private",
        )
        return FetchResult(body, response_headers, shareable)

    async def _follow(self, source: SourceURL, headers: Headers) -> tuple[bytes, Headers]:
        """The body and the response headers of the final hop."""
        if self._session is None:
            raise RuntimeError("Fetcher.start() was not called")
        url = URL(str(source), encoded=True)
        self._check_url(url)
        for hop in range(self.config.max_redirects + 1):
            async with self._session.get(
                url, headers=CIMultiDict(headers), allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    if hop == self.config.max_redirects:
                        raise SourceUnavailable(
                            "The source redirected too many times.",
                            detail=f"more than {self.config.max_redirects} redirects",
                        )
                    target = url.join(URL(location, encoded=True))
                    self._check_url(target)
                    if target.origin() != url.origin():
                        headers = without_credentials(headers)
                    url = target
                    continue
                if resp.status not in _SUCCESS:
                    raise SourceStatus(resp.status, detail=f"{url} answered {resp.status}")
                body = await self._read_capped(resp)
                return body, list(resp.headers.items())
        raise AssertionError("unreachable: the loop returns or raises")

    def _check_url(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise SourceForbidden(
                "The source redirected to an address that is not allowed.",
                detail=f"refused redirect target {url}",
            )
        host = url.raw_host.lower().removesuffix(".")
        policy.check_allowed(host, self.config.allowed_sources)
        policy.check_host(host, allow_private=self.config.allow_private_networks)

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.config.max_source_bytes
        declared = resp.content_length
        if declared is not None and declared > limit:
            raise SourceTooLarge(
                f"The source is larger than {limit} bytes.",
                detail=f"Content-Length {declared} > {limit}",
            )
        # Chunks joined once at the end: a growing bytearray would over-allocate
        # and then be copied whole, up to three times the body at the peak.
        chunks: list[bytes] = []
        received = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            chunks.append(chunk)
            received += len(chunk)
            if received > limit:
                raise SourceTooLarge(
                    f"The source is larger than {limit} bytes.",
                    detail=f"body passed {limit} bytes while streaming",
                )
        return b"".join(chunks)


def _source_error(exc: Exception, timeout: float) -> PreviewError:
    """The previewer error for a client exception raised while fetching."""
    if descriptors.exhausted(exc):  # our side had no socket to give: worth a retry
        return NoDescriptors(detail=f"no descriptor to fetch with: {exc}")
    if isinstance(exc, TimeoutError):
        return SourceTimeout(detail=f"no complete answer within {timeout}s")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return SourceUnavailable(detail=f"DNS lookup failed: {exc}")
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ClientConnectorCertificateError):
        return SourceUnavailable(detail=f"TLS failure: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return SourceUnavailable(detail=f"cannot connect: {exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return SourceUnavailable(detail=f"body cut short: {exc}")
    # any other client error, a malformed URL, or a socket-level failure
    return SourceUnavailable(detail=f"{type(exc).__name__}: {exc}")
