"""Typed settings; the only module that reads the environment.

`load(environ, overrides)` builds `Settings` from `PREVIEWER_*` variables and
from command-line values (which win). One table, `OPTIONS`, names every
setting once: its flag, its variable, its parser and its help text, so the
CLI, the environment and the docs cannot drift apart.

Imports nothing that touches the network, the disk or libvips.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "PREVIEWER_"

GRAVITIES = ("attention", "centre")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the flag and the variable."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    access_log: bool = True  # off: only failed requests are logged
    max_age: int = 31_536_000
    request_timeout: float = 30.0
    shutdown_timeout: float = 10.0
    signing_key: bytes = b""  # empty: URL signing off
    signing_salt: bytes = b""


@dataclass(frozen=True)
class FetchConfig:
    timeout: float = 10.0
    max_redirects: int = 5
    max_source_bytes: int = 50 * 1024 * 1024
    drop_headers: frozenset[str] = frozenset()
    allow_private_networks: bool = False
    allowed_sources: tuple[str, ...] = ()  # host patterns; empty: any host the policy allows
    dns_cache_ttl: int = 10  # seconds a checked DNS answer is reused; 0 disables


@dataclass(frozen=True)
class CacheConfig:
    dir: Path = Path(".previewer-cache")
    size: int = 1024 * 1024 * 1024
    max_items: int = 0
    source_size: int = 256 * 1024 * 1024  # 0: no source cache
    memory_size: int = 32 * 1024 * 1024  # hot previews kept in memory too; 0: none


@dataclass(frozen=True)
class ImagingConfig:
    max_dimension: int = 4096
    quality: int = 80
    gravity: str = "attention"
    max_source_pixels: int = 50_000_000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    queue_size: int = 64


@dataclass(frozen=True)
class Settings:
    server: ServerConfig = field(default_factory=ServerConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    imaging: ImagingConfig = field(default_factory=ImagingConfig)


# --- value parsers -----------------------------------------------------------

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str) -> int:
    """`512MB` -> 512_000_000, `2GiB` -> 2_147_483_648, `1000` -> 1000."""
    match = _SIZE_RE.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a byte size: {text!r} (use e.g. 1000, 512MB or 2GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r} (use 1/true/yes/on or 0/false/no/off)")


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"-?[0-9]+", text.strip()):
            raise ValueError(f"not an integer: {text!r}")
        value = int(text.strip())
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"{value} is out of range ({bound})")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"must be a positive number of seconds, got {text!r}")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value == "center":
            value = "centre"
        if value not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return value

    return parse


_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def parse_header_names(text: str) -> frozenset[str]:
    """A comma-separated list of header names, lower-cased."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    for name in names:
        if not _TOKEN_RE.match(name):
            raise ValueError(f"not a header name: {name!r}")
    return frozenset(names)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _hex_secret(text: str) -> bytes:
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("must be hex-encoded, e.g. the output of `openssl rand -hex 32`") from None
    return value


_HOST_PATTERN_RE = re.compile(
    r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*"
)


def parse_host_patterns(text: str) -> tuple[str, ...]:
    """`example.com,*.cdn.example.com`: exact hosts, or `*.` for any subdomain."""
    patterns = [part.strip().lower().removesuffix(".") for part in text.split(",") if part.strip()]
    for pattern in patterns:
        if not _HOST_PATTERN_RE.fullmatch(pattern):
            raise ValueError(f"not a host pattern: {pattern!r} (use example.com or *.example.com)")
    return tuple(patterns)


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("must not be empty")
    return Path(text)


def _positive_bytes(text: str) -> int:
    value = parse_bytes(text)
    if value < 1:
        raise ValueError("must be at least 1 byte")
    return value


# --- the option table --------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One setting: `--flag`, `PREVIEWER_FLAG`, and where it lands in Settings."""

    flag: str
    section: str
    name: str
    parse: Callable[[str], Any]
    help: str
    is_switch: bool = False
    shown_default: str | None = None  # how --help shows the default, when not str(default)

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.flag.upper().replace("-", "_")

    def default(self) -> Any:
        return getattr(getattr(Settings(), self.section), self.name)

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        value = self.default()
        if isinstance(value, frozenset):
            return ",".join(sorted(value)) or "none"
        return str(value)


