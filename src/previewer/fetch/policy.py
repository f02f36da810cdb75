"""Source address policy: which addresses previewer may fetch from.

Pure: imports nothing that touches the network, the disk or libvips. `fetch/fetcher.py`
applies `check_address` to every address it is about to connect to, after
DNS resolution, so a name that points inward is refused as well as a literal.
"""

from __future__ import annotations

import ipaddress
import socket

from previewer.errors import SourceForbidden

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Loopback and private ranges: allowed by --allow-private-networks.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT
        "::1/128",
        "fc00::/7",  # unique local
    )
)
# Never allowed: link-local (cloud metadata at 169.254.169.254), multicast,
# unspecified, broadcast and reserved ranges.
_ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "::/128",
        "fe80::/10",
        "fec0::/10",  # deprecated site-local
        "ff00::/8",
        "64:ff9b::/96",  # NAT64 can reach any IPv4 address
        "2002::/16",  # 6to4 likewise
    )
)


_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated, RFC 4291 2.5.5.1


def _canonical(address: IPAddress) -> IPAddress:
    """IPv6 forms that embed an IPv4 address are judged as that IPv4 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_TRANSLATED:
        return embedded
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1
        return embedded
    return address


def literal_address(host: str) -> IPAddress | None:
    """The IP address a host names literally, in any spelling libc accepts.

    `127.1`, `2130706433` and `0x7f.0.0.1` are all 127.0.0.1 to inet_aton,
    and so to the resolver that would otherwise be asked.
    """
    try:
        return _canonical(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_address(address: str | IPAddress, *, allow_private: bool) -> None:
    """Raise SourceForbidden unless the policy allows connecting to `address`."""
    ip = _canonical(ipaddress.ip_address(address) if isinstance(address, str) else address)
    if any(ip in net for net in _ALWAYS_REFUSED if net.version == ip.version):
        raise SourceForbidden(detail=f"address {ip} is in a refused range")
    if allow_private:
        return
    if any(ip in net for net in _PRIVATE_NETWORKS if net.version == ip.version):
        raise SourceForbidden(detail=f"address {ip} is private or loopback")
    if not ip.is_global:
        raise SourceForbidden(detail=f"address {ip} is not a global address")


def check_host(host: str, *, allow_private: bool) -> None:
    """Refuse a host that is, or literally spells, a refused address."""
    if host == "localhost" or host.endswith(".localhost"):
        if not allow_private:
            raise SourceForbidden(detail=f"host {host} is loopback")
        return
    literal = literal_address(host)
    if literal is not None:
        check_address(literal, allow_private=allow_private)


def check_allowed(host: str, patterns: tuple[str, ...]) -> None:
    """Refuse a host that matches none of the operator's patterns (none: any host).

    `example.com` matches that host only; `*.example.com` matches its
    subdomains at any depth, not `example.com` itself. `host` is normalised
    (lower case, IDNA, no trailing dot), so `example.com.evil.com` and
    `evil-example.com` match neither.
    """
    if not patterns:
        return
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return
        elif host == pattern:
            return
    raise SourceForbidden(
        "The source host is not allowed.", detail=f"host {host} matches no allowed pattern"
    )
