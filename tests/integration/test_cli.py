"""The `previewer` command: help, configuration errors, signals, TLS trust."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

import images
from conftest import ServiceProcess
from origin import Gate, Origin
from previewer.cli import connection_limits
from previewer.config.settings import OPTIONS, load
from waiting import until


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "previewer", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_help_lists_every_option_with_its_variable() -> None:
    top = _run("--help")
    assert top.returncode == 0
    assert "serve" in top.stdout
    serve = _run("serve", "--help")
    assert serve.returncode == 0
    text = " ".join(serve.stdout.split())
    for opt in OPTIONS:
        assert f"--{opt.flag}" in text, opt.flag
        assert opt.env_var in text, opt.env_var
    assert "(default: 1GiB)" in text  # --cache-size


def test_bad_variable_stops_start_up_and_names_it(tmp_path: Path) -> None:
    result = _run(
        "serve", env={"PREVIEWER_CACHE_SIZE": "lots", "PREVIEWER_CACHE_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "PREVIEWER_CACHE_SIZE" in result.stderr


def test_bad_flag_value_names_the_flag() -> None:
    result = _run("serve", "--gravity", "north")
    assert result.returncode == 2
    assert "--gravity" in result.stderr


def test_unknown_flag_is_refused() -> None:
    result = _run("serve", "--no-such-flag")
    assert result.returncode == 2
    assert "--no-such-flag" in result.stderr


async def test_sigterm_finishes_requests_in_flight_and_exits_0(
    service_process: Callable[..., ServiceProcess], origin: Origin, tmp_path: Path
) -> None:
    gate = Gate(images.jpeg(320, 240), expected=5)
    for i in range(5):  # distinct sources: each request fetches on its own
        origin.route(f"/g{i}.jpg", gate.handler)
    proc = await asyncio.to_thread(
        service_process,
        ["--cache-dir", str(tmp_path / "c"), "--allow-private-networks"],
    )
    async with aiohttp.ClientSession() as client:

        async def fetch(i: int) -> int:
            url = f"{proc.url}/fill/{10 + i}/10/{origin.authority}/g{i}.jpg"
            async with client.get(url) as resp:
                await resp.read()
                return resp.status

        tasks = [asyncio.ensure_future(fetch(i)) for i in range(5)]
        await asyncio.wait_for(gate.all_arrived.wait(), 20)
        proc.proc.send_signal(signal.SIGTERM)
        await until(lambda: any("stopping" in line for line in proc.log_lines))
        gate.release()
        statuses = await asyncio.gather(*tasks)
    assert statuses == [200] * 5
    assert await asyncio.to_thread(proc.proc.wait, 20) == 0
    proc.close()
    assert any("stopped" in line for line in proc.log_lines)
    # the access log's waiting lines are written before the process exits
    served = [line for line in proc.log_lines if " INFO previewer.access GET /fill/" in line]
    assert len(served) == 5
    assert all("status=200 cache=MISS" in line for line in served)


def test_sigint_exits_0(service_process: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    proc = service_process(["--cache-dir", str(tmp_path / "c")])
    assert proc.stop(signal.SIGINT) == 0


async def test_https_source_trusted_through_the_system_store(
    service_process: Callable[..., ServiceProcess],
    tls_origin: int,
    tls_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    # The certificate is made trusted the standard way (SSL_CERT_FILE), so this
    # proves https sources are fetched over verified TLS.
    cert, _ = tls_files
    proc = await asyncio.to_thread(
        service_process,
        ["--cache-dir", str(tmp_path / "c"), "--allow-private-networks"],
        {"SSL_CERT_FILE": str(cert)},
    )
    async with aiohttp.ClientSession() as client:
        for scheme in ("https://", "https:/"):  # the second is a proxy-merged double slash
            url = f"{proc.url}/fill/32/24/{scheme}127.0.0.1:{tls_origin}/x{len(scheme)}.jpg"
            async with client.get(url) as resp:
                body = await resp.read()
                assert resp.status == 200, scheme
            image = images.decode(body)
            assert (image.width, image.height) == (32, 24)


def test_a_connection_cap_beyond_the_open_file_limit_is_kept_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cap = 10**6  # more than any open-file limit leaves
    limits = connection_limits(load({}, {"max-connections": str(cap)}))
    assert limits.max_connections == cap
    assert f"--max-connections {cap} leaves fewer than" in caplog.text


def test_a_connection_cap_within_the_open_file_limit_draws_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = connection_limits(load({}, {"max-connections": "16"}))
    assert limits.max_connections == 16
    assert "leaves fewer than" not in caplog.text