OPTIONS: tuple[Option, ...] = (
    Option("host", "server", "host", _non_empty, "address to listen on"),
    Option("port", "server", "port", _int_in(0, 65535), "TCP port to listen on (0 picks one)"),
    Option(
        "log-level", "server", "log_level", _choice(*LOG_LEVELS), "debug, info, warning or error"
    ),
    Option(
        "access-log",
        "server",
        "access_log",
        parse_bool,
        "log one line per request; off logs failed requests (4xx, 5xx) only",
        shown_default="on",
    ),
    Option("max-age", "server", "max_age", _int_in(0), "seconds for Cache-Control: max-age"),
    Option(
        "request-timeout",
        "server",
        "request_timeout",
        _seconds,
        "deadline in seconds for a whole request: queue wait, fetch and render",
    ),
    Option(
        "shutdown-timeout",
        "server",
        "shutdown_timeout",
        _seconds,
        "seconds to let requests in flight finish after SIGTERM",
    ),
    Option(
        "signing-key",
        "server",
        "signing_key",
        _hex_secret,
        "hex HMAC key; when set, every request must carry a valid signature",
        shown_default="none (signing off)",
    ),
    Option(
        "signing-salt",
        "server",
        "signing_salt",
        _hex_secret,
        "hex salt prepended to the signed path",
        shown_default="none",
    ),
    Option("cache-dir", "cache", "dir", _path, "directory of the disk cache"),
    Option(
        "cache-size",
        "cache",
        "size",
        _positive_bytes,
        "byte bound of the disk cache, e.g. 512MB or 2GiB",
        shown_default="1GiB",
    ),
    Option("cache-max-items", "cache", "max_items", _int_in(0), "entry bound; 0 means none"),
    Option(
        "source-cache-size",
        "cache",
        "source_size",
        parse_bytes,
        "byte bound of the cache of fetched sources (in <cache-dir>/sources); 0 turns it off",
        shown_default="256MiB",
    ),
    Option(
        "memory-cache-size",
        "cache",
        "memory_size",
        parse_bytes,
        "bytes of the most recently used previews also kept in memory; 0 turns it off",
        shown_default="32MiB",
    ),
    Option(
        "max-dimension",
        "imaging",
        "max_dimension",
        _int_in(1, 16384),
        "largest width or height a client may ask for",
    ),
    Option("quality", "imaging", "quality", _int_in(1, 100), "JPEG quality of previews"),
    Option(
        "gravity", "imaging", "gravity", _choice(*GRAVITIES), "crop gravity: attention or centre"
    ),
    Option(
        "max-source-pixels",
        "imaging",
        "max_source_pixels",
        _int_in(1),
        "largest source image, in pixels, checked before decoding",
    ),
    Option(
        "workers",
        "imaging",
        "workers",
        _int_in(1, 256),
        "render threads",
        shown_default="the CPU count",
    ),
    Option(
        "queue-size",
        "imaging",
        "queue_size",
        _int_in(0),
        "renders that may wait for a thread before the service answers 503",
    ),
    Option("fetch-timeout", "fetch", "timeout", _seconds, "deadline in seconds for a whole fetch"),
    Option("max-redirects", "fetch", "max_redirects", _int_in(0, 50), "redirects followed"),
    Option(
        "max-source-bytes",
        "fetch",
        "max_source_bytes",
        _positive_bytes,
        "largest source body in bytes (units as for --cache-size)",
        shown_default="50MiB",
    ),
    Option(
        "drop-headers",
        "fetch",
        "drop_headers",
        parse_header_names,
        "comma-separated request headers never forwarded to the origin",
    ),
    Option(
        "allowed-sources",
        "fetch",
        "allowed_sources",
        parse_host_patterns,
        "comma-separated source hosts allowed (example.com, *.example.com); empty: any",
        shown_default="any",
    ),
    Option(
        "dns-cache-ttl",
        "fetch",
        "dns_cache_ttl",
        _int_in(0, 3600),
        "seconds a checked DNS answer is reused; 0 resolves every new connection",
    ),
    Option(
        "allow-private-networks",
        "fetch",
        "allow_private_networks",
        parse_bool,
        "allow loopback and private source addresses (local use and tests only)",
        is_switch=True,
    ),
)


def load(environ: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `PREVIEWER_*` variables, then `overrides` (by flag name).

    Raises ConfigError naming the flag and variable of the first bad value.
    """
    overrides = overrides or {}
    unknown = set(overrides) - {opt.flag for opt in OPTIONS}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    sections: dict[str, dict[str, Any]] = {f.name: {} for f in dataclasses.fields(Settings)}
    for opt in OPTIONS:
        raw = overrides.get(opt.flag, environ.get(opt.env_var))
        if raw is None:
            continue
        where = f"--{opt.flag}" if opt.flag in overrides else opt.env_var
        try:
            sections[opt.section][opt.name] = opt.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return Settings(
        server=ServerConfig(**sections["server"]),
        fetch=FetchConfig(**sections["fetch"]),
        cache=CacheConfig(**sections["cache"]),
        imaging=ImagingConfig(**sections["imaging"]),
    )
