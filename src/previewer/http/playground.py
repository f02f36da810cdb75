"""The playground page at `/`: its files, their headers and the settings it shows.

Reads the page's files (package data in `previewer/http/assets/`) once, when the
app is built; http/server.py routes them. Imports no web framework.

    GET /                              the page
    GET /playground/{file}             its script, style sheet and icon
    GET /playground/settings.json      the server settings the page shows

The page is served only when `--playground` is on and URL signing is off: it
builds request paths in the browser, and a browser must never hold the
signing key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from previewer import __version__
from previewer.config.settings import ImagingConfig

PREFIX = "/playground/"
_FILES = {
    "index.html": "text/html",
    "playground.js": "text/javascript",
    "playground.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
# Everything from this origin only; previews are shown from blob: URLs of
# bodies the page fetched itself (so it can read their headers). No inline
# script or style, no plugins, no framing, no form posts elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str

    @property
    def charset(self) -> str | None:
        return "utf-8" if self.content_type.startswith("text/") else None

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }


def settings_json(imaging: ImagingConfig) -> bytes:
    """What the page shows and checks before asking: gravity, size limit, version."""
    return json.dumps(
        {
            "gravity": imaging.gravity,
            "max_dimension": imaging.max_dimension,
            "quality": imaging.quality,
            "version": __version__,
        }
    ).encode()


def assets(imaging: ImagingConfig) -> dict[str, Asset]:
    """Request path -> asset, for every path the page owns; any other path is not found."""
    folder = resources.files("previewer.http") / "assets"
    found = {
        ("/" if name == "index.html" else PREFIX + name): Asset(
            (folder / name).read_bytes(), content_type
        )
        for name, content_type in _FILES.items()
    }
    found[PREFIX + "settings.json"] = Asset(settings_json(imaging), "application/json")
    return found
