"""The script's JSON codec and address parsing agree with the stdlib modules they stand in
for (json, ipaddress), which a cache hit does not import. The modules are the oracle."""
from __future__ import annotations

import ipaddress
import json
import random

import pytest

from harness import script_package

address, codec = script_package("address", "codec")
CODECS = {"accelerated": codec.json_codec(), "fallback": codec.json_codec(accelerated=False)}

DOCUMENTS = [
    {"id": "1753101678.8211", "rule": {"id": "5710", "groups": ["syslog", "sshd"]}, "n": -0.5e-3},
    {"full_log": "caf\u00e9 \u2603 \ud83d\ude00 \\ \" \u0001 \t", "nested": [[[{}]], [], None, True, False]},
    [1, 2.5, 10**30, -0.0, "x"], "plain", 0, None,
]
INVALID = ["", "   ", "{", '{"a": 1', '{"a" 1}', "[1,]", "{'a': 1}", '{"a": 1} x', "nul", '"\u0001"',
           "01", "[", "<options>x</options>", '{"a": NaN'] + ['"\\ud800"x']


@pytest.mark.parametrize("codec", CODECS, ids=list(CODECS))
def test_loads_reads_what_json_loads_reads(codec):
    loads = CODECS[codec][0]
    for doc in DOCUMENTS:
        text = json.dumps(doc, ensure_ascii=False)
        assert loads(f" \n{text}\t ") == json.loads(text)
    assert str(loads('{"x": NaN}')["x"]) == "nan"


@pytest.mark.parametrize("codec", CODECS, ids=list(CODECS))
def test_loads_refuses_what_json_refuses_with_a_value_error(codec):
    loads = CODECS[codec][0]
    for text in INVALID:
        with pytest.raises(ValueError):
            json.loads(text)
        with pytest.raises(ValueError):
            loads(text)


@pytest.mark.parametrize("codec", CODECS, ids=list(CODECS))
def test_deep_nesting_is_a_recursion_error_not_a_crash(codec):
    with pytest.raises(RecursionError):
        CODECS[codec][0]("[" * 100000 + "]" * 100000)


@pytest.mark.parametrize("codec", CODECS, ids=list(CODECS))
def test_dumps_writes_exactly_what_json_dumps_writes(codec):
    dumps = CODECS[codec][1]
    for doc in DOCUMENTS + [{"nan": float("nan"), "inf": float("inf")}, "\u2028\x7f"]:
        assert dumps(doc) == json.dumps(doc)
    with pytest.raises(TypeError):
        dumps({"bytes": b"x"})


