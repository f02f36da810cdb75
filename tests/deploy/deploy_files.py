"""Shared by the deployment tests: the repository's files, the documented
settings, and a fixture that takes the network away."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def documented_settings() -> frozenset[str]:
    """The variables of the README's configuration table (generated from config/settings.py)."""
    table = (REPO / "README.md").read_text()
    variables = re.findall(r"^\|[^|\n]*\| `(PREVIEWER_[A-Z0-9_]+)` \|", table, re.M)
    assert len(variables) > 20, "the README's configuration table was not found"
    return frozenset(variables)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup fails: what runs under it needs no network."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the deployment checks must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
