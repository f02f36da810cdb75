"""Typed settings; the only module that reads the environment.

Each setting is declared once, as a field of a section dataclass, through
`setting()`: its type (the annotation), its default, its parser and its help
text. The `--flag` table and `--help` of each command (cli.py), the
`PREVIEWER_*` variables read by `load()` and the README's configuration table
(`config/doc.py`) are all derived from those declarations.

A section names the commands that take its settings (`COMMANDS`); a field may
narrow or widen that with `commands=`. Adding a setting is adding one field.

Imports nothing that touches the network, the disk or libvips.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, overload

from previewer.config.values import (
    amqp_url,
    choice,
    hex_secret,
    host_port,
    int_in,
    non_empty,
    parse_bool,
    parse_bytes,
    parse_header_names,
    parse_host_patterns,
    path,
    positive_bytes,
    seconds,
    seconds_or_off,
)
from previewer.options import GRAVITIES

ENV_PREFIX = "PREVIEWER_"
SERVE = "serve"
WORKER = "worker"

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
COOKIE_REQUESTS = ("shared", "private")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the flag or the variable."""


# --- declaring a setting ---------------------------------------------------------

_SPEC = "previewer.setting"
T = TypeVar("T")


@dataclass(frozen=True)
class _Spec:
    parse: Callable[[str], Any]
    help: str
    flag: str | None
    shown_default: str | None
    switch: bool
    commands: tuple[str, ...] | None


@overload
def setting(
    default: T,
    *,
    parse: Callable[[str], T],
    help: str,
    flag: str | None = ...,
    shown_default: str | None = ...,
    switch: bool = ...,
    commands: Iterable[str] | None = ...,
) -> T: ...


@overload
def setting(
    *,
    default_factory: Callable[[], T],
    parse: Callable[[str], T],
    help: str,
    flag: str | None = ...,
    shown_default: str | None = ...,
    switch: bool = ...,
    commands: Iterable[str] | None = ...,
) -> T: ...


def setting(
    default: Any = MISSING,
    *,
    default_factory: Any = MISSING,
    parse: Callable[[str], Any],
    help: str,
    flag: str | None = None,
    shown_default: str | None = None,
    switch: bool = False,
    commands: Iterable[str] | None = None,
) -> Any:
    """A dataclass field that is also a setting.

    `parse` turns the text of a flag or variable into the value (raising
    ValueError with a message for the user); `help` is the one description
    shown by `--help` and the README (backticks mark literals). `flag`
    defaults to the field name with dashes; the variable is `PREVIEWER_` and
    the flag in capitals. `shown_default` replaces the printed default where
    the value itself reads badly (`1GiB` for 1073741824). A `switch` is a
    boolean flag (`--x` / `--no-x`). `commands` overrides the section's.
    """
    spec = _Spec(parse, help, flag, shown_default, switch, tuple(commands) if commands else None)
    metadata = {_SPEC: spec}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# --- the settings ----------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """The HTTP front: address, logging, response headers, deadlines, signing."""

    COMMANDS: ClassVar[tuple[str, ...]] = (SERVE,)

    host: str = setting("127.0.0.1", parse=non_empty, help="address to listen on")
    port: int = setting(8080, parse=int_in(0, 65535), help="TCP port (0 picks a free one)")
    log_level: str = setting(
        "info",
        parse=choice(*LOG_LEVELS),
        help="`debug`, `info`, `warning` or `error`",
        commands=(SERVE, WORKER),
    )
    log_format: str = setting(
        "text",
        parse=choice(*LOG_FORMATS),
        help="`text` (one line per event) or `json` (one JSON object per line; fields in "
        "docs/operations.md)",
        commands=(SERVE, WORKER),
    )
    access_log: bool = setting(
        True,
        parse=parse_bool,
        help="one log line per request, on stderr; lines of successful requests are written "
        "in batches, within a second (failures at once); `off` logs failed requests "
        "(4xx, 5xx) only",
    )
    max_age: int = setting(31_536_000, parse=int_in(0), help="seconds in `Cache-Control: max-age`")
    request_timeout: float = setting(
        30.0, parse=seconds, help="seconds for a whole request: queue wait, fetch and render"
    )
    shutdown_timeout: float = setting(
        10.0,
        parse=seconds,
        help="seconds requests (a worker: jobs) in flight get to finish after SIGTERM or SIGINT",
        commands=(SERVE, WORKER),
    )
    # Slow and hostile clients (docs/security.md): each bounds what one
    # connection can hold; the defaults suit a service exposed directly.
    header_timeout: float = setting(
        10.0,
        parse=seconds_or_off,
        help="seconds a connection has to send a whole request head, from connecting (on a "
        "kept-alive connection: from the first byte of its next request); trickled bytes do "
        "not extend it; `0` turns it off",
        commands=(SERVE, WORKER),
    )
    keepalive_timeout: float = setting(
        75.0,
        parse=seconds_or_off,
        help="seconds an idle kept-alive connection stays open; keep it longer than the idle "
        "timeout of a load balancer in front (AWS ALB 60 s, nginx upstream 60 s); `0` turns "
        "it off",
        commands=(SERVE, WORKER),
    )
    send_timeout: float = setting(
        30.0,
        parse=seconds_or_off,
        help="seconds a response may make no progress (the client reads nothing) before the "
        "connection is cut; a slow client that keeps reading is never cut; `0` turns it off",
        commands=(SERVE, WORKER),
    )
    max_connections: int = setting(
        0,
        parse=int_in(0),
        help="open client connections; at the cap the one waiting longest for a request is "
        "closed to make room, and when all are busy a new one gets 503 `overloaded`; `0` "
        "derives it from the open-file limit (at most 2048)",
    )
    signing_key: bytes = setting(
        b"",
        parse=hex_secret,
        help="hex HMAC-SHA256 key; when set, requests must be signed (see docs/security.md)",
        shown_default="none (signing off)",
        commands=(SERVE, "sign", "warm"),
    )
    signing_salt: bytes = setting(
        b"",
        parse=hex_secret,
        help="hex salt prepended to the signed path",
        shown_default="none",
        commands=(SERVE, "sign", "warm"),
    )
    metrics_address: tuple[str, int] | None = setting(
        None,
        parse=host_port,
        help="`host:port` serving Prometheus metrics at `/metrics`, apart from the public port "
        "(see docs/operations.md); `off` serves none",
        shown_default="off",
        commands=(SERVE, WORKER),
    )
    playground: bool = setting(
        True,
        parse=parse_bool,
        switch=True,
        help="serve the playground page at `/` (see the README's Try it); never served "
        "while `--signing-key` is set",
    )