def oracle(text: str) -> str | None:
    """ipaddress's reading of an alert field, as the script documents it."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if ip.version == 6 and (ip.scope_id or ip.ipv4_mapped):
        return None if ip.scope_id else str(ip.ipv4_mapped)
    return str(ip)


def address_corpus() -> list:
    rng = random.Random(5952)
    texts = ["1.2.3.4", " 8.8.8.8\n", "255.255.255.255", "0.0.0.0", "::", "::1", "1::", "::ffff:1.2.3.4",
             "::FFFF:10.0.0.1", "2001:db8::1", "2001:DB8:0:0:1:0:0:1", "1:0:2:0:0:3:0:0", "::102:304",
             "64:ff9b::1.2.3.4", "fe80::1%eth0", "01.2.3.4", "1.2.3.04", "999.1.1.1", "1.2.3", "1.2.3.4.5",
             "1.2.3.4/../../files", "1.2.3.4?x=1", "1.2.3.4#x", "1.2.3.4:80", "[::1]", "1::2::3", "",
             "1.2.3.\u0664", "1.2.3.4\x00", "12345::", "::ffff:1.2.3.04", "0x7f.0.0.1", "1.2.3.4 5",
             "\ud800", "1.2.3.4\ud800", "\u2003 1.2.3.4 \u2003", "::ffff:1.2.3.4%eth0"]
    for _ in range(3000):
        groups = [rng.choice([0, 0, 0, 1, 0xffff, rng.randrange(0x10000)]) for _ in range(8)]
        packed = b"".join(g.to_bytes(2, "big") for g in groups)
        texts.append(str(ipaddress.IPv6Address(packed)))
        texts.append(":".join(f"{g:x}" if rng.random() < 0.5 else f"{g:04X}" for g in groups))
        texts.append(str(ipaddress.IPv4Address(rng.randrange(2**32))))
    return texts


def test_addresses_are_read_and_written_as_ipaddress_does():
    for text in address_corpus():
        packed = address.parse_ip(text)
        assert (address.ip_text(packed) if packed else None) == oracle(text), text


def test_network_membership_matches_ipaddress():
    rng = random.Random(4291)
    nets = list(address.NON_GLOBAL_NETS) + ["192.0.2.77/24", "2001:db8::5/64", "8.8.8.8", "::/0", "0.0.0.0/0"]
    for _ in range(2000):
        v4 = rng.random() < 0.5
        addr = ipaddress.ip_address(rng.randrange(2**32) if v4 else rng.randrange(2**128))
        net_text = rng.choice(nets)
        net = ipaddress.ip_network(net_text, strict=False)
        if rng.random() < 0.3:      # often inside the network
            addr = net.network_address + rng.randrange(net.num_addresses)
        expected = addr.version == net.version and addr in net
        assert address.in_network(addr.packed, address.parse_network(net_text)) == expected, (addr, net_text)


@pytest.mark.parametrize("text", ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8",
                                  "10.0.0.0/\u0668", "10.0.0.0/ 8", "10.0.0/8", "", "fe80::/10%x", 42])
def test_invalid_networks_are_refused(text):
    assert address.parse_network(text) is None


# An IPv6 address that carries an IPv4 one (NAT64 64:ff9b::/96, IPv4-translated ::ffff:0:0:0/96,
# IPv4-compatible ::/96) is judged by that IPv4 address and looked up as it. With skip_non_global
# and the allowlist below: (alert field, skip reason or None, looked-up address, /64 its requests
# count against).
CARRIER_ALLOWLIST = ("64.62.197.0/24", "64:ff9b::1.1.1.0/120")
CARRIED = [
    ("64:ff9b::7f00:1", "not a global address (it carries 127.0.0.1)", None, None),
    ("64:ff9b::192.168.1.1", "not a global address (it carries 192.168.1.1)", None, None),
    ("::ffff:0:10.1.2.3", "not a global address (it carries 10.1.2.3)", None, None),
    ("::127.0.0.1", "not a global address (it carries 127.0.0.1)", None, None),
    ("::2", "not a global address (it carries 0.0.0.2)", None, None),
    ("64:ff9b::64.62.197.132", "allowlisted (it carries 64.62.197.132)", None, None),
    ("64:ff9b::1.1.1.1", "allowlisted", None, None),                  # its own IPv6 entry still counts
    ("64:ff9b::8.8.8.8", None, "8.8.8.8", None),
    ("::ffff:0:8.8.8.8", None, "8.8.8.8", None),
    ("::8.8.8.8", None, "8.8.8.8", None),
    ("::ffff:8.8.8.8", None, "8.8.8.8", None),                        # IPv4-mapped: IPv4 once parsed
    ("::1", "not a global address", None, None),                      # loopback, not ::0.0.0.1
    ("::", "not a global address", None, None),
    ("64:ff9b:1::8.8.8.8", "not a global address", None, None),       # local-use NAT64 (RFC 8215)
    ("64:ff9b::1:808:808", None, "64:ff9b::1:808:808", "64:ff9b::/64"),   # outside the /96: carries none
    ("2a00:1450:4001:811::200e", None, "2a00:1450:4001:811::200e", "2a00:1450:4001:811::/64"),
    ("8.8.8.8", None, "8.8.8.8", None),
]


@pytest.mark.parametrize("text,skipped,looked_up,prefix", CARRIED, ids=[row[0] for row in CARRIED])
def test_an_ipv6_address_carrying_an_ipv4_address_is_judged_and_looked_up_as_that_ipv4_address(
        text, skipped, looked_up, prefix):
    packed = address.parse_ip(text)
    allowlist = tuple(address.parse_network(net) for net in CARRIER_ALLOWLIST)
    assert address.skip_reason(packed, True, allowlist) == skipped
    if skipped is None:
        asked = address.lookup_address(packed)
        assert (address.ip_text(asked), address.ipv6_prefix(asked)) == (looked_up, prefix)
