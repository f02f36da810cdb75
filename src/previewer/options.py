"""Request path and query -> PreviewOptions, and the canonical cache key.

Pure: imports nothing that touches the network, the disk or libvips.

Path grammar (the query string, if any, belongs to the source):

    /{operation}/{width}/{height}/{source}
    operation := "fill" | "fit"
    source := [ ("http" | "https") ":/" ["/"] ] host [":" port] [path]

Normalisation, which decides when two requests share a preview:
- the scheme and host are lower-cased, an internationalised host is IDNA
  encoded, a trailing dot on the host is dropped and the scheme's default port
  is removed: these never change what the origin serves;
- the path and query are kept byte for byte as the client sent them: no
  percent-decoding, no case folding, no reordering of query parameters and no
  removal of dot segments, because an origin may treat any of those as a
  different resource.

Output format negotiation (`negotiate`), also pure: the client's `Accept`
header picks the output format before the cache key is made, so requests
whose `Accept` differ but lead to one format share one entry and one render.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from previewer.errors import InvalidRequest

# Where a fill's crop goes (docs/imaging.md, Gravity)
ATTENTION = "attention"  # the faces in the image, else the attention analysis
ATTENTION_ONLY = "attention-only"  # the attention analysis alone, no face step
CENTRE = "centre"  # the middle
GRAVITIES = (ATTENTION, ATTENTION_ONLY, CENTRE)
_GRAVITY_KEYS = {ATTENTION: "faces", ATTENTION_ONLY: "attention", CENTRE: "centre"}
"""A gravity's name in cache keys. `attention-only` is what `attention` was
before it looked for faces, so it keeps that name and the previews cached
under it; face-aware previews get keys of their own."""

FILL = "fill"  # cover the box, crop the overflow (at the gravity)
FIT = "fit"  # the whole source inside the box: no crop, no padding
OPERATIONS = (FILL, FIT)
_DEFAULT_PORTS = {"http": 80, "https": 443}

_DIMENSION_RE = re.compile(r"[0-9]{1,6}")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(//?)")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_IPV6_RE = re.compile(r"\[([0-9A-Fa-f:.]+)\]")
# RFC 3986 pchar plus "/" and "?"; "%" must start a well-formed escape.
_PATH_FULL_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")
MAX_SOURCE_LENGTH = 8192

# Output formats: the default rule, or one negotiated from Accept.
AUTO = "auto"  # JPEG, or PNG when the preview has alpha
WEBP = "webp"
AVIF = "avif"
OUTPUT_FORMATS = (AUTO, WEBP, AVIF)
MAX_EFFORT = 9  # AVIF encoder effort runs from 0 (fastest) to this


@dataclass(frozen=True)
class SourceURL:
    """A normalised source address: `scheme://host[:port]` plus the raw target."""

    scheme: str
    host: str
    port: int | None
    target: str  # path and query exactly as the client sent them, starting with "/"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORTS[self.scheme]

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


@dataclass(frozen=True)
class PreviewOptions:
    """Everything that decides the bytes of one preview."""

    operation: str  # FILL or FIT
    width: int
    height: int
    gravity: str  # used by FILL only
    quality: int
    source: SourceURL
    output_format: str = AUTO  # AUTO, WEBP or AVIF
    effort: int = 0  # AVIF encoder effort; 0 for the other formats

    def cache_key(self) -> str:
        """The canonical form of these options; equal keys mean equal previews.

        `quality` is the quality of the output format. The AVIF effort is
        in the key as well, since it changes the bytes; the keys of JPEG/PNG
        previews are the same as before negotiation existed. A fit crops
        nothing, so its key has no gravity: changing `--gravity` keeps the
        fit previews already cached.
        """
        effort = f"|e={self.effort}" if self.output_format == AVIF else ""
        gravity = f"|g={_GRAVITY_KEYS[self.gravity]}" if self.operation == FILL else ""
        return (
            f"v1|{self.operation}|{self.width}x{self.height}{gravity}"
            f"|q={self.quality}|f={self.output_format}{effort}|{self.source}"
        )


# --- output format negotiation ---------------------------------------------------

_MEDIA_TYPES = {AVIF: "image/avif", WEBP: "image/webp"}
_QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")


@dataclass(frozen=True)
class Output:
    """The format a preview is encoded in, with that format's encoder settings."""

    format: str  # AUTO, WEBP or AVIF
    quality: int
    effort: int = 0  # AVIF only


@dataclass(frozen=True)
class OutputRules:
    """Which formats negotiation may pick, and the settings of each format
    (their defaults live in config.ImagingConfig)."""

    webp: bool
    avif: bool
    quality: int  # JPEG
    webp_quality: int
    avif_quality: int
    avif_effort: int

    @property
    def negotiates(self) -> bool:
        """True when the format depends on `Accept` (responses then vary on it)."""
        return self.webp or self.avif

    def choose(self, accept: str | None) -> Output:
        """The output for a request with this `Accept` header (None: the header is absent)."""
        fmt = negotiate(accept, webp=self.webp, avif=self.avif)
        if fmt == AVIF:
            return Output(AVIF, self.avif_quality, self.avif_effort)
        if fmt == WEBP:
            return Output(WEBP, self.webp_quality)
        return Output(AUTO, self.quality)


