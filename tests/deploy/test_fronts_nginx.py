"""deploy/nginx/fronts.conf in a real nginx, in front of two real previewer
fronts, with the demo origin's images: each preview is cached by one front,
and losing a front moves its share to the other."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_files import REPO

import images
from conftest import ServiceProcess
from origin import NginxOrigin, free_port

DEMO = REPO / "deploy" / "demo-origin" / "images"
SIZES = ((300, 200), (120, 120), (64, 160))

_MAIN = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    include {prefix}/fronts.conf;
}}
"""

pytestmark = [pytest.mark.nginx, pytest.mark.subprocess]


def balancer_conf(listen: int, fronts: list[str]) -> str:
    """The shipped server block, on loopback: compose's host names become the fronts' ports."""
    text = (REPO / "deploy" / "nginx" / "fronts.conf").read_text()
    text, listens = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen};", text)
    assert listens == 1
    for number, authority in enumerate(fronts, 1):
        text, count = re.subn(rf"server front-{number}:8080", f"server {authority}", text)
        assert count == 1
    return text


@pytest.fixture
def demo_origin(tmp_path: Path) -> Iterator[NginxOrigin]:
    origin = NginxOrigin(DEMO, tmp_path / "origin")
    origin.start()
    yield origin
    origin.stop()


def start_balancer(prefix: Path, fronts: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """nginx with the shipped server block on a free loopback port; returns it and the port.

    The port is free when chosen but not reserved: when nginx finds it taken
    (another test session took it first), nginx is started again on another.
    """
    (prefix / "tmp").mkdir(parents=True)
    for _ in range(5):
        port = free_port()
        proc = _start_balancer_once(prefix, fronts, port)
        if proc is not None:
            return proc, port
    raise RuntimeError("the balancer found no free port in 5 tries")


def _start_balancer_once(
    prefix: Path, fronts: list[str], port: int
) -> subprocess.Popen[bytes] | None:
    """nginx on `port`, answering; None when the port was taken."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    (prefix / "fronts.conf").write_text(balancer_conf(port, fronts))
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(_MAIN.format(prefix=prefix, user=user))
    errors = prefix / "error.log"
    errors.write_text("")
    proc = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "Address already in use" in errors.read_text():
                return None
            raise RuntimeError(errors.read_text())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.headers.get("Server", "").startswith("nginx"):  # not another listener
                    return proc
        except OSError:
            time.sleep(0.02)  # polling another process's state: no event to wait on
    proc.kill()
    raise RuntimeError("the balancer did not answer within 10 s")


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as resp:
        return resp.status, resp.headers["X-Cache"], resp.read()


def test_each_preview_is_cached_by_one_front_and_a_lost_front_moves_only_its_share(
    service_process: Callable[..., ServiceProcess], demo_origin: NginxOrigin, tmp_path: Path
) -> None:
    fronts = [
        service_process(
            ["--cache-dir", str(tmp_path / f"front-{n}")],
            env={"PREVIEWER_ALLOW_PRIVATE_NETWORKS": "true"},
        )
        for n in (1, 2)
    ]
    balancer, port = start_balancer(tmp_path / "balancer", [f.url[7:] for f in fronts])
    try:
        paths = [
            f"/fill/{w}/{h}/{demo_origin.authority}/{image.name}"
            for image in sorted(DEMO.iterdir())
            for w, h in SIZES
        ]
        for path in paths:
            status, cache, body = fetch(port, path)
            assert (status, cache) == (200, "MISS"), path
            width, height = (int(n) for n in path.split("/")[2:4])
            decoded = images.decode(body)
            assert (decoded.width, decoded.height) == (width, height)
        # Random balancing would send each repeat to the other front half the
        # time (a MISS); the URI hash sends it where the preview is cached.
        assert [fetch(port, path)[1] for path in paths] == ["HIT"] * len(paths)
        stored = [f.health()["cache"]["entries"] for f in fronts]
        assert sum(stored) == len(paths), "each preview is cached exactly once"

        fronts[0].stop(signal.SIGTERM)
        answers = [fetch(port, path) for path in paths]
        assert [status for status, _, _ in answers] == [200] * len(paths)
        # the survivor's own previews stay hits; only the lost front's share is rendered anew
        misses = sum(1 for _, cache, _ in answers if cache == "MISS")
        assert misses == stored[0]
    finally:
        balancer.send_signal(signal.SIGQUIT)
        balancer.wait(10)
