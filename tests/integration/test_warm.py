"""`previewer warm` as a real process against a real service and the nginx origin.

Each summary (`--json`) is checked against the service's own counters from
/health, taken before and after the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import images
from conftest import ServiceProcess
from origin import NginxOrigin, Origin
from previewer import cli

pytestmark = [pytest.mark.nginx, pytest.mark.subprocess]

KEY, SALT = "6b6579206f6620746865207465737473", "73616c74"
Spawn = Callable[..., ServiceProcess]
BAR_ARGS = ("--sizes", "20x10,30x10,40x10", "--requests", "300", "--seed", "1")


def _warm(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEWER_")}
    return subprocess.run(
        [sys.executable, "-m", "previewer", "warm", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **(env or {})},
    )


def _summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _counters(proc: ServiceProcess) -> dict[str, int]:
    counters: dict[str, int] = proc.health()["counters"]
    return counters


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in ("hits", "misses", "renders")}


def _urls(tmp_path: Path, nginx: NginxOrigin, *names: str) -> Path:
    file = tmp_path / "urls.txt"
    lines = ["# sources on the test origin, bare and with a scheme"]
    for i, name in enumerate(names):
        lines.append(f"{'http://' if i % 2 else ''}{nginx.authority}/{name}")
    file.write_text("\n".join(lines) + "\n")
    return file


def _serve(spawn: Spawn, tmp_path: Path, *extra: str) -> ServiceProcess:
    return spawn(["--cache-dir", str(tmp_path / "cache"), "--allow-private-networks", *extra])


def test_warm_fills_the_cache_then_hits_it_as_the_service_counts(
    service_process: Spawn, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    proc = _serve(service_process, tmp_path)
    names = ("_gopher_original_1024x504.jpg", "small_40x30.jpg", "alpha.png")
    urls = _urls(tmp_path, nginx_origin, *names)
    args = (proc.url, "--urls", str(urls), "--sizes", "300x200,64x48", "--concurrency", "3")

    before = _counters(proc)
    first = _warm(*args, "--json")
    assert first.returncode == 0, first.stderr
    cold = _summary(first)
    middle = _counters(proc)
    assert cold["requests"] == 6
    assert cold["statuses"] == {"200": 6}
    assert cold["errors"] == 0
    assert cold["error_codes"] == {}
    assert cold["cache"] == {"hits": 0, "misses": 6, "hit_ratio": 0.0}
    assert _delta(before, middle) == {"hits": 0, "misses": 6, "renders": 6}
    assert proc.health()["cache"]["entries"] == 6

    second = _warm(*args, "--json")
    assert second.returncode == 0, second.stderr
    warm = _summary(second)
    assert warm["cache"] == {"hits": 6, "misses": 0, "hit_ratio": 1.0}
    assert _delta(middle, _counters(proc)) == {"hits": 6, "misses": 0, "renders": 0}

    expected_bytes = 0
    for line in urls.read_text().splitlines()[1:]:
        for size in ("300/200", "64/48"):
            with urllib.request.urlopen(f"{proc.url}/fill/{size}/{line}", timeout=30) as resp:
                expected_bytes += len(resp.read())
    assert cold["bytes_received"] == warm["bytes_received"] == expected_bytes
    for summary in (cold, warm):
        latency = summary["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert summary["requests_per_second"] > 0
        assert summary["target"] == proc.url
        assert summary["seed"] is None  # not a random mix


def test_warm_asks_fit_previews_with_op(
    service_process: Spawn, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    """`--op fit` warms the fit previews; `--op fill,fit` asks each size in both, and
    only the fill ones are new: fit and fill of one size are two cache entries."""
    proc = _serve(service_process, tmp_path, "--signing-key", KEY, "--signing-salt", SALT)
    names = ("_gopher_original_1024x504.jpg", "small_40x30.jpg")
    urls = _urls(tmp_path, nginx_origin, *names)
    args = (proc.url, "--urls", str(urls), "--sizes", "300x300,64x64", "--json")
    signed = ("--signing-key", KEY, "--signing-salt", SALT)

    before = _counters(proc)
    fitted = _warm(*args, *signed, "--op", "fit")
    assert fitted.returncode == 0, fitted.stderr
    assert _summary(fitted)["statuses"] == {"200": 4}
    middle = _counters(proc)
    assert _delta(before, middle) == {"hits": 0, "misses": 4, "renders": 4}

    both = _warm(*args, *signed, "--op", "fill,fit")
    assert both.returncode == 0, both.stderr
    summary = _summary(both)
    assert summary["requests"] == 8
    assert summary["cache"] == {"hits": 4, "misses": 4, "hit_ratio": 0.5}
    assert _delta(middle, _counters(proc)) == {"hits": 4, "misses": 4, "renders": 4}
    assert proc.health()["cache"]["entries"] == 8

    # what was warmed is the fit: the whole source inside each box
    sent = cli.sign_paths(
        [f"/fit/300/300/{nginx_origin.authority}/{names[0]}"],
        bytes.fromhex(KEY),
        bytes.fromhex(SALT),
    )
    with urllib.request.urlopen(proc.url + sent[0], timeout=30) as resp:
        assert resp.headers["X-Cache"] == "HIT"
        assert images.decode(resp.read()).height == 148  # 1024x504 fitted into 300x300


def test_the_summary_table_is_plain_text_when_stdout_is_not_a_terminal(
    service_process: Spawn, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    proc = _serve(service_process, tmp_path)
    urls = _urls(tmp_path, nginx_origin, "small_40x30.jpg")
    done = _warm(proc.url, "--urls", str(urls), "--sizes", "20x10")
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout  # no bar, no colour
    for label in ("requests", "req/s", "p99", "X-Cache", "bytes received", "200: 1"):
        assert label in done.stdout


def test_the_progress_bar_draws_on_a_terminal(
    service_process: Spawn, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    proc = _serve(service_process, tmp_path)
    urls = _urls(tmp_path, nginx_origin, "small_40x30.jpg")
    leader, follower = os.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "previewer", "warm", proc.url, "--urls", str(urls), *BAR_ARGS],
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(60) == 0
    assert child.stderr is not None
    child.stderr.close()
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "300/300" in shown  # done/total
    for label in ("req/s", "errors 0", "p99 "):
        assert label in shown


def test_a_signed_service_is_warmed_with_the_key_and_refuses_without_it(
    service_process: Spawn, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    proc = _serve(service_process, tmp_path, "--signing-key", KEY, "--signing-salt", SALT)
    urls = _urls(tmp_path, nginx_origin, "_gopher_original_1024x504.jpg", "small_40x30.jpg")
    args = (proc.url, "--urls", str(urls), "--sizes", "120x90", "--json")

    before = _counters(proc)
    signed = _warm(*args, "--signing-key", KEY, "--signing-salt", SALT)
    assert signed.returncode == 0, signed.stderr
    assert _summary(signed)["statuses"] == {"200": 2}
    assert _delta(before, _counters(proc)) == {"hits": 0, "misses": 2, "renders": 2}

    from_env = _warm(*args, env={"PREVIEWER_SIGNING_KEY": KEY, "PREVIEWER_SIGNING_SALT": SALT})
    assert from_env.returncode == 0, from_env.stderr
    assert _summary(from_env)["cache"]["hits"] == 2

    unsigned = _warm(*args)
    assert unsigned.returncode == 1
    refused = _summary(unsigned)
    assert refused["statuses"] == {"403": 2}
    assert refused["error_codes"] == {"bad_signature": 2}
    assert refused["error_ratio"] == 1.0
    assert "--max-error-ratio" in unsigned.stderr


def test_the_exit_status_follows_the_error_ratio(
    service_process: Spawn, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    proc = _serve(service_process, tmp_path)
    urls = _urls(
        tmp_path,
        nginx_origin,
        "_gopher_original_1024x504.jpg",
        "small_40x30.jpg",
        "alpha.png",
        "_gopher_not_image.jpg",
    )
    args = (proc.url, "--urls", str(urls), "--sizes", "50x50", "--json")
    before = _counters(proc)
    allowed = _warm(*args, "--max-error-ratio", "0.25")
    assert allowed.returncode == 0, allowed.stderr
    summary = _summary(allowed)
    assert summary["error_ratio"] == 0.25
    assert summary["error_codes"] == {"source_not_image": 1}
    assert summary["statuses"] == {"200": 3, "422": 1}
    # the service counts the refused source as a miss too; it carries no X-Cache
    assert _delta(before, _counters(proc))["misses"] == summary["cache"]["misses"] + 1

    strict = _warm(*args, "--max-error-ratio", "0.2")
    assert strict.returncode == 1
    assert "0.2500 is above --max-error-ratio 0.2" in strict.stderr


def test_urls_from_stdin_in_a_seeded_random_mix(
    service_process: Spawn, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    proc = _serve(service_process, tmp_path)
    origin = nginx_origin.authority
    lines = f"{origin}/_gopher_original_1024x504.jpg\n{origin}/alpha.png\n"
    args = ("--urls", "-", "--random-sizes", "20x20-40x30", "--requests", "40", "--seed", "11")
    before = _counters(proc)
    done = _warm(proc.url, *args, "--concurrency", "4", "--json", stdin=lines)
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    delta = _delta(before, _counters(proc))
    assert summary["requests"] == 40
    assert summary["seed"] == 11
    assert summary["statuses"] == {"200": 40}
    assert summary["cache"]["hits"] == delta["hits"]
    assert summary["cache"]["misses"] == delta["misses"]
    assert delta["hits"] + delta["misses"] == 40
    assert delta["renders"] == proc.health()["cache"]["entries"] <= 40

    # the same seed asks for the same previews: all of them are cached now
    again = _summary(_warm(proc.url, *args, "--json", stdin=lines))
    assert again["cache"] == {"hits": 40, "misses": 0, "hit_ratio": 1.0}


def test_a_run_bounded_by_time_stops_after_it(
    service_process: Spawn, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    proc = _serve(service_process, tmp_path)
    urls = _urls(tmp_path, nginx_origin, "small_40x30.jpg")
    done = _warm(proc.url, "--urls", str(urls), "--sizes", "10x10", "--duration", "0.5", "--json")
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    assert summary["seconds"] >= 0.5
    assert summary["requests"] >= 1
    assert summary["statuses"] == {"200": summary["requests"]}
    assert isinstance(summary["seed"], int)


def test_transport_failures_are_counted_as_errors(tmp_path: Path) -> None:
    from origin import free_port

    urls = tmp_path / "urls.txt"
    urls.write_text("example.com/a.jpg\n")
    done = _warm(f"http://127.0.0.1:{free_port()}", "--urls", str(urls), "--sizes", "9x9", "--json")
    assert done.returncode == 1
    summary = _summary(done)
    assert summary["statuses"] == {"none": 1}
    assert summary["error_codes"] == {"connection": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "0x5"], "not a size"),
        (["--sizes", "5x5", "--random-sizes", "1x1-2x2", "--requests", "3"], "one of them"),
        (["--random-sizes", "1x1-2x2"], "needs --requests or --duration"),
        (["--sizes", "5x5", "--concurrency", "0"], "--concurrency"),
        (["--sizes", "5x5", "--requests", "0"], "--requests"),
        (["--sizes", "5x5", "--duration", "-1"], "--duration"),
        (["--sizes", "5x5", "--timeout", "0"], "--timeout"),
        (["--sizes", "5x5", "--max-error-ratio", "2"], "--max-error-ratio"),
        (["--sizes", "5x5", "--header", "nonsense"], "not a header"),
        (["--sizes", "5x5", "--seed", "3"], "--seed needs"),
        (["--sizes", "5x5", "--op", "crop"], "unknown operation 'crop'"),
        (["--sizes", "5x5", "--op", ","], "no operation given"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("example.com/a.jpg\n")
    assert cli.main(["warm", "http://127.0.0.1:9", "--urls", str(urls), *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_url_lists_and_targets_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("example.com/a.jpg\nftp://example.com/b.jpg\n")
    assert cli.main(["warm", "http://127.0.0.1:9", "--urls", str(urls), "--sizes", "5x5"]) == 2
    assert "line 2" in capsys.readouterr().err
    missing = str(tmp_path / "missing.txt")
    assert cli.main(["warm", "http://127.0.0.1:9", "--urls", missing, "--sizes", "5x5"]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes(b"example.com/caf\xe9.jpg\n")
    latin1 = str(tmp_path / "latin1.txt")
    assert cli.main(["warm", "http://127.0.0.1:9", "--urls", latin1, "--sizes", "5x5"]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    for target in ("ftp://x", "http://[::1", "no scheme"):
        assert cli.main(["warm", target, "--urls", str(urls), "--sizes", "5x5"]) == 2
        assert "base URL" in capsys.readouterr().err


async def test_silence_and_garbage_are_timeout_and_bad_response_errors(tmp_path: Path) -> None:
    """A server that never answers one path and answers another with garbage."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                if b"/fill/1/1/" in request:
                    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
                    await writer.drain()
                else:
                    await reader.read()  # silence, until the client gives up and closes
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    urls = tmp_path / "urls.txt"
    urls.write_text("example.com/a.jpg\n")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "previewer", "warm", f"http://127.0.0.1:{port}",
        "--urls", str(urls), "--sizes", "1x1,2x2", "--timeout", "0.3", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), 60)
    server.close()
    await server.wait_closed()
    assert child.returncode == 1, err
    summary = json.loads(out)
    assert summary["statuses"] == {"none": 2}
    assert summary["error_codes"] == {"bad_response": 1, "timeout": 1}
    # the timed-out request lasted its 0.3 s timeout: uvloop's timers have a resolution of
    # one millisecond and may fire up to that much before the deadline (299.963 ms seen)
    assert summary["latency_ms"]["max"] >= 299


async def test_json_errors_without_an_error_code_count_by_their_status(
    tmp_path: Path, origin: Origin
) -> None:
    """A proxy's JSON in front of the service: not previewer's error body, so the
    status names the error."""
    for size, body in (
        (1, b'{"status": "busy"}'),  # JSON, without `error`
        (2, b"<html>busy</html>"),  # labelled JSON, not JSON
        (3, b'{"error": "overloaded"}'),  # previewer's own error body
    ):
        path = f"/fill/{size}/{size}/example.com/a.jpg"
        origin.add(path, body, status=503, content_type="application/json")
    urls = tmp_path / "urls.txt"
    urls.write_text("example.com/a.jpg\n")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "previewer", "warm", f"http://{origin.authority}",
        "--urls", str(urls), "--sizes", "1x1,2x2,3x3", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 1, err
    summary = json.loads(out)
    assert summary["statuses"] == {"503": 3}
    assert summary["error_codes"] == {"http_503": 2, "overloaded": 1}