@dataclass(frozen=True)
class CacheConfig:
    """The disk cache of previews and of sources, and the in-memory hot set.

    `size` bounds every file under `dir`: previews, sources, entry headers and
    temporary files. The source cache's share of it is `source_size` bytes
    (None: a quarter of `size`; 0: no source cache); previews get the rest.
    A worker keeps sources only: the whole of `size` is its source cache.
    """

    COMMANDS: ClassVar[tuple[str, ...]] = (SERVE, WORKER)

    dir: Path = setting(
        Path(".previewer-cache"), parse=path, flag="cache-dir", help="directory of the disk cache"
    )
    size: int = setting(
        1024**3,
        parse=positive_bytes,
        flag="cache-size",
        help="byte bound of every file under `--cache-dir`: previews and sources together; "
        "units `B`, `KB`, `MB`, `GB`, `TB` (powers of 1000) and `KiB`, `MiB`, `GiB`, `TiB` "
        "(powers of 1024)",
        shown_default="1GiB",
    )
    max_items: int = setting(
        0,
        parse=int_in(0),
        flag="cache-max-items",
        help="entry bound of the preview cache; 0 means none",
        commands=(SERVE,),
    )
    memory_size: int = setting(
        32 * 1024**2,
        parse=parse_bytes,
        flag="memory-cache-size",
        help="bytes of recent previews also kept in memory; 0 turns it off",
        shown_default="32MiB",
        commands=(SERVE,),
    )
    source_size: int | None = setting(
        None,
        parse=parse_bytes,
        flag="source-cache-size",
        help="the share of `--cache-size` kept for fetched sources (`<cache-dir>/sources`); "
        "must leave room for previews; 0 turns it off",
        shown_default="a quarter of `--cache-size`",
    )

    @property
    def source_bytes(self) -> int:
        return self.size // SOURCE_SHARE_DIVISOR if self.source_size is None else self.source_size

    @property
    def preview_bytes(self) -> int:
        return self.size - self.source_bytes


SOURCE_SHARE_DIVISOR = 4  # the source cache's default share: a quarter of --cache-size


