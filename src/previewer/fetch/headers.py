"""HTTP header rules: what is forwarded to the origin, and what may be shared.

Pure: imports nothing that touches the network, the disk or libvips.

Forwarding (RFC 9110 section 7.6): every end-to-end header the client sent
reaches the origin unchanged, repeats kept, except
- hop-by-hop headers, including every name listed in `Connection`;
- `Host` (it becomes the origin's) and `Content-Length`;
- conditional and range headers, which describe the preview, not the source;
- `Accept-Encoding`, replaced by `identity`: the body is decoded here, and
  images are compressed already;
- `Accept`, narrowed to the image types previewer decodes (`DECODABLE_TYPES`),
  so that an origin choosing the format from it never picks one previewer
  cannot read;
- anything the operator lists in `--drop-headers`.
`X-Forwarded-For` gets the client address appended and `Via` gets our hop; a
request without `User-Agent` gets previewer's own. `X-Request-Id` carries the
request's id (observe/logs.py): the client's when well formed, else previewer's, in
place of whatever the client sent.

Sharing (RFC 9111 section 3 and 3.5, rules for shared caches): a preview is
stored only when the origin did not say `no-store` or `private`, set no
cookie and did not vary on a request header other than `Accept` and
`Accept-Encoding`; when the request carried `Authorization` (and, with
`--cookie-requests private`, `Cookie`), the origin must also have said
`public` or given `s-maxage`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from multidict import CIMultiDict

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
# Request headers that identify a user: a response to them may be that user's alone.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})
# The source formats previewer decodes, by media type. The one list: the
# forwarded Accept keeps only these (and the wildcards). HEIF is not among
# them: previewer reads HEIC (render/heic.py), but an HEVC decode costs several
# times a JPEG of the same pixels (docs/imaging.md), so an origin that
# negotiates is not asked to trade its JPEG for one.
DECODABLE_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/avif",
    "image/tiff",
)
_ACCEPT_WILDCARDS = frozenset({"image/*", "*/*"})
_DECODABLE_RANGES = frozenset(DECODABLE_TYPES) | _ACCEPT_WILDCARDS
# Sent when none of the client's Accept is left: exactly what previewer reads.
ACCEPT_FALLBACK = ",".join(DECODABLE_TYPES)
# Vary on these is harmless: every variant is the same picture.
_VARY_HARMLESS = frozenset({"accept", "accept-encoding"})
VIA = f"1.1 previewer/{__version__}"
USER_AGENT = f"previewer/{__version__}"  # sent only when the client sent none
REQUEST_ID = "X-Request-Id"

Headers = list[tuple[str, str]]

# One element of a comma-separated list; a quoted string may hold commas.
_LIST_ELEMENT_RE = re.compile(r'(?:[^,"]|"(?:\\.|[^"\\])*"?)+')


def _tokens(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def _list_elements(values: Iterable[str]) -> list[str]:
    """The elements of one or more list-valued header lines, stripped, in order."""
    return [
        element.strip()
        for value in values
        for element in _LIST_ELEMENT_RE.findall(value)
        if element.strip()
    ]


def narrow_accept(values: Iterable[str]) -> str:
    """The client's Accept without the media ranges previewer cannot decode.

    Each kept element keeps its parameters (q-values included) and its
    place; `image/*` and `*/*` are kept as sent. When nothing is left,
    the fallback names exactly the types previewer decodes.
    """
    kept = [
        element
        for element in _list_elements(values)
        if element.split(";", 1)[0].strip().lower() in _DECODABLE_RANGES
    ]
    return ",".join(kept) or ACCEPT_FALLBACK


def forwarded_headers(
    client_headers: Iterable[tuple[str, str]],
    client_address: str | None,
    drop: frozenset[str] = frozenset(),
    request_id: str | None = None,
) -> Headers:
    """The headers to send to the origin, in the client's order."""
    client = CIMultiDict(client_headers)
    named_by_connection = {
        token for value in client.getall("Connection", []) for token in _tokens(value)
    }
    blocked = HOP_BY_HOP | NEVER_FORWARDED | named_by_connection | drop
    out = CIMultiDict((n, v) for n, v in client.items() if n.lower() not in blocked)
    if "Accept" in out:  # replaces the first Accept, in its place, and drops the rest
        out["Accept"] = narrow_accept(out.getall("Accept"))
    if "User-Agent" not in out and "user-agent" not in drop:
        out.add("User-Agent", USER_AGENT)
    out.add("Accept-Encoding", "identity")
    if client_address and "x-forwarded-for" not in drop:
        xff = out.popall("X-Forwarded-For", [])
        out.add("X-Forwarded-For", ", ".join([*xff, client_address]))
    if "via" not in drop:
        out.add("Via", ", ".join([*out.popall("Via", []), VIA]))
    if request_id is not None:
        out.popall(REQUEST_ID, None)
        if REQUEST_ID.lower() not in drop:
            out.add(REQUEST_ID, request_id)
    return list(out.items())


def credentials(headers: Iterable[tuple[str, str]]) -> Headers:
    """The credential headers (`Authorization`, `Cookie`) among `headers`, in order."""
    return [(name, value) for name, value in headers if name.lower() in CREDENTIAL_HEADERS]


def without_credentials(headers: Iterable[tuple[str, str]]) -> Headers:
    """`headers` minus the credential headers, as sent across origins on a redirect."""
    return [(name, value) for name, value in headers if name.lower() not in CREDENTIAL_HEADERS]


def cache_directives(values: Iterable[str]) -> set[str]:
    """Directive names of Cache-Control values, lower-cased, arguments dropped."""
    return {token.split("=", 1)[0].strip() for value in values for token in _tokens(value)}


def is_shareable(
    request_headers: Iterable[tuple[str, str]],
    response_headers: Iterable[tuple[str, str]],
    *,
    cookies_private: bool = False,
) -> bool:
    """May a shared cache store the preview of this response for other clients?

    By default only `Authorization` restricts storing, as RFC 9111 says;
    `cookies_private` makes `Cookie` restrict it the same way.
    """
    response = CIMultiDict(response_headers)
    directives = cache_directives(response.getall("Cache-Control", []))
    if directives & {"no-store", "private"} or "Set-Cookie" in response:
        return False
    varies = {token for value in response.getall("Vary", []) for token in _tokens(value)}
    if varies - _VARY_HARMLESS:  # includes `Vary: *`
        return False
    restricting = {name.lower() for name, _ in credentials(request_headers)}
    if not cookies_private:
        restricting.discard("cookie")
    if restricting:
        return bool(directives & {"public", "s-maxage"})
    return True
