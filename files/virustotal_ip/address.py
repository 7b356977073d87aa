# SPDX-License-Identifier: MIT
"""IP addresses from untrusted text: parsing, the canonical form, networks, which addresses
are never looked up, which address is looked up for one that carries an IPv4 address, and the
IPv6 /64 an address counts against in the budget.

An address is its packed form: 4 bytes (IPv4) or 16 (IPv6). Only ip_text() of it is used in
requests, events and logs, so nothing of the original text reaches VirusTotal or Wazuh.
Parsed by inet_pton, not the `ipaddress` module (an import on every alert, and a library
whose idea of "global" changes between Python versions). Pure: no I/O, no Wazuh, no settings.
"""
from __future__ import annotations

import _socket

IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"      # ::ffff:0:0/96
# IPv6 forms whose last 32 bits are an IPv4 address: NAT64's well-known prefix 64:ff9b::/96
# (RFC 6052), IPv4-translated ::ffff:0:0:0/96 (RFC 2765) and IPv4-compatible ::/96 (RFC 4291,
# deprecated). (IPv4-mapped becomes IPv4 as it is parsed.) 64:ff9b:1::/48 is local-use, so
# non-global below; 6to4 and Teredo are non-global too.
IPV4_CARRIER_PREFIXES = (b"\x00\x64\xff\x9b" + bytes(8), bytes(8) + b"\xff\xff" + bytes(2), bytes(12))

# IANA special-purpose ranges that are never looked up (explicit, so no Python version or
# library decides what "global" means).
NON_GLOBAL_NETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)


def _pton(text: str) -> bytes | None:
    """inet_pton accepts only a bare address: no zone id, port, path, query, leading zeros,
    or anything around it."""
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            return _socket.inet_pton(family, text)
        except (OSError, ValueError):     # ValueError: an embedded NUL
            continue
    return None


def parse_ip(text: object) -> bytes | None:
    """The packed address in untrusted text, or None; IPv4-mapped IPv6 becomes IPv4."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    packed = _pton(text.strip())
    if packed is not None and packed[:12] == IPV4_MAPPED_PREFIX:
        packed = packed[12:]
    return packed


def ip_text(packed: bytes) -> str:
    """The canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as ::)."""
    if len(packed) == 4:
        return ".".join(str(b) for b in packed)
    groups = [int.from_bytes(packed[i:i + 2], "big") for i in range(0, 16, 2)]
    start, length = -1, 1                    # a single zero group is never compressed
    i = 0
    while i < 8:
        j = i
        while j < 8 and groups[j] == 0:
            j += 1
        if j - i > length:
            start, length = i, j - i
        i = j + 1
    hexes = [f"{g:x}" for g in groups]
    if start < 0:
        return ":".join(hexes)
    return ":".join(hexes[:start]) + "::" + ":".join(hexes[start + length:])


def parse_network(text: object) -> tuple | None:
    """(packed address, prefix length) for CIDR text like 192.0.2.0/24 or 2001:db8::/32
    (host bits allowed); a bare address is a /32 or /128. None when invalid."""
    if not isinstance(text, str):
        return None
    addr, slash, prefix = text.partition("/")
    packed = _pton(addr) if len(addr) <= 64 else None
    if packed is None:
        return None
    bits = 8 * len(packed)
    if not slash:
        return packed, bits
    if not (prefix.isdigit() and prefix.isascii() and len(prefix) <= 3 and int(prefix) <= bits):
        return None
    return packed, int(prefix)


def in_network(packed: bytes, network: tuple) -> bool:
    net, prefix = network
    if len(packed) != len(net):
        return False
    shift = 8 * len(packed) - prefix
    return int.from_bytes(packed, "big") >> shift == int.from_bytes(net, "big") >> shift


def carried_ipv4(ip: bytes) -> bytes | None:
    """The IPv4 address an IPv6 address carries (IPV4_CARRIER_PREFIXES), or None. `::` and
    `::1` carry none: they are the unspecified and the loopback address."""
    if len(ip) != 16 or ip[:12] not in IPV4_CARRIER_PREFIXES or int.from_bytes(ip, "big") < 2:
        return None
    return ip[12:]


def lookup_address(ip: bytes) -> bytes:
    """The address VirusTotal is asked about: the IPv4 address an IPv6 one carries (its host is
    that IPv4 host, which VirusTotal knows; the IPv6 form has no reputation of its own), else
    the address itself."""
    return carried_ipv4(ip) or ip


def ipv6_prefix(ip: bytes) -> str | None:
    """The /64 an IPv6 address is in, as text (2001:db8:1:2::/64); None for IPv4. One network's
    hosts share it, and an attacker can rotate through its 2**64 addresses."""
    return ip_text(ip[:8] + bytes(8)) + "/64" if len(ip) == 16 else None


def _skip(ip: bytes, skip_non_global: bool, allowlist: tuple) -> str | None:
    if skip_non_global and any(in_network(ip, parse_network(n)) for n in NON_GLOBAL_NETS):
        return "not a global address"
    if any(in_network(ip, net) for net in allowlist):
        return "allowlisted"
    return None


def skip_reason(ip: bytes, skip_non_global: bool, allowlist: tuple) -> str | None:
    """Why this address is never looked up (private, reserved, allowlisted), or None. An IPv6
    address that carries an IPv4 one is judged as itself (its IPv6 allowlist entries) and as
    the IPv4 address it carries (the IPv4 ranges and allowlist entries): 64:ff9b::7f00:1 is
    127.0.0.1."""
    why = _skip(ip, skip_non_global, allowlist)
    carried = carried_ipv4(ip)
    if why is None and carried is not None:
        why = _skip(carried, skip_non_global, allowlist)
        if why is not None:
            why = f"{why} (it carries {ip_text(carried)})"
    return why