@dataclass(frozen=True)
class ImagingConfig:
    """What a render may produce and how many run at once."""

    COMMANDS: ClassVar[tuple[str, ...]] = (SERVE, WORKER)

    max_dimension: int = setting(
        4096, parse=int_in(1, 16384), help="largest width or height a client may ask for"
    )
    quality: int = setting(80, parse=int_in(1, 100), help="JPEG quality", commands=(SERVE,))
    gravity: str = setting(
        "attention",
        parse=choice(*GRAVITIES, aliases={"center": "centre"}),
        help="crop gravity: `attention` (keeps the faces it finds; without faces, the "
        "attention analysis of edges, skin tones and colour), `attention-only` (that analysis "
        "alone) or `centre` (also spelt `center`)",
        commands=(SERVE,),
    )
    max_source_pixels: int = setting(
        50_000_000,
        parse=int_in(1),
        help="largest source image, in pixels, checked from its header before decoding",
    )
    workers: int = setting(
        default_factory=lambda: os.cpu_count() or 1,
        parse=int_in(1, 256),
        help="render threads",
        shown_default="CPU count",
    )
    queue_size: int = setting(
        64, parse=int_in(0), help="renders that may wait for a thread; beyond that, 503 at once"
    )
    # Output format negotiation (docs/formats.md). The defaults come from
    # bench/formats.py: the lowest WebP and AVIF qualities at least as close to
    # the source (SSIM) as JPEG at `quality` 80; AVIF effort 3, the knee of the
    # measured cost (effort 4 saves one point more for 2.5x the CPU per miss).
    webp: bool = setting(
        False,
        parse=parse_bool,
        switch=True,
        help="WebP to requests whose `Accept` names `image/webp`; adds `Vary: Accept` "
        "(see docs/formats.md)",
    )
    avif: bool = setting(
        False,
        parse=parse_bool,
        switch=True,
        help="AVIF to requests whose `Accept` names `image/avif` (wins over WebP); "
        "adds `Vary: Accept`",
    )
    webp_quality: int = setting(78, parse=int_in(1, 100), help="WebP quality")
    avif_quality: int = setting(60, parse=int_in(1, 100), help="AVIF quality")
    avif_effort: int = setting(
        3,
        parse=int_in(0, 9),
        help="AVIF encoder effort, 0 (fastest) to 9 (smallest files); measured in docs/formats.md",
    )


@dataclass(frozen=True)
class FetchConfig:
    """Fetching sources: deadlines, limits, forwarded headers, allowed addresses."""

    COMMANDS: ClassVar[tuple[str, ...]] = (SERVE, WORKER)

    timeout: float = setting(
        10.0,
        parse=seconds,
        flag="fetch-timeout",
        help="seconds for a whole fetch: connect, redirects, headers and body",
    )
    max_redirects: int = setting(
        5, parse=int_in(0, 50), help="redirects followed; each hop is re-checked"
    )
    max_source_bytes: int = setting(
        50 * 1024**2,
        parse=positive_bytes,
        help="largest source body, checked against `Content-Length` and while streaming "
        "(units as for `--cache-size`)",
        shown_default="50MiB",
    )
    drop_headers: frozenset[str] = setting(
        frozenset(),
        parse=parse_header_names,
        help="comma-separated request headers never forwarded to origins",
        shown_default="none",
    )
    allow_private_networks: bool = setting(
        False,
        parse=parse_bool,
        switch=True,
        help="allow loopback and private source addresses (local use and tests only; "
        "see docs/security.md)",
    )
    allowed_sources: tuple[str, ...] = setting(
        (),
        parse=parse_host_patterns,
        help="comma-separated source hosts, `example.com` or `*.example.com`; empty: any",
        shown_default="any",
    )
    dns_cache_ttl: int = setting(
        10,
        parse=int_in(0, 3600),
        help="seconds a checked DNS answer is reused; 0 resolves every new connection",
    )
    cookie_requests: str = setting(
        "shared",
        parse=choice(*COOKIE_REQUESTS),
        help="previews of requests carrying `Cookie`: `shared` follows RFC 9111 (cached unless "
        "the origin's answer says `private` or `no-store`, sets a cookie or varies on "
        "`Cookie`); `private` caches them only when the origin says `public` or `s-maxage`, "
        "for origins that serve per-user images without saying so (see docs/cache.md)",
    )


