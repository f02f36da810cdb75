"""previewer.fetch.fetcher's two per-hop checks, without a socket, as a default (public) service
runs them: the redirect target check (`Fetcher._check_url`, for literal hosts and
schemes) and the resolver's address filter (`PolicyResolver`, for names).

With private networks refused no loopback origin can be reached, so the integration
test of a redirect into loopback (test_hostile_origins.py) lets one loopback address
stand in for the internet; these tests pin the same rules with nothing substituted.
"""

from __future__ import annotations

import pytest
from yarl import URL

from origin import StubResolver
from previewer.config.settings import FetchConfig
from previewer.errors import SourceForbidden
from previewer.fetch.fetcher import Fetcher, PolicyResolver

PUBLIC = "93.184.215.14"


def fetcher(allow_private: bool = False) -> Fetcher:
    return Fetcher(FetchConfig(allow_private_networks=allow_private), StubResolver())


LOOPBACK_TARGETS = [
    "http://127.0.0.1/x.jpg",
    "http://127.0.0.1:8080/x.jpg",
    "http://127.1/x.jpg",
    "http://2130706433/x.jpg",
    "http://0x7f.0.0.1/x.jpg",
    "http://0177.0.0.1/x.jpg",
    "http://[::1]/x.jpg",
    "http://[::ffff:127.0.0.1]/x.jpg",
    "http://localhost/x.jpg",
    "http://images.localhost/x.jpg",
    "https://127.0.0.1/x.jpg",
]
PRIVATE_TARGETS = ["http://10.0.0.1/x.jpg", "http://192.168.1.1/x.jpg", "http://[fd00::1]/x.jpg"]
ALWAYS_REFUSED_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://[fe80::1]/x.jpg",
    "http://0.0.0.0/x.jpg",
    "file:///etc/passwd",
    "ftp://example.org/x.jpg",
    "gopher://example.org/",
    "data:image/png;base64,iVBORw0KGgo=",
    "http:///x.jpg",
]


@pytest.mark.parametrize("target", LOOPBACK_TARGETS + PRIVATE_TARGETS + ALWAYS_REFUSED_TARGETS)
def test_redirect_target_is_refused_by_default(target: str) -> None:
    with pytest.raises(SourceForbidden):
        fetcher()._check_url(URL(target, encoded=True))


@pytest.mark.parametrize("target", LOOPBACK_TARGETS + PRIVATE_TARGETS)
def test_loopback_and_private_targets_pass_only_when_allowed(target: str) -> None:
    fetcher(allow_private=True)._check_url(URL(target, encoded=True))


@pytest.mark.parametrize("target", ALWAYS_REFUSED_TARGETS)
def test_link_local_and_other_schemes_stay_refused_when_private_is_allowed(target: str) -> None:
    with pytest.raises(SourceForbidden):
        fetcher(allow_private=True)._check_url(URL(target, encoded=True))


@pytest.mark.parametrize(
    "target", [f"http://{PUBLIC}/x.jpg", "https://images.example.org/x.jpg", "http://inward.test/"]
)
def test_public_addresses_and_names_pass_the_target_check(target: str) -> None:
    """Names pass here; what they resolve to is the resolver's to judge."""
    fetcher()._check_url(URL(target, encoded=True))


RESOLVER = StubResolver(
    {
        "inward.test": ["127.0.0.1"],
        "metadata.test": ["169.254.169.254"],
        "mixed.test": ["127.0.0.1", PUBLIC, "10.1.2.3"],
        "public.test": [PUBLIC],
    }
)


@pytest.mark.parametrize("name", ["inward.test", "metadata.test", "localhost"])
async def test_resolver_refuses_a_name_that_points_inward(name: str) -> None:
    with pytest.raises(SourceForbidden):
        await PolicyResolver(False, RESOLVER).resolve(name, 80)


async def test_resolver_keeps_only_the_allowed_addresses_of_a_name() -> None:
    answers = await PolicyResolver(False, RESOLVER).resolve("mixed.test", 80)
    assert [a["host"] for a in answers] == [PUBLIC]


async def test_resolver_allows_loopback_only_when_private_is_allowed() -> None:
    answers = await PolicyResolver(True, RESOLVER).resolve("inward.test", 80)
    assert [a["host"] for a in answers] == ["127.0.0.1"]
    with pytest.raises(SourceForbidden):
        await PolicyResolver(True, RESOLVER).resolve("metadata.test", 80)
