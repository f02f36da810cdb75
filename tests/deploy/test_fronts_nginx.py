"""deploy/nginx/fronts.conf in a real nginx, in front of two real previewer
fronts, with the demo origin's images: each preview is cached by one front,
and losing a front moves its share to the other."""

from __future__ import annotations

import re
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_files import REPO

import images
from conftest import ServiceProcess
from origin import Nginx, NginxOrigin

DEMO = REPO / "deploy" / "demo-origin" / "images"
SIZES = ((300, 200), (120, 120), (64, 160))

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


def balancer(prefix: Path, fronts: list[str]) -> Nginx:
    """nginx with the shipped server block, in front of `fronts`, on a free loopback port."""
    return Nginx(prefix, lambda port: balancer_conf(port, fronts))


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
    proxy = balancer(tmp_path / "balancer", [f.url[7:] for f in fronts])
    proxy.start()
    port = proxy.port
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
        proxy.stop()