@dataclass(frozen=True)
class BrokerConfig:
    """Broker mode: the RabbitMQ job queue between fronts and render workers."""

    COMMANDS: ClassVar[tuple[str, ...]] = (SERVE, WORKER)

    url: str = setting(
        "",
        parse=amqp_url,
        flag="broker",
        help="RabbitMQ URL, `amqp://user:pass@host:5672/vhost`; set: misses are rendered by "
        "`previewer worker` processes (see docs/scale-out.md)",
        shown_default="none (embedded mode)",
    )
    queue: str = setting(
        "previewer.render",
        parse=non_empty,
        flag="broker-queue",
        help="name of the job queue; fronts and workers must agree",
    )
    queue_length: int = setting(
        1000,
        parse=int_in(1),
        flag="broker-queue-length",
        help="jobs that may wait in the queue; beyond that, fronts answer 503 at once",
    )
    delivery_limit: int = setting(
        2,
        parse=int_in(1, 20),
        flag="broker-delivery-limit",
        help="deliveries of a job that ended without an answer (its worker died) before the "
        "job is refused as poison and dead-lettered",
    )


@dataclass(frozen=True)
class Settings:
    """Every section; the order here is the order of `--help` and the README table."""

    server: ServerConfig = field(default_factory=ServerConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    imaging: ImagingConfig = field(default_factory=ImagingConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)


# --- the derived option table ----------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One setting as the outside sees it: `--flag`, `PREVIEWER_FLAG`, and its field."""

    flag: str
    section: str
    name: str
    parse: Callable[[str], Any]
    help: str
    is_switch: bool
    shown_default: str | None
    commands: tuple[str, ...]

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.flag.upper().replace("-", "_")

    def default(self) -> Any:
        return getattr(getattr(Settings(), self.section), self.name)

    def default_text(self) -> str:
        """The default as `--help` and the README print it."""
        if self.shown_default is not None:
            return self.shown_default
        value = self.default()
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def default_is_literal(self) -> bool:
        """Whether `default_text()` is a value one could pass (`1GiB`), not prose (`any`)."""
        try:
            return bool(self.parse(self.default_text()) == self.default())
        except ValueError:
            return False


def _sections() -> list[tuple[str, type[Any]]]:
    return [(f.name, f.default_factory) for f in dataclasses.fields(Settings)]  # type: ignore[misc]


def _options() -> tuple[Option, ...]:
    options = []
    for section, cls in _sections():
        for f in dataclasses.fields(cls):
            spec: _Spec | None = f.metadata.get(_SPEC)
            if spec is None:  # pragma: no cover - a declaration mistake, caught at import
                raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
            options.append(
                Option(
                    flag=spec.flag or f.name.replace("_", "-"),
                    section=section,
                    name=f.name,
                    parse=spec.parse,
                    help=spec.help,
                    is_switch=spec.switch,
                    shown_default=spec.shown_default,
                    commands=spec.commands or cls.COMMANDS,
                )
            )
    return tuple(options)


OPTIONS: tuple[Option, ...] = _options()


def options_for(command: str) -> tuple[Option, ...]:
    """The settings `command` takes, in declaration order."""
    return tuple(opt for opt in OPTIONS if command in opt.commands)


def load(
    environ: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    command: str | None = None,
) -> Settings:
    """Build Settings from `PREVIEWER_*` variables, then `overrides` (by flag name).

    With `command`, only the settings that command takes are read (the rest
    keep their defaults, so a bad variable of another command does not stop
    it). Raises ConfigError naming the flag or variable of the first bad value.
    """
    overrides = overrides or {}
    options = OPTIONS if command is None else options_for(command)
    unknown = set(overrides) - {opt.flag for opt in options}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, dict[str, Any]] = {name: {} for name, _ in _sections()}
    for opt in options:
        raw = overrides.get(opt.flag, environ.get(opt.env_var))
        if raw is None:
            continue
        where = f"--{opt.flag}" if opt.flag in overrides else opt.env_var
        try:
            values[opt.section][opt.name] = opt.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    settings = Settings(**{name: cls(**values[name]) for name, cls in _sections()})
    _check_disk_budget(settings.cache)
    return settings


def _check_disk_budget(cache: CacheConfig) -> None:
    """The source cache's share must leave room for previews within --cache-size."""
    if cache.source_bytes < cache.size:
        return
    raise ConfigError(
        f"--source-cache-size ({ENV_PREFIX}SOURCE_CACHE_SIZE) of {cache.source_bytes} bytes "
        f"leaves no room for previews within --cache-size ({ENV_PREFIX}CACHE_SIZE) of "
        f"{cache.size} bytes: the source cache is a share of the cache's bytes, so it must "
        f"be smaller (or 0, which turns it off)"
    )
