"""previewer.fetch.policy: which source hosts and addresses may be fetched (no network)."""

from __future__ import annotations

import ipaddress
from http import HTTPStatus

import pytest

from previewer.errors import SourceForbidden
from previewer.fetch.policy import check_address, check_allowed, check_host, literal_address

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f.0.0.1",
    "0x7f000001",
    "0177.0.0.1",
    "017700000001",
    "127.255.255.254",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
]

PRIVATE = [
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "100.64.0.1",
    "100.127.255.255",
    "fc00::1",
    "fd12:3456:789a::1",
    "::ffff:10.0.0.1",
    "::ffff:192.168.1.1",
]

ALWAYS_REFUSED = [
    "169.254.169.254",
    "169.254.0.1",
    "::ffff:169.254.169.254",
    "fe80::1",
    "fe80::a9fe:a9fe",
    "febf::1",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "ff05::2",
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.0.1",
    "198.18.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]

PUBLIC = [
    "93.184.216.34",
    "1.1.1.1",
    "8.8.8.8",
    "172.32.0.1",
    "100.128.0.1",
    "11.0.0.1",
    "2606:2800:220:1:248:1893:25c8:1946",
    "2001:4860:4860::8888",
    "::ffff:93.184.216.34",
]


# --- literal_address --------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_literal_address_reads_every_loopback_spelling(host: str) -> None:
    address = literal_address(host)
    assert address is not None
    assert address.version == 4
    assert address.is_loopback


def test_literal_address_of_ipv6() -> None:
    assert literal_address("::1") == ipaddress.IPv6Address("::1")
    assert literal_address("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")


def test_literal_address_unwraps_ipv4_mapped() -> None:
    assert literal_address("::ffff:169.254.169.254") == ipaddress.IPv4Address("169.254.169.254")


@pytest.mark.parametrize(
    "host", ["example.com", "localhost", "xn--bcher-kva.de", "a.b.c", "1.2.3.4.5"]
)
def test_names_are_not_literal_addresses(host: str) -> None:
    assert literal_address(host) is None


# --- check_host -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "app.localhost", "a.b.localhost"])
def test_localhost_names_are_loopback(host: str) -> None:
    with pytest.raises(SourceForbidden):
        check_host(host, allow_private=False)
    check_host(host, allow_private=True)


@pytest.mark.parametrize("host", [*LOOPBACK_SPELLINGS, "::1"])
def test_loopback_spellings_are_refused(host: str) -> None:
    with pytest.raises(SourceForbidden) as info:
        check_host(host, allow_private=False)
    assert info.value.status == HTTPStatus.FORBIDDEN


@pytest.mark.parametrize("host", [*LOOPBACK_SPELLINGS, "::1"])
def test_loopback_is_allowed_with_allow_private(host: str) -> None:
    check_host(host, allow_private=True)


@pytest.mark.parametrize("host", PRIVATE)
def test_private_ranges_are_refused_unless_allowed(host: str) -> None:
    with pytest.raises(SourceForbidden):
        check_host(host, allow_private=False)
    check_host(host, allow_private=True)


@pytest.mark.parametrize("host", ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_link_local_multicast_and_unspecified_are_always_refused(
    host: str, allow_private: bool
) -> None:
    with pytest.raises(SourceForbidden):
        check_host(host, allow_private=allow_private)


@pytest.mark.parametrize("host", ["0", "0x0", "0.0"])
@pytest.mark.parametrize("allow_private", [False, True])
def test_shorthand_spellings_of_zero_are_refused(host: str, allow_private: bool) -> None:
    with pytest.raises(SourceForbidden):
        check_host(host, allow_private=allow_private)


@pytest.mark.parametrize("host", ["2852039166", "0xa9fea9fe", "169.254.43518"])
@pytest.mark.parametrize("allow_private", [False, True])
def test_shorthand_spellings_of_the_metadata_address_are_refused(
    host: str, allow_private: bool
) -> None:
    with pytest.raises(SourceForbidden):
        check_host(host, allow_private=allow_private)


@pytest.mark.parametrize("host", PUBLIC)
@pytest.mark.parametrize("allow_private", [False, True])
def test_public_addresses_are_allowed(host: str, allow_private: bool) -> None:
    check_host(host, allow_private=allow_private)


@pytest.mark.parametrize("host", ["example.com", "images.example.org", "127.0.0.1.nip.io"])
def test_names_are_left_to_the_resolver_check(host: str) -> None:
    # a name that is not a literal is checked after DNS resolution, not here
    check_host(host, allow_private=False)


@pytest.mark.parametrize("host", ["192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"])
def test_documentation_ranges_are_not_global(host: str) -> None:
    with pytest.raises(SourceForbidden):
        check_host(host, allow_private=False)


# --- check_address ----------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", *PRIVATE])
def test_check_address_refuses_private_addresses(address: str) -> None:
    with pytest.raises(SourceForbidden):
        check_address(address, allow_private=False)
    check_address(address, allow_private=True)


@pytest.mark.parametrize("address", ALWAYS_REFUSED)
def test_check_address_always_refuses(address: str) -> None:
    with pytest.raises(SourceForbidden):
        check_address(address, allow_private=True)


@pytest.mark.parametrize("address", PUBLIC)
def test_check_address_allows_public(address: str) -> None:
    check_address(address, allow_private=False)


def test_check_address_takes_address_objects() -> None:
    check_address(ipaddress.ip_address("93.184.216.34"), allow_private=False)
    with pytest.raises(SourceForbidden):
        check_address(ipaddress.ip_address("169.254.169.254"), allow_private=True)
    with pytest.raises(SourceForbidden):
        check_address(ipaddress.ip_address("::ffff:10.0.0.1"), allow_private=False)


def test_refusal_detail_names_the_address_but_not_publicly() -> None:
    with pytest.raises(SourceForbidden) as info:
        check_address("10.1.2.3", allow_private=False)
    assert "10.1.2.3" in info.value.detail
    assert "10.1.2.3" not in info.value.public_message


@pytest.mark.parametrize("host", ["::7f00:1", "::ffff:0:7f00:1", "::a00:1", "::ffff:0:a00:1"])
def test_ipv6_forms_embedding_private_ipv4_are_refused(host: str) -> None:
    with pytest.raises(SourceForbidden):
        check_address(host, allow_private=False)
    check_address(host, allow_private=True)


@pytest.mark.parametrize("host", ["::a9fe:a9fe", "::ffff:0:a9fe:a9fe", "fec0::1"])
def test_ipv6_forms_of_refused_ranges_are_always_refused(host: str) -> None:
    with pytest.raises(SourceForbidden):
        check_address(host, allow_private=True)


ALLOWED = ("example.com", "*.cdn.example.org")


@pytest.mark.parametrize("host", ["example.com", "a.cdn.example.org", "x.y.cdn.example.org"])
def test_allowlist_admits_matching_hosts(host: str) -> None:
    check_allowed(host, ALLOWED)


@pytest.mark.parametrize(
    "host",
    [
        "evil.com",
        "example.com.evil.com",
        "evilexample.com",
        "www.example.com",  # exact pattern: no subdomains
        "cdn.example.org",  # wildcard: subdomains only
        "xcdn.example.org",
        "cdn.example.org.evil.com",
        "example.co",
    ],
)
def test_allowlist_refuses_everything_else(host: str) -> None:
    with pytest.raises(SourceForbidden):
        check_allowed(host, ALLOWED)


def test_empty_allowlist_admits_any_host() -> None:
    check_allowed("anything.example", ())
