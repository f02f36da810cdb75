"""Parsers of setting values: the text of a flag or variable -> a typed value.

Each raises ValueError with a message for the user; `config.load` prefixes it
with the flag or variable at fault. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

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


def positive_bytes(text: str) -> int:
    value = parse_bytes(text)
    if value < 1:
        raise ValueError("must be at least 1 byte")
    return value


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r} (use 1/true/yes/on or 0/false/no/off)")


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in `low..high` (no upper bound when `high` is None)."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"-?[0-9]+", text.strip()):
            raise ValueError(f"not an integer: {text!r}")
        value = int(text.strip())
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"{value} is out of range ({bound})")
        return value

    return parse


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"must be a positive number of seconds, got {text!r}")
    return value


def seconds_or_off(text: str) -> float:
    """A positive, finite number of seconds, or `0` (or `off`) for none."""
    if text.strip().lower() in ("0", "0.0", "off"):
        return 0.0
    return seconds(text)


def choice(*choices: str, aliases: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """One of `choices`, case-insensitive; `aliases` maps other spellings onto them."""
    aliases = dict(aliases or {})

    def parse(text: str) -> str:
        value = text.strip().lower()
        value = aliases.get(value, value)
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


def non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def hex_secret(text: str) -> bytes:
    try:
        return bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("must be hex-encoded, e.g. the output of `openssl rand -hex 32`") from None


def path(text: str) -> Path:
    if not text.strip():
        raise ValueError("must not be empty")
    return Path(text)


def amqp_url(text: str) -> str:
    """An AMQP URL, `amqp://user:pass@host:5672/vhost` (or `amqps://`); empty: none."""
    value = text.strip()
    if value and not re.fullmatch(r"amqps?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"not an AMQP URL (use amqp://user:pass@host:5672/vhost): {text!r}")
    return value


def host_port(text: str) -> tuple[str, int] | None:
    """`127.0.0.1:9090`, `[::1]:9090` or `0.0.0.0:0` -> (host, port); empty or `off` -> None."""
    value = text.strip()
    if value.lower() in ("", "off"):
        return None
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"not host:port: {text!r} (use e.g. 127.0.0.1:9090 or [::1]:9090)")
    return host, int(port)
