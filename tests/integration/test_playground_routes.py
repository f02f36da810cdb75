"""The playground's routes over HTTP: what is served, with which headers, and when not."""

from __future__ import annotations

import json
import re

import pytest

from conftest import ServiceFactory
from previewer.http.playground import CONTENT_SECURITY_POLICY


async def test_the_page_and_every_file_it_names_are_served_with_the_policy(
    start_service: ServiceFactory,
) -> None:
    service = await start_service()
    status, headers, body = await service.get("/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    page = body.decode()
    named = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert named, "the page names its script, style sheet and icon"
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in named:
        assert path.startswith("/playground/"), path  # same origin, nothing from elsewhere
        status, headers, body = await service.get(path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(types[path[path.rindex(".") :]]), path
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert body
    status, headers, _ = await service.request("HEAD", "/")
    assert status == 200


def test_the_policy_allows_this_origin_only() -> None:
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in CONTENT_SECURITY_POLICY.split("; ")
    )
    assert directives["default-src"] == ["'none'"]
    allowed = {source for sources in directives.values() for source in sources}
    assert allowed <= {"'none'", "'self'", "blob:"}  # no host, no inline code, no eval


async def test_settings_show_the_servers_gravity_and_size_limit(
    start_service: ServiceFactory,
) -> None:
    service = await start_service(gravity="centre", max_dimension="2000")
    status, _, body = await service.get("/playground/settings.json")
    assert status == 200
    settings = json.loads(body)
    assert settings["gravity"] == "centre"
    assert settings["max_dimension"] == 2000


@pytest.mark.parametrize(
    "path",
    ["/playground/", "/playground/missing.js", "/playground/../playground.js", "/index.html"],
)
async def test_any_other_path_under_the_page_is_404(
    start_service: ServiceFactory, path: str
) -> None:
    service = await start_service()
    status, _, body = await service.get(path)
    assert status == 404
    assert json.loads(body)["error"] == "not_found"


@pytest.mark.parametrize(
    "settings",
    [
        {"playground": "false"},
        {"signing_key": "00ff00ff"},
        {"signing_key": "00ff", "playground": "true"},
    ],
)
async def test_no_page_when_turned_off_or_while_signing_is_on(
    start_service: ServiceFactory, settings: dict[str, str]
) -> None:
    service = await start_service(**settings)
    for path in ("/", "/playground/playground.js", "/playground/settings.json"):
        status, _, body = await service.get(path)
        assert status == 404, path
        assert json.loads(body)["error"] == "not_found"
