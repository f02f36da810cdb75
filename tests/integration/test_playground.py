"""The playground page end to end in headless Chromium (Debian's `chromium`, driven by playwright).

Every request the page makes is recorded: it must go to the service alone.
A missing chromium is an error: scripts/install-system-deps.sh installs it.

`make screenshot` runs the first test with PLAYGROUND_SCREENSHOT=docs/playground.png,
so docs/api.md's picture comes from this code, and the fill/fit test with
OPERATION_SCREENSHOTS=docs, which writes docs/fill.png and docs/fit.png.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

import images
from conftest import Service, ServiceFactory
from origin import NginxOrigin
from previewer.render.geometry import Size, fit

pytestmark = [pytest.mark.browser, pytest.mark.nginx]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in CI; the page is our own
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHOTO = "_gopher_original_1024x504.jpg"
TIMES = " \N{MULTIPLICATION SIGN} "  # between width and height, as the page writes a size


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/install-system-deps.sh")
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Visit:
    page: Page
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


# Predicates are functions, never strings: the page's CSP forbids eval, and playwright
# evaluates a string predicate with it.


async def _open(browser: Browser, service: Service) -> Visit:
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    visit = Visit(await context.new_page())

    def record(request: Request) -> None:
        visit.requests.append(request.url)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            visit.console_errors.append(message.text)

    context.on("request", record)
    visit.page.on("console", console)
    await visit.page.goto(service.url + "/")
    await visit.page.wait_for_function("document.getElementById('gravity').textContent !== '…'")
    return visit


async def _make(
    visit: Visit, source: str, custom: str = "", operation: str = "fill"
) -> list[dict[str, object]]:
    """Fill the form, submit, wait for every card to settle, and describe each card."""
    page = visit.page
    await page.check(f'input[name="operation"][value="{operation}"]')
    await page.fill("#source", source)
    await page.fill("#custom", custom)
    await page.click("button[type=submit]")
    await page.wait_for_function(
        "() => document.querySelectorAll('.card').length > 0 && "
        "[...document.querySelectorAll('.card')].every(c => c.dataset.state !== 'pending')"
    )
    cards: list[dict[str, object]] = await page.evaluate(
        """() => [...document.querySelectorAll('.card')].map(card => {
            const img = card.querySelector('img.preview');
            const facts = {};
            for (const dd of card.querySelectorAll('dd')) facts[dd.dataset.fact] = dd.textContent;
            const error = card.querySelector('pre.error-json');
            return {
                size: card.dataset.size,
                operation: card.dataset.operation,
                heading: card.querySelector('h2').textContent,
                state: card.dataset.state,
                natural: img ? `${img.naturalWidth}x${img.naturalHeight}` : null,
                facts,
                tag: card.querySelector('input.img-tag').value,
                error: error ? error.textContent : null,
            };
        })"""
    )
    return cards


def _only_the_service(visit: Visit, service: Service, failed_loads: int = 0) -> None:
    """Every request went to the service; the console shows no CSP refusal or other error.

    Chromium logs each 4xx answer as "Failed to load resource": `failed_loads` are expected.
    """
    assert visit.requests
    for url in visit.requests:
        assert url.removeprefix("blob:").startswith(service.url + "/"), url
    others = [text for text in visit.console_errors if "Failed to load resource" not in text]
    assert others == []  # a CSP violation would show here
    assert len(visit.console_errors) == failed_loads


async def test_previews_from_the_nginx_origin_have_the_sizes_asked_for(
    browser: Browser, start_service: ServiceFactory, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    service = await start_service(gravity="centre")
    visit = await _open(browser, service)
    assert await visit.page.text_content("#gravity") == "centre"
    source = f"http://{nginx_origin.authority}/{PHOTO}"

    cards = await _make(visit, source, custom="96x64, 200x300")
    asked = ["150x150", "300x200", "96x64", "200x300"]
    assert [card["size"] for card in cards] == asked
    for card in cards:
        assert card["state"] == "ok", card
        assert card["natural"] == card["size"]  # decoded at exactly the size asked for
        facts = card["facts"]
        assert isinstance(facts, dict)
        assert facts["format"] == "JPEG"
        assert facts["cache"] == "MISS"
        assert facts["status"] == "200 OK"
        width, height = str(card["size"]).split("x")
        path = f"/fill/{width}/{height}/{source}"
        status, _, body = await service.get(path)
        assert status == 200
        assert facts["bytes"] == f"{len(body):,} bytes"
        assert (
            card["tag"]
            == f'<img src="{service.url}{path}" width="{width}" height="{height}" alt="">'
        )

    again = await _make(visit, source, custom="96x64, 200x300")
    assert [card["facts"]["cache"] for card in again] == ["HIT"] * 4  # type: ignore[index]
    _only_the_service(visit, service)

    shot = Path(os.environ.get("PLAYGROUND_SCREENSHOT", tmp_path / "playground.png"))
    png = await visit.page.screenshot(full_page=True)
    await asyncio.to_thread(shot.write_bytes, png)
    picture = images.decode(png)
    assert picture.width == 1200
    assert picture.height >= 900


async def test_a_broken_source_shows_its_error_json(
    browser: Browser, start_service: ServiceFactory, nginx_origin: NginxOrigin
) -> None:
    service = await start_service()
    visit = await _open(browser, service)
    for name, status, code in (
        ("_gopher_not_image.jpg", "422", "source_not_image"),
        ("missing.jpg", "404", "source_status"),
    ):
        cards = await _make(visit, f"{nginx_origin.authority}/{name}")
        assert len(cards) == 2  # the two sizes ticked by default
        for card in cards:
            assert card["state"] == "error"
            assert card["natural"] is None
            error = json.loads(str(card["error"]))
            assert error["error"] == code
            assert error["message"]
            assert str(card["facts"]["status"]).startswith(status)  # type: ignore[index]
    _only_the_service(visit, service, failed_loads=4)


async def test_bad_sizes_are_explained_before_any_request(
    browser: Browser, start_service: ServiceFactory
) -> None:
    service = await start_service(max_dimension="500")
    visit = await _open(browser, service)
    before = len(visit.requests)
    for custom, message in (("12by34", "not a size"), ("600x20", "from 1 to 500")):
        await visit.page.fill("#source", "example.com/a.jpg")
        await visit.page.fill("#custom", custom)
        await visit.page.click("button[type=submit]")
        assert message in str(await visit.page.text_content("#form-error"))
    assert len(visit.requests) == before
    assert await visit.page.locator(".card").count() == 0


async def test_the_operation_switch_asks_fill_or_fit_and_shows_the_size_got(
    browser: Browser, start_service: ServiceFactory, nginx_origin: NginxOrigin, tmp_path: Path
) -> None:
    """One photo (1024x504), the same sizes, filled then fitted: a fill is exactly each
    size, a fit is the whole photo inside it, and each card says what it got."""
    service = await start_service(gravity="centre")
    visit = await _open(browser, service)
    source = f"{nginx_origin.authority}/{PHOTO}"
    folder = Path(os.environ.get("OPERATION_SCREENSHOTS", tmp_path))
    asked = ["150x150", "300x200", "200x300"]
    for operation in ("fill", "fit"):
        cards = await _make(visit, source, custom="200x300", operation=operation)
        assert [card["size"] for card in cards] == asked
        for card in cards:
            width, height = (int(side) for side in str(card["size"]).split("x"))
            got = (
                Size(width, height)
                if operation == "fill"
                else fit(Size(1024, 504), Size(width, height))
            )
            assert card["state"] == "ok", card
            assert (card["operation"], card["heading"]) == (
                operation,
                f"{operation} {width}{TIMES}{height}",
            )
            assert card["natural"] == f"{got.width}x{got.height}"
            facts = card["facts"]
            assert isinstance(facts, dict)
            assert facts["got"] == f"{got.width}{TIMES}{got.height}"
            assert facts["cache"] == "MISS"  # fill and fit of one size are two entries
            path = f"/{operation}/{width}/{height}/{source}"
            assert card["tag"] == (
                f'<img src="{service.url}{path}" width="{got.width}" height="{got.height}" alt="">'
            )
        png = await visit.page.locator("#results").screenshot()
        await asyncio.to_thread((folder / f"{operation}.png").write_bytes, png)
    again = await _make(visit, source, custom="200x300", operation="fit")
    assert [card["facts"]["cache"] for card in again] == ["HIT"] * 3  # type: ignore[index]
    _only_the_service(visit, service)
