"""HTTP header rules: what is forwarded to the origin, and what may be shared.

Pure: imports nothing that touches the network, the disk or libvips.

Forwarding (RFC 9110 section 7.6): every end-to-end header the client sent
reaches the origin unchanged, repeats kept, except
- hop-by-hop headers, including every name listed in `Connection`;
- `Host` (it becomes the origin's) and `Content-Length`;
- conditional and range headers, which describe the preview, not the source;
- `Accept-Encoding`, replaced by `identity`: the body is decoded here, and
  images are compressed already;
- anything the operator lists in `--drop-headers`.
`X-Forwarded-For` gets the client address appended and `Via` gets our hop; a
request without `User-Agent` gets previewer's own.

Sharing (RFC 9111 section 3 and 3.5, rules for shared caches): a preview is
stored only when the origin did not say `no-store` or `private` and set no
cookie; when the request carried `Authorization` or `Cookie`, the origin must
also have said `public` or given `s-maxage`.
"""

from __future__ import annotations

from collections.abc import Iterable

from previewer import __version__

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NEVER_FORWARDED = frozenset(
    {
        "host",
        "content-length",
        "accept-encoding",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
        "range",
    }
)
CREDENTIAL_HEADERS = ("authorization", "cookie")
VIA = f"1.1 previewer/{__version__}"
USER_AGENT = f"previewer/{__version__}"  # sent only when the client sent none

Headers = list[tuple[str, str]]


def _tokens(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def forwarded_headers(
    client_headers: Iterable[tuple[str, str]],
    client_address: str | None,
    drop: frozenset[str] = frozenset(),
) -> Headers:
    """The headers to send to the origin, in the client's order."""
    client_headers = list(client_headers)
    named_by_connection = {
        token
        for name, value in client_headers
        if name.lower() == "connection"
        for token in _tokens(value)
    }
    blocked = HOP_BY_HOP | NEVER_FORWARDED | named_by_connection | drop
    out: Headers = [(n, v) for n, v in client_headers if n.lower() not in blocked]
    if not any(n.lower() == "user-agent" for n, _ in out) and "user-agent" not in drop:
        out.append(("User-Agent", USER_AGENT))
    out.append(("Accept-Encoding", "identity"))
    if client_address and "x-forwarded-for" not in drop:
        xff = [v for n, v in out if n.lower() == "x-forwarded-for"]
        out = [(n, v) for n, v in out if n.lower() != "x-forwarded-for"]
        out.append(("X-Forwarded-For", ", ".join([*xff, client_address])))
    if "via" not in drop:
        via = [v for n, v in out if n.lower() == "via"]
        out = [(n, v) for n, v in out if n.lower() != "via"]
        out.append(("Via", ", ".join([*via, VIA])))
    return out


def has_credentials(headers: Iterable[tuple[str, str]]) -> bool:
    return any(name.lower() in CREDENTIAL_HEADERS for name, _ in headers)


def cache_directives(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Directive names of every Cache-Control header, lower-cased, arguments dropped."""
    return {
        token.split("=", 1)[0].strip()
        for name, value in headers
        if name.lower() == "cache-control"
        for token in _tokens(value)
    }


def is_shareable(
    request_headers: Iterable[tuple[str, str]], response_headers: Iterable[tuple[str, str]]
) -> bool:
    """May a shared cache store the preview of this response for other clients?"""
    response_headers = list(response_headers)
    directives = cache_directives(response_headers)
    if directives & {"no-store", "private"}:
        return False
    if any(name.lower() == "set-cookie" for name, _ in response_headers):
        return False
    if has_credentials(request_headers):
        return bool(directives & {"public", "s-maxage"})
    return True
