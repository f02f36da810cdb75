"""previewer.config.settings.load (from a plain dict, never os.environ), the README table, cli."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from previewer import cli
from previewer.config import doc as config_doc
from previewer.config.settings import OPTIONS, WORKER, ConfigError, Settings, load, options_for
from previewer.config.values import choice, parse_bool, parse_bytes, parse_header_names

README = Path(__file__).parents[3] / "README.md"

# --- defaults ---------------------------------------------------------------------


def test_empty_environ_gives_the_defaults() -> None:
    assert load({}) == Settings()
    assert load({}, {}) == Settings()


def test_defaults_are_safe() -> None:
    settings = load({})
    assert settings.server.host == "127.0.0.1"
    assert settings.fetch.allow_private_networks is False
    assert settings.fetch.drop_headers == frozenset()
    assert settings.cache.max_items == 0
    assert settings.imaging.gravity == "attention"
    assert settings.imaging.workers >= 1
    assert (settings.imaging.webp, settings.imaging.avif) == (False, False)  # opt-in


def test_unrelated_variables_are_ignored() -> None:
    environ = {"PORT": "1", "previewer_port": "2", "PREVIEWER_NOT_A_SETTING": "3", "HOME": "/x"}
    assert load(environ) == Settings()


def test_every_option_has_its_own_variable() -> None:
    names = [opt.env_var for opt in OPTIONS]
    assert len(names) == len(set(names))
    for opt in OPTIONS:
        assert opt.env_var == "PREVIEWER_" + opt.flag.upper().replace("-", "_")


# --- each variable ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "section", "name", "expected"),
    [
        ("PREVIEWER_HOST", " 0.0.0.0 ", "server", "host", "0.0.0.0"),
        ("PREVIEWER_PORT", "9000", "server", "port", 9000),
        ("PREVIEWER_PORT", "0", "server", "port", 0),
        ("PREVIEWER_PORT", "65535", "server", "port", 65535),
        ("PREVIEWER_LOG_LEVEL", "DEBUG", "server", "log_level", "debug"),
        ("PREVIEWER_LOG_LEVEL", "warning", "server", "log_level", "warning"),
        ("PREVIEWER_MAX_AGE", "0", "server", "max_age", 0),
        ("PREVIEWER_MAX_AGE", "3600", "server", "max_age", 3600),
        ("PREVIEWER_REQUEST_TIMEOUT", "2.5", "server", "request_timeout", 2.5),
        ("PREVIEWER_SHUTDOWN_TIMEOUT", "1", "server", "shutdown_timeout", 1.0),
        ("PREVIEWER_CACHE_DIR", "/var/cache/p", "cache", "dir", Path("/var/cache/p")),
        ("PREVIEWER_CACHE_SIZE", "512MB", "cache", "size", 512_000_000),
        ("PREVIEWER_CACHE_SIZE", "2GiB", "cache", "size", 2 * 1024**3),
        ("PREVIEWER_CACHE_MAX_ITEMS", "100", "cache", "max_items", 100),
        ("PREVIEWER_MAX_DIMENSION", "16384", "imaging", "max_dimension", 16384),
        ("PREVIEWER_MAX_DIMENSION", "1", "imaging", "max_dimension", 1),
        ("PREVIEWER_QUALITY", "1", "imaging", "quality", 1),
        ("PREVIEWER_QUALITY", "100", "imaging", "quality", 100),
        ("PREVIEWER_GRAVITY", "centre", "imaging", "gravity", "centre"),
        ("PREVIEWER_GRAVITY", "center", "imaging", "gravity", "centre"),
        ("PREVIEWER_GRAVITY", "CENTER", "imaging", "gravity", "centre"),
        ("PREVIEWER_GRAVITY", "Attention", "imaging", "gravity", "attention"),
        ("PREVIEWER_MAX_SOURCE_PIXELS", "1000", "imaging", "max_source_pixels", 1000),
        ("PREVIEWER_WORKERS", "3", "imaging", "workers", 3),
        ("PREVIEWER_QUEUE_SIZE", "0", "imaging", "queue_size", 0),
        ("PREVIEWER_FETCH_TIMEOUT", "0.25", "fetch", "timeout", 0.25),
        ("PREVIEWER_MAX_REDIRECTS", "0", "fetch", "max_redirects", 0),
        ("PREVIEWER_MAX_REDIRECTS", "50", "fetch", "max_redirects", 50),
        ("PREVIEWER_MAX_SOURCE_BYTES", "1KiB", "fetch", "max_source_bytes", 1024),
        (
            "PREVIEWER_DROP_HEADERS",
            "Cookie, Authorization,,X-Api-Key ",
            "fetch",
            "drop_headers",
            frozenset({"cookie", "authorization", "x-api-key"}),
        ),
        ("PREVIEWER_DROP_HEADERS", "", "fetch", "drop_headers", frozenset()),
        ("PREVIEWER_ALLOW_PRIVATE_NETWORKS", "yes", "fetch", "allow_private_networks", True),
        ("PREVIEWER_ALLOW_PRIVATE_NETWORKS", "off", "fetch", "allow_private_networks", False),
        ("PREVIEWER_SIGNING_KEY", "00ff", "server", "signing_key", b"\x00\xff"),
        ("PREVIEWER_SIGNING_SALT", " 6869 ", "server", "signing_salt", b"hi"),
        (
            "PREVIEWER_ALLOWED_SOURCES",
            "Example.com., *.cdn.example.org",
            "fetch",
            "allowed_sources",
            ("example.com", "*.cdn.example.org"),
        ),
        ("PREVIEWER_DNS_CACHE_TTL", "0", "fetch", "dns_cache_ttl", 0),
        ("PREVIEWER_SOURCE_CACHE_SIZE", "0", "cache", "source_size", 0),
        ("PREVIEWER_SOURCE_CACHE_SIZE", "1GB", "cache", "source_size", 10**9),
        ("PREVIEWER_DNS_CACHE_TTL", "60", "fetch", "dns_cache_ttl", 60),
        ("PREVIEWER_COOKIE_REQUESTS", "Private", "fetch", "cookie_requests", "private"),
        ("PREVIEWER_COOKIE_REQUESTS", "shared", "fetch", "cookie_requests", "shared"),
        ("PREVIEWER_WEBP", "true", "imaging", "webp", True),
        ("PREVIEWER_AVIF", "1", "imaging", "avif", True),
        ("PREVIEWER_WEBP_QUALITY", "1", "imaging", "webp_quality", 1),
        ("PREVIEWER_AVIF_QUALITY", "100", "imaging", "avif_quality", 100),
        ("PREVIEWER_AVIF_EFFORT", "0", "imaging", "avif_effort", 0),
        ("PREVIEWER_AVIF_EFFORT", "9", "imaging", "avif_effort", 9),
    ],
)
def test_each_variable(variable: str, raw: str, section: str, name: str, expected: Any) -> None:
    settings = load({variable: raw})
    assert getattr(getattr(settings, section), name) == expected
    # and nothing else moved
    others = {(opt.section, opt.name) for opt in OPTIONS if opt.env_var != variable}
    for other_section, other_name in others:
        assert getattr(getattr(settings, other_section), other_name) == getattr(
            getattr(Settings(), other_section), other_name
        )


def test_every_option_is_read_from_its_variable() -> None:
    """A variable for each option that differs from its default must change the setting."""
    values = {
        "host": "::1",
        "port": "1234",
        "log-level": "error",
        "max-age": "7",
        "request-timeout": "3",
        "shutdown-timeout": "4",
        "cache-dir": "elsewhere",
        "cache-size": "5MB",
        "cache-max-items": "6",
        "max-dimension": "77",
        "quality": "8",
        "gravity": "centre" if Settings().imaging.gravity != "centre" else "attention",
        "max-source-pixels": "99",
        "workers": "255",
        "queue-size": "11",
        "fetch-timeout": "12",
        "max-redirects": "13",
        "max-source-bytes": "14KB",
        "drop-headers": "x-one",
        "allow-private-networks": "1",
        "cookie-requests": "private",
        "signing-key": "0badc0de",
        "signing-salt": "5a17",
        "allowed-sources": "example.com",
        "dns-cache-ttl": "0",
        "source-cache-size": "1MiB",
        "memory-cache-size": "2MiB",
        "access-log": "off",
        "playground": "off",
        "broker": "amqp://user:secret@rabbit.example:5672/previews",
        "broker-queue": "renders",
        "broker-queue-length": "17",
        "broker-delivery-limit": "5",
        "webp": "on",
        "avif": "yes",
        "webp-quality": "50",
        "avif-quality": "40",
        "avif-effort": "8",
        "log-format": "json",
        "metrics-address": "127.0.0.1:9090",
        "header-timeout": "off",
        "keepalive-timeout": "5",
        "send-timeout": "2.5",
        "max-connections": "100",
    }
    assert set(values) == {opt.flag for opt in OPTIONS}
    settings = load({opt.env_var: values[opt.flag] for opt in OPTIONS})
    for opt in OPTIONS:
        assert getattr(getattr(settings, opt.section), opt.name) != opt.default(), opt.flag


def test_overrides_win_over_environ() -> None:
    environ = {"PREVIEWER_PORT": "1000", "PREVIEWER_QUALITY": "50"}
    settings = load(environ, {"port": "2000"})
    assert settings.server.port == 2000
    assert settings.imaging.quality == 50


def test_an_override_hides_a_bad_variable() -> None:
    settings = load({"PREVIEWER_PORT": "not a port"}, {"port": "2000"})
    assert settings.server.port == 2000


def test_unknown_override_raises() -> None:
    with pytest.raises(ConfigError, match="no-such-flag"):
        load({}, {"no-such-flag": "1"})


def test_override_keys_are_flags_not_variables() -> None:
    with pytest.raises(ConfigError):
        load({}, {"PREVIEWER_PORT": "1"})
    with pytest.raises(ConfigError):
        load({}, {"max_age": "1"})


# --- bad values: every message names the variable, or the flag for overrides --------

BAD_VALUES: list[tuple[str, str]] = [
    ("broker", "http://rabbit.example/"),
    ("broker", "amqp://"),
    ("broker", "rabbit.example:5672"),
    ("broker-queue", " "),
    ("broker-queue-length", "0"),
    ("broker-delivery-limit", "0"),
    ("broker-delivery-limit", "21"),
    ("log-format", "xml"),
    ("metrics-address", "9090"),
    ("port", "nope"),
    ("port", "-1"),
    ("port", "65536"),
    ("port", "80.5"),
    ("port", ""),
    ("port", "8_080"),
    ("port", "\uff18\uff10"),  # fullwidth digits
    ("host", ""),
    ("host", "  "),
    ("log-level", "verbose"),
    ("max-age", "-1"),
    ("max-age", "forever"),
    ("request-timeout", "0"),
    ("request-timeout", "-1"),
    ("request-timeout", "nan"),
    ("request-timeout", "inf"),
    ("request-timeout", "soon"),
    ("shutdown-timeout", "0"),
    ("header-timeout", "-1"),
    ("header-timeout", "nan"),
    ("keepalive-timeout", "never"),
    ("send-timeout", "inf"),
    ("max-connections", "-1"),
    ("max-connections", "many"),
    ("cache-dir", ""),
    ("cache-dir", "   "),
    ("cache-size", "0"),
    ("cache-size", "0.1"),
    ("cache-size", "-5MB"),
    ("cache-size", "10XB"),
    ("cache-size", "lots"),
    ("cache-max-items", "-1"),
    ("max-dimension", "0"),
    ("max-dimension", "16385"),
    ("quality", "0"),
    ("quality", "101"),
    ("gravity", "north"),
    ("gravity", ""),
    ("max-source-pixels", "0"),
    ("workers", "0"),
    ("workers", "257"),
    ("queue-size", "-1"),
    ("fetch-timeout", "0"),
    ("max-redirects", "-1"),
    ("max-redirects", "51"),
    ("max-source-bytes", "0"),
    ("max-source-bytes", "1PB"),
    ("drop-headers", "x foo"),
    ("drop-headers", "a:b"),
    ("allow-private-networks", "maybe"),
    ("access-log", "sometimes"),
    ("playground", "perhaps"),
    ("signing-key", "not hex"),
    ("signing-salt", "abc"),
    ("allowed-sources", "example.com/path"),
    ("allowed-sources", "*"),
    ("allowed-sources", "a.*.example.com"),
    ("allowed-sources", "user@example.com"),
    ("dns-cache-ttl", "-1"),
    ("source-cache-size", "-1"),
    ("source-cache-size", "big"),
    ("memory-cache-size", "-1"),
    ("dns-cache-ttl", "1.5"),
    ("cookie-requests", "public"),
    ("cookie-requests", ""),
    ("allow-private-networks", ""),
    ("webp", "webp"),
    ("avif", "2"),
    ("webp-quality", "0"),
    ("avif-quality", "101"),
    ("avif-effort", "10"),
    ("avif-effort", "-1"),
]


def test_bad_value_table_covers_every_option_that_can_fail() -> None:
    assert {flag for flag, _ in BAD_VALUES} == {opt.flag for opt in OPTIONS}


_BY_FLAG = {opt.flag: opt for opt in OPTIONS}


@pytest.mark.parametrize(("flag", "raw"), BAD_VALUES)
def test_bad_variable_is_named_in_the_error(flag: str, raw: str) -> None:
    variable = _BY_FLAG[flag].env_var
    with pytest.raises(ConfigError) as info:
        load({variable: raw})
    assert variable in str(info.value)
    assert f"--{flag}" not in str(info.value)


@pytest.mark.parametrize(("flag", "raw"), BAD_VALUES)
def test_bad_override_is_named_by_its_flag(flag: str, raw: str) -> None:
    variable = _BY_FLAG[flag].env_var
    with pytest.raises(ConfigError) as info:
        load({variable: _good_value(flag)}, {flag: raw})
    assert f"--{flag}" in str(info.value)
    assert variable not in str(info.value)


def _good_value(flag: str) -> str:
    return str(_BY_FLAG[flag].default()) if flag != "drop-headers" else ""


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="PREVIEWER_QUALITY"):
        load({"PREVIEWER_QUALITY": "high"})


# --- byte sizes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", 1000),
        ("0", 0),
        ("512MB", 512_000_000),
        ("512mb", 512_000_000),
        ("512M", 512_000_000),
        ("2GiB", 2 * 1024**3),
        ("2gib", 2 * 1024**3),
        ("1KiB", 1024),
        ("1k", 1000),
        ("3kb", 3000),
        ("10B", 10),
        ("1TB", 10**12),
        ("1TiB", 1024**4),
        ("1.5GB", 1_500_000_000),
        ("0.5KiB", 512),
        (" 10 MiB ", 10 * 1024**2),
    ],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    "text", ["", " ", "MB", "-1", "-1MB", "1 2", "1e3", "1PB", "1.5.5", "ten", "1 M B", ".5MB"]
)
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="byte size"):
        parse_bytes(text)


def test_byte_sizes_through_load() -> None:
    settings = load({"PREVIEWER_CACHE_SIZE": "512MB", "PREVIEWER_MAX_SOURCE_BYTES": "2GiB"})
    assert settings.cache.size == 512_000_000
    assert settings.fetch.max_source_bytes == 2 * 1024**3
    assert load({"PREVIEWER_CACHE_SIZE": "1000"}).cache.size == 1000


# --- booleans ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "true", "yes", "on", "TRUE", "Yes", " on "])
def test_parse_bool_true(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "false", "no", "off", "FALSE", "No", " off "])
def test_parse_bool_false(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "2", "y", "n", "t", "enabled", "truthy", "-1"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_bool(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
    ],
)
def test_booleans_through_load(raw: str, expected: bool) -> None:
    settings = load({"PREVIEWER_ALLOW_PRIVATE_NETWORKS": raw})
    assert settings.fetch.allow_private_networks is expected


# --- header names -----------------------------------------------------------------


def test_parse_header_names() -> None:
    assert parse_header_names("Cookie,AUTHORIZATION , x-custom-id") == frozenset(
        {"cookie", "authorization", "x-custom-id"}
    )
    assert parse_header_names(" , ,") == frozenset()
    assert parse_header_names("a,A,a") == frozenset({"a"})


@pytest.mark.parametrize("text", ["x foo", "a:b", "x-a,(b)", 'x"y', "caf\u00e9"])
def test_parse_header_names_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="header name"):
        parse_header_names(text)


# --- the command line -------------------------------------------------------------


def test_parse_args_reads_the_command_and_environ() -> None:
    command, settings, _ = cli.parse_args(["serve"], {"PREVIEWER_PORT": "8001"})
    assert command == "serve"
    assert settings.server.port == 8001


def test_flag_beats_variable() -> None:
    environ = {"PREVIEWER_PORT": "8001", "PREVIEWER_GRAVITY": "attention"}
    _, settings, _ = cli.parse_args(["serve", "--port", "9001", "--gravity", "center"], environ)
    assert settings.server.port == 9001
    assert settings.imaging.gravity == "centre"


def test_flags_reach_every_section() -> None:
    _, settings, _ = cli.parse_args(
        [
            "serve",
            "--cache-dir",
            "/tmp/somewhere",
            "--cache-size",
            "2GiB",
            "--drop-headers",
            "Cookie,Authorization",
            "--max-redirects",
            "2",
            "--workers",
            "2",
        ],
        {},
    )
    assert settings.cache.dir == Path("/tmp/somewhere")
    assert settings.cache.size == 2 * 1024**3
    assert settings.fetch.drop_headers == frozenset({"cookie", "authorization"})
    assert settings.fetch.max_redirects == 2
    assert settings.imaging.workers == 2


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["serve"], {}, False),
        (["serve"], {"PREVIEWER_ALLOW_PRIVATE_NETWORKS": "1"}, True),
        (["serve", "--allow-private-networks"], {}, True),
        (["serve", "--allow-private-networks"], {"PREVIEWER_ALLOW_PRIVATE_NETWORKS": "0"}, True),
        (["serve", "--no-allow-private-networks"], {}, False),
        (
            ["serve", "--no-allow-private-networks"],
            {"PREVIEWER_ALLOW_PRIVATE_NETWORKS": "yes"},
            False,
        ),
    ],
)
def test_allow_private_networks_switch(
    argv: list[str], environ: dict[str, str], expected: bool
) -> None:
    _, settings, _ = cli.parse_args(argv, environ)
    assert settings.fetch.allow_private_networks is expected


def test_bad_flag_value_raises_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match="--quality"):
        cli.parse_args(["serve", "--quality", "200"], {})


def test_bad_variable_raises_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="PREVIEWER_QUALITY"):
        cli.parse_args(["serve"], {"PREVIEWER_QUALITY": "200"})


def test_unknown_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.parse_args(["serve", "--no-such-flag", "1"], {})
    assert info.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.parse_args([], {})
    assert info.value.code == 2
    assert capsys.readouterr().err


def test_main_reports_a_bad_flag_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--port", "nope"]) == 2
    captured = capsys.readouterr()
    assert "--port" in captured.err
    assert "nope" in captured.err
    assert captured.out == ""


# --- one declaration per setting ----------------------------------------------------


def test_readme_table_is_generated_from_the_declarations() -> None:
    readme = README.read_text(encoding="utf-8")
    assert config_doc.with_table(readme, config_doc.markdown_table()) == readme, (
        "README.md's configuration table is out of date: run `make docs`"
    )


def test_readme_table_has_a_row_per_setting_with_its_default() -> None:
    table = config_doc.markdown_table()
    for opt in options_for("serve"):
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `--{opt.flag}`")]
        assert f"`{opt.env_var}`" in row
        assert opt.default_text() in row
    assert "| `--cache-size` | `PREVIEWER_CACHE_SIZE` | `1GiB` |" in table
    assert "| `--workers` | `PREVIEWER_WORKERS` | CPU count |" in table  # prose, not a value


def test_make_docs_rewrites_only_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(
        f"# title\n\n{config_doc.BEGIN}\n| old | table |\n{config_doc.END}\n\n## after\n",
        encoding="utf-8",
    )
    assert config_doc.main([str(stale)]) == 0
    text = stale.read_text(encoding="utf-8")
    assert text.startswith(f"# title\n\n{config_doc.BEGIN}\n| flag |")
    assert text.endswith(f"{config_doc.END}\n\n## after\n")
    assert "| old |" not in text
    assert "updated" in capsys.readouterr().out
    assert config_doc.main([str(stale)]) == 0  # a second run changes nothing
    assert capsys.readouterr().out == ""


def test_make_docs_command_line_rewrites_each_readme_given(tmp_path: Path) -> None:
    """`python -m previewer.config.doc README.md`, as `make docs` runs it."""
    stale = tmp_path / "README.md"
    stale.write_text(f"{config_doc.BEGIN}\n| old | table |\n{config_doc.END}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "previewer.config.doc", str(stale)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"updated {stale}\n")
    text = stale.read_text(encoding="utf-8")
    assert text == f"{config_doc.BEGIN}\n{config_doc.markdown_table()}{config_doc.END}\n"


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        config_doc.with_table("# no table here\n", config_doc.markdown_table())


def test_only_gravity_takes_the_center_spelling() -> None:
    assert load({"PREVIEWER_GRAVITY": "center"}).imaging.gravity == "centre"
    with pytest.raises(ValueError, match="not one of"):
        choice("centre", "other")("center")
    assert choice("centre", aliases={"center": "centre"})("Center") == "centre"


def test_each_command_takes_its_own_settings() -> None:
    assert {opt.flag for opt in options_for("sign")} == {"signing-key", "signing-salt"}
    assert options_for("serve") == OPTIONS
    assert options_for("no-such-command") == ()


def test_a_command_reads_only_the_variables_of_its_settings() -> None:
    environ = {"PREVIEWER_PORT": "not a port", "PREVIEWER_SIGNING_KEY": "00ff"}
    settings = load(environ, command="sign")
    assert settings.server.signing_key == b"\x00\xff"
    assert settings.server.port == Settings().server.port
    with pytest.raises(ConfigError, match="PREVIEWER_PORT"):
        load(environ, command="serve")
    with pytest.raises(ConfigError, match="port"):
        load({}, {"port": "1"}, command="sign")


def test_sign_takes_no_serve_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.parse_args(["sign", "--port", "1", "/fill/1/1/a/b"], {})
    assert info.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_defaults_are_printed_as_values_or_prose() -> None:
    by_flag = {opt.flag: opt for opt in OPTIONS}
    assert by_flag["request-timeout"].default_text() == "30"
    assert by_flag["access-log"].default_text() == "on"
    assert by_flag["cache-size"].default_is_literal()
    assert not by_flag["signing-key"].default_is_literal()
    assert not by_flag["allowed-sources"].default_is_literal()  # "any" would be a host


# --- the disk budget ------------------------------------------------------------------


def test_the_source_cache_is_a_quarter_of_the_cache_by_default() -> None:
    cache = load({}, {"cache-size": "2MiB"}).cache
    assert (cache.source_bytes, cache.preview_bytes) == (512 * 1024, 1536 * 1024)
    assert load({}).cache.source_bytes == 256 * 1024 * 1024  # of the default 1GiB


def test_a_source_share_is_counted_inside_the_cache_size() -> None:
    cache = load({"PREVIEWER_SOURCE_CACHE_SIZE": "1MB"}, {"cache-size": "3MB"}).cache
    assert (cache.source_bytes, cache.preview_bytes) == (10**6, 2 * 10**6)
    off = load({}, {"cache-size": "3MB", "source-cache-size": "0"}).cache
    assert (off.source_bytes, off.preview_bytes) == (0, 3 * 10**6)


@pytest.mark.parametrize("source", ["2MiB", "3MiB"])
def test_a_source_share_leaving_no_room_for_previews_is_refused(source: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load({"PREVIEWER_CACHE_SIZE": "2MiB"}, {"source-cache-size": source})
    message = str(refused.value)
    for name in ("--source-cache-size", "PREVIEWER_SOURCE_CACHE_SIZE", "--cache-size"):
        assert name in message
    assert "no room for previews" in message


def test_the_worker_takes_the_settings_of_its_work_and_not_the_front_s() -> None:
    worker = {opt.flag for opt in options_for(WORKER)}
    assert {"broker", "broker-queue", "cache-dir", "cache-size", "source-cache-size"} <= worker
    assert {"fetch-timeout", "allow-private-networks", "max-source-pixels", "workers"} <= worker
    assert {"log-level", "shutdown-timeout"} <= worker
    assert not {"port", "host", "quality", "gravity", "memory-cache-size", "signing-key"} & worker
    with pytest.raises(ConfigError, match="unknown setting"):
        load({}, {"port": "1"}, command=WORKER)
    # a bad variable of the front's alone does not stop a worker
    settings = load({"PREVIEWER_PORT": "nope", "PREVIEWER_BROKER": "amqp://h/"}, command=WORKER)
    assert settings.broker.url == "amqp://h/"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("127.0.0.1:9090", ("127.0.0.1", 9090)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9090", ("::1", 9090)),
        ("metrics.internal:80", ("metrics.internal", 80)),
        ("off", None),
        ("", None),
    ],
)
def test_metrics_address_is_host_and_port(text: str, value: tuple[str, int] | None) -> None:
    assert load({"PREVIEWER_METRICS_ADDRESS": text}).server.metrics_address == value


@pytest.mark.parametrize("text", ["9090", ":9090", "host:", "host:port", "host:70000", "[::1]"])
def test_a_bad_metrics_address_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="PREVIEWER_METRICS_ADDRESS: not host:port"):
        load({"PREVIEWER_METRICS_ADDRESS": text})


def test_log_format_is_text_or_json() -> None:
    assert load({}).server.log_format == "text"
    assert load({"PREVIEWER_LOG_FORMAT": "JSON"}).server.log_format == "json"
    with pytest.raises(ConfigError, match="--log-format: 'xml' is not one of text, json"):
        load({}, {"log-format": "xml"})