def accepted_types(accept: str) -> frozenset[str]:
    """Media types an `Accept` header names explicitly with a weight above 0.

    Lower-cased; wildcards (`image/*`, `*/*`) are kept as written. A member
    with a malformed weight is ignored, as is one given `q=0` (RFC 9110
    12.4.2: "not acceptable").
    """
    named: set[str] = set()
    refused: set[str] = set()
    for member in accept.split(","):
        media_type, *params = (part.strip() for part in member.split(";"))
        media_type = media_type.lower()
        if not media_type:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE_RE.fullmatch(value) else -1.0
        if weight > 0:
            named.add(media_type)
        else:
            refused.add(media_type)
    return frozenset(named - refused)


def negotiate(accept: str | None, *, webp: bool, avif: bool) -> str:
    """AVIF, WEBP or AUTO for a request's `Accept` header.

    A format is chosen only when it is turned on and the header names its
    media type explicitly: `*/*` and `image/*` are sent by clients that cannot
    decode AVIF or WebP too, so they get AUTO, as does a request without the
    header. AVIF wins over WebP when both are named (it is the smaller).
    """
    if not (webp or avif) or not accept:
        return AUTO
    named = accepted_types(accept)
    if avif and _MEDIA_TYPES[AVIF] in named:
        return AVIF
    if webp and _MEDIA_TYPES[WEBP] in named:
        return WEBP
    return AUTO


def parse_dimension(text: str, name: str, maximum: int) -> int:
    if not _DIMENSION_RE.fullmatch(text):
        raise InvalidRequest(f"{name} must be a whole number from 1 to {maximum}.")
    value = int(text)
    if not 1 <= value <= maximum:
        raise InvalidRequest(f"{name} must be a whole number from 1 to {maximum}.")
    return value


def parse_host(text: str) -> str:
    """Validate and normalise a host: a DNS name, an IPv4 or a bracketed IPv6 literal."""
    ipv6 = _IPV6_RE.fullmatch(text)
    if ipv6:
        try:
            ipaddress.IPv6Address(ipv6.group(1))
        except ValueError:
            raise InvalidRequest("The source host name is not valid.") from None
        return ipv6.group(1).lower()
    host = text.lower().removesuffix(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidRequest("The source host name is not valid.") from None
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise InvalidRequest("The source host name is not valid.")
    return host


def parse_source(text: str) -> SourceURL:
    """`[scheme:/[/]]host[:port][/path][?query]` -> SourceURL (400 when malformed)."""
    if not text:
        raise InvalidRequest("The source address is missing.")
    if len(text) > MAX_SOURCE_LENGTH:
        raise InvalidRequest(f"The source address is longer than {MAX_SOURCE_LENGTH} characters.")
    scheme = "http"
    match = _SCHEME_RE.match(text)
    if match:
        scheme = match.group(1).lower()
        if scheme not in _DEFAULT_PORTS:
            raise InvalidRequest("Only http:// and https:// sources are supported.")
        text = text[match.end() :]
    split = min((i for i in (text.find("/"), text.find("?")) if i >= 0), default=len(text))
    authority, target = text[:split], text[split:]
    if not target.startswith("/"):
        target = "/" + target
    if not authority:
        raise InvalidRequest("The source address has no host.")
    if "@" in authority:
        raise InvalidRequest("Credentials in the source address are not supported.")
    host_text, port = authority, None
    port_match = re.fullmatch(r"(.*):([0-9]{1,5})", authority)
    if port_match:
        host_text, port = port_match.group(1), int(port_match.group(2))
        if not 1 <= port <= 65535:
            raise InvalidRequest("The source port is out of range.")
        if port == _DEFAULT_PORTS[scheme]:
            port = None
    host = parse_host(host_text)
    if not _PATH_FULL_RE.fullmatch(target):
        raise InvalidRequest("The source path has characters that must be percent-encoded.")
    return SourceURL(scheme=scheme, host=host, port=port, target=target)


def parse_request(
    raw_path: str,
    *,
    max_dimension: int,
    gravity: str,
    quality: int,
    output: Output | None = None,
) -> PreviewOptions:
    """Parse `/{fill|fit}/{w}/{h}/{source}[?query]` as the client sent it (not decoded).

    `output` is the negotiated format (see `OutputRules.choose`); None means
    the default, JPEG or PNG at `quality`.
    """
    path, sep, query = raw_path.partition("?")
    parts = path.split("/", 4)
    # ["", operation, width, height, source]
    operation = parts[1] if len(parts) > 1 else ""
    if operation not in OPERATIONS:
        raise InvalidRequest(f"Unknown operation {operation!r}: use fill or fit.")
    if len(parts) < 5 or parts[0] != "" or not parts[4]:
        raise InvalidRequest(f"Use /{operation}/{{width}}/{{height}}/{{source address}}.")
    width = parse_dimension(parts[2], "width", max_dimension)
    height = parse_dimension(parts[3], "height", max_dimension)
    source = parse_source(parts[4] + sep + query)
    output = output or Output(AUTO, quality)
    return PreviewOptions(
        operation=operation,
        width=width,
        height=height,
        gravity=gravity,
        quality=output.quality,
        source=source,
        output_format=output.format,
        effort=output.effort,
    )
