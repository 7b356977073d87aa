#!/usr/bin/env python3
# custom-virustotal_ip - Wazuh integration: VirusTotal v3 IP reputation with a verdict.
# SPDX-License-Identifier: MIT
"""Enrich a Wazuh alert with VirusTotal IP reputation and a verdict.

wazuh-integratord runs this file through the `custom-virustotal_ip` wrapper:

    custom-virustotal_ip ALERT_FILE API_KEY HOOK_URL [debug] [OPTIONS_FILE] [TIMEOUT] [RETRIES] ["> /dev/null 2>&1"]

For an analyst at a shell (nothing is sent to Wazuh by --check and --status):

    custom-virustotal_ip.py --check IP [--api-key KEY] [--options FILE]
    custom-virustotal_ip.py --status
    custom-virustotal_ip.py --drain          # cron, every minute, as user wazuh

Exit status (integratord logs any non-zero status to ossec.log):
    0  enrichment or error event delivered, lookup deferred, or nothing to do by design
       (no IP, non-global or allowlisted IP, our own enrichment fed back)
    1  internal error, or interrupted (one line in integrations.log)
    2  unusable command line or alert file (not JSON: set <alert_format>json</alert_format>)
    3  the result could not be delivered to analysisd: an enrichment, or a lookup deferred
       after a passing VirusTotal error, is kept for --drain; an error event for a lasting
       one (a wrong key) is not, the next alert reports it again

Reading order: constants; JSON; configuration; alert parsing and IP selection; the verdict (pure
functions); the VirusTotal client; cache, quota and pending state; delivery; command line.
Only the standard library and `requests` are used. A cache hit is on the path of every
alert while integratord waits, so it imports only what it uses, and the cheapest form of it:
`requests` (and site-packages) only when a VirusTotal request is really made; json's,
sqlite3's and socket's C modules without their Python wrappers, which would import `re`,
`enum` and `datetime`; addresses are parsed by inet_pton, not the `ipaddress` module.
"""
from __future__ import annotations

import _socket
import os
import sys
import time
from types import MappingProxyType

try:
    import _sqlite3 as sqlite3      # what `sqlite3` re-exports, without its date adapters
except ImportError:                 # (and the `datetime` import they need)
    import sqlite3

# --------------------------------------------------------------------------- constants

INTEGRATION = "virustotal_ip"
SCRIPT_NAME = "custom-virustotal_ip"
PERMALINK = "https://www.virustotal.com/gui/ip-address/"
USER_AGENT_TOOL = "wazuh-custom-virustotal_ip"

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_UNDELIVERED = 3

MAX_DATAGRAM = 65535          # analysisd reads at most this many bytes per datagram
MAX_ALERT_BYTES = 32 << 20    # larger alert files are refused, not parsed
MAX_VT_BODY = 8 << 20         # a VT answer larger than this is treated as malformed
MAX_TEXT = 256                # longest VT-provided string we forward
MAX_TAGS = 32
MAX_ENGINES = 512
PENDING_MAX = 10000           # deferred alerts kept at most (oldest dropped, logged)
PENDING_LOG_MAX = 8192        # characters of full_log kept with a deferred alert
PENDING_MAX_AGE = 7 * 86400   # deferred alerts older than this are dropped, logged
STATS_DAYS = 30               # days of hit/miss counts kept for --status
DRAIN_SECONDS = 50            # --drain ends before cron starts the next one
DEFAULT_TIMEOUT = 10          # integratord's defaults, used when argv has none
DEFAULT_RETRIES = 3
QUOTA_MINUTE_BLOCK = 60
SCHEMA_VERSION = 2
VERDICTS = ("unknown", "suspicious", "malicious")
IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"      # ::ffff:0:0/96

# IANA special-purpose ranges that are never looked up (explicit, so no Python version or
# library decides what "global" means).
NON_GLOBAL_NETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)


def default_config() -> dict:
    """The seed's thresholds and integration.md's defaults (a fresh dict every call)."""
    return {
        "api_key": "",
        "api_url": "https://www.virustotal.com/api/v3",
        "mal_strong_min": 3,
        "rep_bad_lt": 0,
        "weight_mal_strong": 3.0,
        "weight_mal_sus": 1.5,
        "stale_weak_days": 90,
        "risk_tags": ["tor", "vpn", "proxy", "anonymizer", "anonymous"],
        "engine_weights": {},
        "pivot_enabled": True,
        "pivot_limit": 10,
        "pivot_strong_file_min": 5,
        "pivot_upgrade_1": 1,
        "pivot_upgrade_2": 3,
        "pivot_max_hits": 1,
        "ip_fields": ["data.srcip", "data.src_ip", "data.source_ip", "data.client_ip"],
        "skip_non_global": True,
        "allowlist": [],
        "cache_ttl_hours": {"malicious": 24, "suspicious": 12, "unknown": 12, "not_found": 24},
        "cache_max_entries": 100000,
        "rate_limit_per_minute": 0,
        "daily_quota": 0,
        "budget_managers": 1,
    }


class InputError(Exception):
    """The command line or the alert file cannot be used (exit 2)."""


class DeliveryError(Exception):
    """analysisd's queue socket did not take the message (exit 3)."""


class VTError(Exception):
    """VirusTotal did not give a usable answer; `code` is VT's error code or the HTTP status."""

    def __init__(self, code: str, description: str, transient: bool = False,
                 quota: bool = False) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.transient = transient   # worth retrying later (timeouts, 5xx, quota)
        self.quota = quota           # 429: stop all requests until the quota can have reset


class DeadlineExceeded(BaseException):
    """Raised by the run's watchdog timer. A BaseException so that no library swallows it."""


class Log:
    """One line per event worth knowing, appended to <home>/logs/integrations.log.

    Not the `logging` package: importing it costs about a fifth of interpreter start-up,
    paid on every alert. Messages never contain the API key; attacker-controlled values
    are passed through `shown()` first.
    """

    def __init__(self, path: str, debug: bool = False, echo: bool = False) -> None:
        self.path = path
        self.debug_enabled = debug
        self.echo = echo            # analyst commands also print warnings to stderr
        self._failed = False

    def _write(self, level: str, msg: str) -> None:
        line = f"{time.strftime('%Y/%m/%d %H:%M:%S')} {SCRIPT_NAME}[{os.getpid()}]: {level}: {msg}\n"
        if self.echo and level != "DEBUG":
            sys.stderr.write(f"{level}: {msg}\n")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o660)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._failed and not self.echo:
                self._failed = True
                sys.stderr.write(f"{SCRIPT_NAME}: cannot write {self.path}: {exc.strerror}\n")
                sys.stderr.write(line)

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._write("DEBUG", msg)

    def info(self, msg: str) -> None:
        self._write("INFO", msg)

    def warning(self, msg: str) -> None:
        self._write("WARNING", msg)

    def error(self, msg: str) -> None:
        self._write("ERROR", msg)


def shown(value: object, limit: int = 80) -> str:
    """A log-safe rendering of an untrusted value: JSON-escaped (no newlines) and short."""
    text = json_dumps(value if isinstance(value, (str, int, float, bool, type(None))) else str(value))
    return text if len(text) <= limit else text[:limit] + "...\""


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """A VT- or alert-provided string fit for an event: no control characters, bounded."""
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value[:limit] if ch >= " " and ch != "\x7f")


# --------------------------------------------------------------------------- JSON

def _not_serializable(value: object) -> None:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _ScanOptions:
    """What json.JSONDecoder hands its C scanner: the defaults of json.loads."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float          # NaN, Infinity, -Infinity, as json.loads


def json_codec(accelerated: bool = True) -> tuple:
    """(loads, dumps) behaving as json.loads(str) and json.dumps(value) with default options.

    They call the C scanner and encoder json itself uses (`_json`) because `import json`
    also imports `re` and compiles seven patterns: as much time as the rest of a cache hit.
    Where `_json` is missing or differs (not CPython), json itself is used.
    """
    try:
        if not accelerated:
            raise ImportError("json requested")
        import _json
        scan = _json.make_scanner(_ScanOptions)
        encode = _json.make_encoder(None, _not_serializable, _json.encode_basestring_ascii,
                                    None, ": ", ", ", False, False, True)
    except (ImportError, AttributeError, TypeError):
        import json
        return json.loads, json.dumps

    def loads(text: str) -> object:
        text = text.strip(" \t\n\r")
        try:
            value, end = scan(text, 0)
            if end == len(text):
                return value
        except (StopIteration, SystemError):
            pass    # SystemError: the scanner reports errors with json.decoder, not imported yet
        import json
        return json.loads(text)   # invalid: json raises the ValueError that says why

    def dumps(value: object) -> str:
        return "".join(encode(value, 0))

    return loads, dumps


json_loads, json_dumps = json_codec()

# --------------------------------------------------------------------------- configuration

class Config:
    """The effective configuration: defaults, then the JSON config file, then <options>."""

    def __init__(self, values: dict) -> None:
        self.api_key: str = values["api_key"]
        self.api_url: str = values["api_url"].rstrip("/")
        self.mal_strong_min: int = values["mal_strong_min"]
        self.rep_bad_lt: int = values["rep_bad_lt"]
        self.weight_mal_strong: float = float(values["weight_mal_strong"])
        self.weight_mal_sus: float = float(values["weight_mal_sus"])
        self.stale_weak_days: int = values["stale_weak_days"]
        self.risk_tags: frozenset = frozenset(t.lower() for t in values["risk_tags"])
        self.engine_weights: dict = {k.lower(): float(v) for k, v in values["engine_weights"].items()}
        self.pivot_enabled: bool = values["pivot_enabled"]
        self.pivot_limit: int = values["pivot_limit"]
        self.pivot_strong_file_min: int = values["pivot_strong_file_min"]
        self.pivot_upgrade_1: int = values["pivot_upgrade_1"]
        self.pivot_upgrade_2: int = values["pivot_upgrade_2"]
        self.pivot_max_hits: int = values["pivot_max_hits"]
        self.ip_fields: tuple = tuple(values["ip_fields"])
        self.skip_non_global: bool = values["skip_non_global"]
        self.allowlist: tuple = tuple(values["allowlist"])
        self.cache_ttl_hours: dict = dict(values["cache_ttl_hours"])
        self.cache_max_entries: int = values["cache_max_entries"]
        self.rate_limit_per_minute: int = values["rate_limit_per_minute"]
        self.daily_quota: int = values["daily_quota"]
        self.budget_managers: int = values["budget_managers"]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (_is_int(v) or isinstance(v, float)) and v == v and v not in (float("inf"), float("-inf"))


def _int_in(lo: int, hi: int):
    return lambda v: v if _is_int(v) and lo <= v <= hi else None


def _number_at_least(lo: float):
    return lambda v: v if _is_number(v) and v >= lo else None


def _bool(v: object):
    return v if isinstance(v, bool) else None


def _str_list(v: object):
    if isinstance(v, list) and all(isinstance(x, str) and x for x in v):
        return v
    return None


def _url(v: object):
    return v if isinstance(v, str) and v.startswith(("https://", "http://")) and len(v) < 2048 else None


def _api_key(v: object):
    return v if isinstance(v, str) and len(v) < 256 and v.isprintable() else None


def _engine_weights(v: object):
    if isinstance(v, dict) and all(isinstance(k, str) and _is_number(w) and w >= 0 for k, w in v.items()):
        return v
    return None


def _ttls(v: object):
    keys = ("malicious", "suspicious", "unknown", "not_found")
    if isinstance(v, dict) and all(k in keys and _is_number(h) and h >= 0 for k, h in v.items()):
        merged = default_config()["cache_ttl_hours"]
        merged.update(v)
        return merged
    return None


def _cidrs(v: object):
    if not isinstance(v, list):
        return None
    nets = [parse_network(item) for item in v]
    return None if None in nets else nets


# key -> (check returning the accepted value or None, what is expected)
VALIDATORS = MappingProxyType({
    "api_key": (_api_key, "a printable string"),
    "api_url": (_url, "an http(s) URL"),
    "mal_strong_min": (_int_in(1, 1000), "an integer 1-1000"),
    "rep_bad_lt": (_int_in(-10**6, 10**6), "an integer"),
    "weight_mal_strong": (_number_at_least(0), "a number >= 0"),
    "weight_mal_sus": (_number_at_least(0), "a number >= 0"),
    "stale_weak_days": (_int_in(0, 36500), "an integer 0-36500"),
    "risk_tags": (_str_list, "a list of non-empty strings"),
    "engine_weights": (_engine_weights, "an object of engine name -> number >= 0"),
    "pivot_enabled": (_bool, "true or false"),
    "pivot_limit": (_int_in(1, 40), "an integer 1-40"),
    "pivot_strong_file_min": (_int_in(1, 1000), "an integer 1-1000"),
    "pivot_upgrade_1": (_int_in(1, 40), "an integer 1-40"),
    "pivot_upgrade_2": (_int_in(1, 40), "an integer 1-40"),
    "pivot_max_hits": (_int_in(0, 1000), "an integer 0-1000"),
    "ip_fields": (_str_list, "a list of dotted field paths"),
    "skip_non_global": (_bool, "true or false"),
    "allowlist": (_cidrs, "a list of CIDRs"),
    "cache_ttl_hours": (_ttls, "an object with malicious/suspicious/unknown/not_found hours >= 0"),
    "cache_max_entries": (_int_in(1, 10**7), "an integer 1-10000000"),
    "rate_limit_per_minute": (_int_in(0, 100000), "an integer >= 0 (0 = off)"),
    "daily_quota": (_int_in(0, 10**9), "an integer >= 0 (0 = off)"),
    "budget_managers": (_int_in(1, 10000), "an integer 1-10000"),
})


def merge_config(values: dict, source: dict, origin: str, log: Log) -> None:
    """Apply one config source; unknown keys and bad values are reported by name and skipped."""
    for key, value in source.items():
        check = VALIDATORS.get(key)
        if check is None:
            log.warning(f"config {origin}: unknown key {shown(key)} ignored")
            continue
        accepted = check[0](value)
        if accepted is None:
            log.warning(f"config {origin}: {key} must be {check[1]}; ignored")
            continue
        values[key] = accepted


def read_json_object(path: str, what: str, log: Log) -> dict:
    """A JSON object from a small file, or {} with one log line on any problem."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(1 << 20)
        doc = json_loads(raw.decode("utf-8", "replace")) if raw.strip() else {}
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning(f"cannot read {what} {path}: {exc.strerror}; ignored")
        return {}
    except (ValueError, RecursionError):
        log.warning(f"{what} {path} is not valid JSON; ignored")
        return {}
    if not isinstance(doc, dict):
        log.warning(f"{what} {path} is not a JSON object; ignored")
        return {}
    return doc


def load_config(home: str, options_path: str | None, log: Log) -> Config:
    values = default_config()
    path = os.path.join(home, "etc", SCRIPT_NAME + ".json")
    merge_config(values, read_json_object(path, "config file", log), path, log)
    if options_path:
        merge_config(values, read_json_object(options_path, "options file", log), "<options>", log)
    if values["weight_mal_sus"] > values["weight_mal_strong"]:
        log.warning("config: weight_mal_sus is above weight_mal_strong; both still apply as written")
    return Config(values)


# --------------------------------------------------------------------------- alert and IP

def read_alert(path: str) -> dict:
    """The alert integratord wrote (one JSON object on one line)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_ALERT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read alert file {shown(path)}: {exc.strerror}") from None
    if len(raw) > MAX_ALERT_BYTES:
        raise InputError(f"alert file {shown(path)} is larger than {MAX_ALERT_BYTES} bytes")
    if not raw.strip():
        raise InputError(f"alert file {shown(path)} is empty")
    try:
        alert = json_loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        raise InputError(f"alert file {shown(path)} is not JSON "
                         "(the <integration> block needs <alert_format>json</alert_format>)") from None
    if not isinstance(alert, dict):
        raise InputError(f"alert file {shown(path)} holds JSON that is not an object")
    return alert


def dig(obj: object, path: str) -> object:
    """The value at a dotted path (`data.srcip`), or None."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def text_at(obj: object, path: str, limit: int = MAX_TEXT) -> str:
    """A short string at a dotted path; numbers are accepted as Wazuh stores them as text."""
    value = dig(obj, path)
    if _is_int(value):
        value = str(value)
    return clean_text(value, limit)


# An address is its packed form: 4 bytes (IPv4) or 16 (IPv6); only ip_text() of it is used
# in requests, events and logs.

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


def select_ip(alert: dict, fields: tuple) -> tuple:
    """(packed ip, field) for the first configured field holding a valid IP; (None, None) if none."""
    for path in fields:
        ip = parse_ip(dig(alert, path))
        if ip is not None:
            return ip, path
    return None, None


def skip_reason(ip: bytes, cfg: Config) -> str | None:
    """Why this IP is never looked up (private, reserved, allowlisted), or None."""
    if cfg.skip_non_global and any(in_network(ip, parse_network(n)) for n in NON_GLOBAL_NETS):
        return "not a global address"
    if any(in_network(ip, net) for net in cfg.allowlist):
        return "allowlisted"
    return None


def is_own_enrichment(alert: dict) -> bool:
    """The loop guard: the alert is one of our own enrichments coming back."""
    location = alert.get("location")
    groups = dig(alert, "rule.groups")
    return (dig(alert, "data.integration") == INTEGRATION
            or (isinstance(location, str) and (location == INTEGRATION
                                               or location.endswith("->" + INTEGRATION)))
            or (isinstance(groups, list) and "vt_ip" in groups))


def alert_source(alert: dict, ip: str) -> dict:
    """What a result needs from its alert: ids, agent and the original log line."""
    full_log = alert.get("full_log")
    return {
        "alert_id": text_at(alert, "id", 64),
        "rule": text_at(alert, "rule.id", 16),
        "ip": ip,
        "agent_id": text_at(alert, "agent.id", 16),
        "agent_name": text_at(alert, "agent.name", 128),
        "agent_ip": text_at(alert, "agent.ip", 64),
        "full_log": full_log if isinstance(full_log, str) else "",
    }


# --------------------------------------------------------------------------- the verdict (pure)

def age_in_days(last_analysis_date: float | None, now: float) -> float | None:
    if last_analysis_date is None:
        return None
    return max(0.0, (now - last_analysis_date) / 86400.0)


def weighted_score(engines: dict, weights: dict) -> float:
    """1.0 per malicious and 0.5 per suspicious engine, times that engine's weight (default 1)."""
    points = {"malicious": 1.0, "suspicious": 0.5}
    return sum((points.get(cat, 0.0) * weights.get(name.lower(), 1.0) for name, cat in engines.items()), 0.0)


def base_verdict(facts: dict, cfg: Config, age_days: float | None) -> tuple:
    """Steps 1-4 of the seed heuristic: (verdict, reasons, weighted score)."""
    m, s, rep = facts["malicious"], facts["suspicious"], facts["reputation"]
    weighted = weighted_score(facts["engines"], cfg.engine_weights)
    # 1. engine counts
    if m >= cfg.mal_strong_min:
        verdict, reasons = "malicious", [f"mal>={cfg.mal_strong_min}"]
    elif m >= 1 and rep < cfg.rep_bad_lt:
        verdict, reasons = "malicious", [f"mal>=1&rep<{cfg.rep_bad_lt}"]
    elif m + s >= 1:
        verdict, reasons = "suspicious", ["hits>=1"]
        # 2. a weak, old hit on an IP with non-negative reputation is likely refreshed since
        if (age_days is not None and age_days > cfg.stale_weak_days and m <= 1
                and rep >= cfg.rep_bad_lt):
            verdict = "unknown"
            reasons.append(f"stale>{cfg.stale_weak_days}d")
    else:
        verdict, reasons = "unknown", ["no_hits"]
    # 3. light engine weighting
    if verdict != "malicious":
        if weighted >= cfg.weight_mal_strong:
            verdict = "malicious"
            reasons.append(f"wmal>={cfg.weight_mal_strong:g}")
        elif weighted >= cfg.weight_mal_sus and verdict == "unknown":
            verdict = "suspicious"
            reasons.append(f"wmal>={cfg.weight_mal_sus:g}")
    # 4. risk tags keep an IP with any hit at least suspicious
    if m + s >= 1 and verdict == "unknown":
        risky = sorted(t for t in facts["tags"] if t.lower() in cfg.risk_tags)
        if risky:
            verdict = "suspicious"
            reasons.append(f"risk_tag:{risky[0]}")
    return verdict, reasons, weighted


def wants_pivot(verdict: str, facts: dict, cfg: Config) -> bool:
    """Step 5's precondition: a borderline verdict with few engine hits."""
    return (cfg.pivot_enabled and verdict in ("unknown", "suspicious")
            and facts["malicious"] + facts["suspicious"] <= cfg.pivot_max_hits)


def apply_pivot(verdict: str, reasons: list, file_malicious: list, cfg: Config) -> tuple:
    """Step 5: files talking to the IP that many engines call malicious raise the verdict."""
    strong = sum(1 for n in file_malicious if n >= cfg.pivot_strong_file_min)
    if strong >= cfg.pivot_upgrade_2:
        verdict = VERDICTS[min(VERDICTS.index(verdict) + 1, 2)]
        reasons = [*reasons, f"pivot_strong_files>={cfg.pivot_upgrade_2}"]
    elif strong >= cfg.pivot_upgrade_1 and verdict == "unknown":
        verdict = "suspicious"
        reasons = [*reasons, f"pivot_strong_files>={cfg.pivot_upgrade_1}"]
    return verdict, reasons, strong


def evaluate(entry: dict, cfg: Config, now: float) -> dict:
    """The verdict of a cache entry (facts from VT) under the current configuration."""
    if not entry["found"]:
        return {"verdict": "unknown", "reasons": ["not_in_virustotal"], "weighted": 0.0,
                "age_days": None, "pivot": {"used": False}}
    facts = entry["facts"]
    age = age_in_days(facts["last_analysis_date"], now)
    verdict, reasons, weighted = base_verdict(facts, cfg, age)
    pivot = {"used": False}
    if wants_pivot(verdict, facts, cfg):
        files = entry.get("pivot")
        if files is None:
            reasons.append("pivot_unavailable")
        else:
            verdict, reasons, strong = apply_pivot(verdict, reasons, files, cfg)
            pivot = {"used": True, "total_files": len(files), "strong_mal_files": strong}
    return {"verdict": verdict, "reasons": reasons, "weighted": weighted, "age_days": age,
            "pivot": pivot}


def needs_pivot_request(entry: dict, cfg: Config, now: float) -> bool:
    """True when the entry's verdict still depends on a pivot that was never attempted."""
    if not entry["found"] or entry.get("pivot") is not None or entry.get("pivot_failed"):
        return False
    facts = entry["facts"]
    verdict, _, _ = base_verdict(facts, cfg, age_in_days(facts["last_analysis_date"], now))
    return wants_pivot(verdict, facts, cfg)


def line_value(value: object) -> str:
    """A verdict_line value: no quotes, backslashes, spaces in tags, or control characters."""
    return "".join(ch for ch in str(value) if ch >= " " and ch not in "\"\\\x7f")


def iso_utc(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return None


def build_enrichment(entry: dict, cfg: Config, now: float, source: dict, cached: bool) -> dict:
    """The `virustotal_ip` object sent to Wazuh (seed shape plus reasons/cached)."""
    ip = source["ip"]
    src = {"alert_id": source["alert_id"], "rule": source["rule"], "ip": ip}
    result = evaluate(entry, cfg, now)
    if not entry["found"]:
        return {"found": 0, "verdict": "unknown", "source": src, "permalink": PERMALINK + ip,
                "verdict_line": f"vt_ip verdict=unknown ip={ip} found=0",
                "reasons": result["reasons"], "cached": cached}
    facts = entry["facts"]
    engine_counts = {"malicious": 0, "suspicious": 0}
    for category in facts["engines"].values():
        engine_counts[category] += 1
    weighted = round(result["weighted"], 2)
    age = None if result["age_days"] is None else round(result["age_days"], 1)
    tags = facts["tags"]
    as_owner = facts["as_owner"]
    tags_text = ",".join(line_value(t).replace(",", "").replace(" ", "_") for t in tags) or "-"
    verdict_line = (f"vt_ip verdict={result['verdict']} ip={ip} mal={facts['malicious']} "
                    f"sus={facts['suspicious']} wmal={weighted} rep={facts['reputation']} "
                    f"age_days={'-' if age is None else age} tags={tags_text} "
                    f"as_owner=\"{line_value(as_owner)}\"")
    return {
        "found": 1,
        "verdict": result["verdict"],
        "source": src,
        "counts": {"malicious": facts["malicious"], "suspicious": facts["suspicious"]},
        "engine_counts": engine_counts,
        "weighted_malicious": weighted,
        "reputation": facts["reputation"],
        "tags": list(tags),
        "age_days": age,
        "last_analysis_date": iso_utc(facts["last_analysis_date"]),
        "country": facts["country"],
        "as_owner": as_owner,
        "network": facts["network"],
        "permalink": PERMALINK + ip,
        "pivot": result["pivot"],
        "verdict_line": verdict_line,
        "reasons": result["reasons"],
        "cached": cached,
    }


def error_event(code: str, description: str, source: dict) -> dict:
    return {"error": clean_text(code, 64), "description": clean_text(description, 512),
            "source": {"alert_id": source["alert_id"], "rule": source["rule"], "ip": source["ip"]}}


# --------------------------------------------------------------------------- VirusTotal answers

def _count(stats: dict, key: str) -> int:
    value = stats.get(key, 0)
    if not _is_int(value) or value < 0:
        raise VTError("MalformedResponse", f"last_analysis_stats.{key} is not a count")
    return value


def parse_ip_object(body: object) -> dict:
    """The facts the verdict needs from a VT IP object; VTError when its shape is wrong."""
    data = body.get("data") if isinstance(body, dict) else None
    attrs = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attrs, dict):
        raise VTError("MalformedResponse", "no data.attributes object in the IP answer")
    stats = attrs.get("last_analysis_stats", {})
    results = attrs.get("last_analysis_results", {})
    tags = attrs.get("tags", [])
    rep = attrs.get("reputation", 0)
    date = attrs.get("last_analysis_date")
    if not isinstance(stats, dict) or not isinstance(results, dict) or not isinstance(tags, list):
        raise VTError("MalformedResponse", "last_analysis_stats/results or tags have the wrong type")
    if not _is_int(rep) or abs(rep) > 10**9:
        raise VTError("MalformedResponse", "reputation is not an integer")
    if date is not None and not (_is_number(date) and 0 <= date < 2**37):
        raise VTError("MalformedResponse", "last_analysis_date is not an epoch time")
    engines = {}
    for name, result in list(results.items())[:MAX_ENGINES]:
        category = result.get("category") if isinstance(result, dict) else None
        if category in ("malicious", "suspicious"):
            engines[clean_text(name, 64)] = category
    return {
        "malicious": _count(stats, "malicious"),
        "suspicious": _count(stats, "suspicious"),
        "reputation": rep,
        "tags": [clean_text(t, 64) for t in tags[:MAX_TAGS] if isinstance(t, str) and t],
        "last_analysis_date": date,
        "engines": engines,
        "country": clean_text(attrs.get("country"), 8),
        "as_owner": clean_text(attrs.get("as_owner")),
        "network": clean_text(attrs.get("network"), 64),
    }


def parse_communicating_files(body: object, limit: int) -> list:
    """Malicious-engine counts of the files in a communicating_files collection."""
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise VTError("MalformedResponse", "communicating_files answer has no data list")
    counts = []
    for item in items[:limit]:
        stats = dig(item, "attributes.last_analysis_stats") if isinstance(item, dict) else None
        if isinstance(item, dict) and "error" not in item and isinstance(stats, dict):
            value = stats.get("malicious", 0)
            counts.append(value if _is_int(value) and value >= 0 else 0)
    return counts


# --------------------------------------------------------------------------- the VirusTotal client

class Deadline:
    """The run's time budget: timeout x (retries + 1) from the start, whatever VT does."""

    def __init__(self, start: float, seconds: float) -> None:
        self.at = start + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()


class Watchdog:
    """A one-shot timer that interrupts blocking I/O (slow bodies, locks) at the deadline.

    Socket timeouts bound each read, not a body dribbled one byte at a time; this bounds all.
    """

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __enter__(self) -> Watchdog:
        import signal

        def fire(signum, frame):
            raise DeadlineExceeded()
        self._signal = signal
        self._old = signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.deadline.remaining()))
        return self

    def __exit__(self, *exc) -> None:
        self._signal.setitimer(self._signal.ITIMER_REAL, 0)
        self._signal.signal(self._signal.SIGALRM, self._old)


class VTClient:
    """GET requests to VT v3 with bounded retries inside the run's deadline."""

    def __init__(self, cfg: Config, api_key: str, timeout: float, retries: int,
                 deadline: Deadline, on_request) -> None:
        if sys.flags.no_site:   # the wrapper starts Python with -S: add site-packages now
            import site
            site.main()
        import requests  # only here: importing it costs more than the rest of a cache hit
        self.requests = requests
        self.session = requests.Session()
        self.base = cfg.api_url
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.deadline = deadline
        self.on_request = on_request  # counts every request against the budget

    def ip_object(self, ip: str) -> dict | None:
        """The IP's facts, or None when VT has never seen it (404 NotFoundError)."""
        body = self._get(f"/ip_addresses/{ip}", {}, not_found_ok=True)
        return None if body is None else parse_ip_object(body)

    def communicating_files(self, ip: str, limit: int) -> list:
        body = self._get(f"/ip_addresses/{ip}/communicating_files", {"limit": str(limit)})
        return parse_communicating_files(body, limit)

    def _get(self, path: str, params: dict, not_found_ok: bool = False):
        last = VTError("Timeout", "no time left for a VirusTotal request", transient=True)
        for _attempt in range(self.retries + 1):
            left = self.deadline.remaining()
            if left <= 0.05:
                break
            self.on_request()
            try:
                status, body, code, message = self._once(path, params, min(self.timeout, left))
            except VTError as exc:
                last = exc
                if exc.transient:
                    continue
                raise
            if status == 200:
                return body
            if status == 404 and code == "NotFoundError" and not_found_ok:
                return None
            label = code or str(status)
            if status == 429:
                raise VTError(label, message or "quota exceeded", transient=True, quota=True)
            if status >= 500:
                last = VTError(label, message or f"HTTP {status} from VirusTotal", transient=True)
                continue
            raise VTError(label, message or f"HTTP {status} from VirusTotal")
        raise last

    def _once(self, path: str, params: dict, timeout: float) -> tuple:
        rq = self.requests
        headers = {"x-apikey": self.api_key, "x-tool": USER_AGENT_TOOL, "Accept": "application/json"}
        try:
            with Watchdog(self.deadline):
                # No redirects: the key header would follow them to another host.
                resp = self.session.get(self.base + path, params=params, headers=headers,
                                        timeout=timeout, allow_redirects=False, stream=True)
                raw = bytearray()
                for chunk in resp.iter_content(65536):
                    raw += chunk
                    if len(raw) > MAX_VT_BODY:
                        raise VTError("MalformedResponse", "answer larger than 8 MiB")
                resp.close()
        except DeadlineExceeded:
            raise VTError("Timeout", "VirusTotal did not answer within the run's time budget",
                          transient=True) from None
        except rq.Timeout:
            raise VTError("Timeout", f"no answer from VirusTotal within {timeout:g}s",
                          transient=True) from None
        except rq.RequestException as exc:
            kind = type(exc).__name__
            raise VTError("ConnectionError", f"cannot reach VirusTotal ({kind})",
                          transient=True) from None
        try:
            body = json_loads(raw.decode("utf-8")) if raw else None
        except (ValueError, RecursionError):
            body = None
        code = dig(body, "error.code")
        message = dig(body, "error.message")
        code = clean_text(code, 64) if isinstance(code, str) else ""
        message = clean_text(message, 300) if isinstance(message, str) else ""
        if resp.status_code == 200 and not isinstance(body, dict):
            raise VTError("MalformedResponse", "VirusTotal answered 200 without a JSON object")
        return resp.status_code, body, code, message


# --------------------------------------------------------------------------- state: cache, quota, pending

class State:
    """SQLite under <home>/var/virustotal_ip/: verdict facts, request log, quota, pending alerts.

    Shared by concurrent runs (busy timeout); lookups are serialised by a lock file so that
    two runs for one uncached IP make one request and budgets are counted exactly. The
    journal is the default rollback journal, not WAL: with WAL every run would create -wal
    and -shm files, then checkpoint and delete them as it exits, while a cache hit here only
    reads under a shared lock. Writes happen on misses, which wait on VirusTotal anyway.
    """

    def __init__(self, directory: str, log: Log) -> None:
        self.dir = directory
        self.path = os.path.join(directory, "cache.db")
        self.log = log
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise
            log.warning(f"cache {self.path} is corrupt ({exc}); recreating it")
            for suffix in ("", "-journal", "-wal", "-shm"):
                try:
                    os.unlink(self.path + suffix)
                except FileNotFoundError:
                    pass
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=2.0, isolation_level=None)
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                # A cache made by version 1 (WAL) can leave WAL only while no other process
                # has it open: until then, use it as it is.
                try:
                    if db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] != "delete":
                        return db
                except sqlite3.OperationalError:
                    return db
                db.executescript("""
                    BEGIN;
                    CREATE TABLE IF NOT EXISTS cache(ip TEXT PRIMARY KEY, entry TEXT NOT NULL,
                                                     fetched_at REAL NOT NULL);
                    CREATE INDEX IF NOT EXISTS cache_age ON cache(fetched_at);
                    CREATE TABLE IF NOT EXISTS requests(ts REAL NOT NULL);
                    CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value TEXT);
                    CREATE TABLE IF NOT EXISTS stats(day TEXT, name TEXT, n INTEGER,
                                                     PRIMARY KEY(day, name));
                    CREATE TABLE IF NOT EXISTS pending(
                        id INTEGER PRIMARY KEY, ip TEXT NOT NULL, source TEXT NOT NULL,
                        queued_at REAL NOT NULL, alert_key TEXT UNIQUE);
                    PRAGMA user_version = 2;
                    COMMIT;""")
        except BaseException:
            db.close()
            raise
        return db

    # -- cache
    def get(self, ip: str) -> dict | None:
        row = self.db.execute("SELECT entry FROM cache WHERE ip = ?", (ip,)).fetchone()
        return json_loads(row[0]) if row else None

    def put(self, ip: str, entry: dict, max_entries: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO cache(ip, entry, fetched_at) VALUES (?, ?, ?)",
                        (ip, json_dumps(entry), entry["fetched_at"]))
        excess = self.db.execute("SELECT COUNT(*) FROM cache").fetchone()[0] - max_entries
        if excess > 0:
            self.db.execute("DELETE FROM cache WHERE ip IN "
                            "(SELECT ip FROM cache ORDER BY fetched_at LIMIT ?)", (excess,))

    def count(self, name: str) -> None:
        """One more "hit" or "miss" today. A hit appends one byte to today's tally file (its
        size is the count) instead of writing SQLite, which would cost a journal and fsyncs
        on every alert; misses write SQLite anyway."""
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if name == "hit":
            fd = os.open(os.path.join(self.dir, f"hits-{day}"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o660)
            try:
                os.write(fd, b".")
            finally:
                os.close(fd)
            return
        self.db.execute("INSERT INTO stats(day, name, n) VALUES (?, ?, 1) "
                        "ON CONFLICT(day, name) DO UPDATE SET n = n + 1", (day, name))

    def _hit_tallies(self) -> dict:
        """{day: path} of the hit tally files."""
        return {name[5:]: os.path.join(self.dir, name) for name in os.listdir(self.dir) if name.startswith("hits-")}

    def counts(self, first_day: str) -> tuple:
        """({day: hits}, {day: misses}) from first_day (YYYY-MM-DD) on."""
        hits = {day: os.stat(path).st_size for day, path in self._hit_tallies().items() if day >= first_day}
        misses = dict(self.db.execute("SELECT day, n FROM stats WHERE name = 'miss' AND day >= ?",
                                      (first_day,)).fetchall())
        return hits, misses

    def prune_counts(self, first_day: str) -> None:
        """Forget hit and miss counts from before first_day."""
        self.db.execute("DELETE FROM stats WHERE day < ?", (first_day,))
        for day, path in self._hit_tallies().items():
            if day < first_day:
                os.unlink(path)

    # -- requests and quota
    def record_request(self) -> None:
        now = time.time()
        self.db.execute("INSERT INTO requests(ts) VALUES (?)", (now,))
        self.db.execute("DELETE FROM requests WHERE ts < ?", (now - 2 * 86400,))

    def requests_since(self, since: float) -> int:
        return self.db.execute("SELECT COUNT(*) FROM requests WHERE ts >= ?", (since,)).fetchone()[0]

    def get_state(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, **values: object) -> None:
        for key, value in values.items():
            self.db.execute("INSERT OR REPLACE INTO state(key, value) VALUES (?, ?)", (key, str(value)))

    # -- pending (deferred) alerts
    def defer(self, source: dict) -> None:
        kept = dict(source)
        kept["full_log"] = kept["full_log"][:PENDING_LOG_MAX]
        key = f"{source['ip']}|{source['alert_id']}" if source["alert_id"] else None
        self.db.execute("INSERT OR IGNORE INTO pending(ip, source, queued_at, alert_key) "
                        "VALUES (?, ?, ?, ?)", (source["ip"], json_dumps(kept), time.time(), key))
        excess = self.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] - PENDING_MAX
        if excess > 0:
            self.db.execute("DELETE FROM pending WHERE id IN "
                            "(SELECT id FROM pending ORDER BY id LIMIT ?)", (excess,))
            self.log.warning(f"pending queue full: dropped the {excess} oldest deferred alert(s)")

    def pending_for(self, ip: str) -> list:
        rows = self.db.execute("SELECT id, source FROM pending WHERE ip = ? ORDER BY id", (ip,))
        return [(row_id, json_loads(src)) for row_id, src in rows.fetchall()]

    def pending_ips(self) -> list:
        cutoff = time.time() - PENDING_MAX_AGE
        dropped = self.db.execute("DELETE FROM pending WHERE queued_at < ?", (cutoff,)).rowcount
        if dropped:
            self.log.warning(f"dropped {dropped} deferred alert(s) older than {PENDING_MAX_AGE // 86400} days")
        rows = self.db.execute("SELECT ip, MIN(id) AS first FROM pending GROUP BY ip ORDER BY first")
        return [ip for ip, _first in rows.fetchall()]

    def done(self, row_id: int) -> None:
        self.db.execute("DELETE FROM pending WHERE id = ?", (row_id,))

    def lock(self, name: str, blocking: bool = True):
        """An exclusive flock on <state>/<name>.lock; the file descriptor, or None if busy."""
        import fcntl
        fd = os.open(os.path.join(self.dir, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd


def open_state(home: str, log: Log) -> State | None:
    """The state, or None (run uncached) when it cannot be used; never fatal."""
    directory = os.path.join(home, "var", INTEGRATION)
    try:
        os.makedirs(directory, mode=0o770, exist_ok=True)
        return State(directory, log)
    except (OSError, sqlite3.Error) as exc:
        log.warning(f"cache unusable in {directory} ({exc}); running uncached")
        return None


def is_fresh(entry: dict, cfg: Config, now: float) -> bool:
    key = evaluate(entry, cfg, now)["verdict"] if entry["found"] else "not_found"
    return now - entry["fetched_at"] < cfg.cache_ttl_hours[key] * 3600


def is_usable(entry: dict | None, cfg: Config, now: float) -> bool:
    """A cached entry that answers the alert without any request."""
    return entry is not None and is_fresh(entry, cfg, now) and not needs_pivot_request(entry, cfg, now)


def stats_first_day(now: float) -> str:
    """The first UTC day whose hit and miss counts are kept (STATS_DAYS days up to today)."""
    return time.strftime("%Y-%m-%d", time.gmtime(now - (STATS_DAYS - 1) * 86400))


def next_utc_midnight(now: float) -> float:
    return (int(now) // 86400 + 1) * 86400


# --------------------------------------------------------------------------- delivery

def location_for(source: dict) -> str:
    """`virustotal_ip` for the manager; the agent-routed form otherwise (contract section 3)."""
    agent_id = source["agent_id"]
    if not agent_id or agent_id == "000":
        return INTEGRATION

    def esc(text: str) -> str:
        return text.replace("|", "||").replace(":", "|:")
    return (f"[{esc(agent_id)}] ({esc(source['agent_name'])}) "
            f"{esc(source['agent_ip'] or 'any')}->{INTEGRATION}")


def encode_message(event: dict, source: dict) -> bytes:
    """`1:<location>:<json>` below 65535 bytes, shortening original_full_log as needed."""
    prefix = f"1:{location_for(source)}:".encode()
    message = {"virustotal_ip": event, "integration": INTEGRATION}
    if "error" not in event:
        message["original_full_log"] = source["full_log"][:MAX_DATAGRAM]
        # Top-level srcip is what Wazuh's JSON decoder maps to the alert's srcip (data.srcip),
        # the field Active Response programs (firewall-drop, host-deny) block. Verdicts only:
        # an error event names no address to act on.
        message["srcip"] = source["ip"]
    raw = prefix + json_dumps(message).encode()
    if len(raw) < MAX_DATAGRAM:
        return raw
    full_log, marker = message["original_full_log"], " [truncated]"
    message["original_full_log"] = ""
    room = MAX_DATAGRAM - 1 - len(prefix + json_dumps(message).encode()) - len(marker)
    # Escapes make a character cost 1 to 6 bytes: find the longest prefix that fits.
    lo, hi = 0, len(full_log)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(json_dumps(full_log[:mid]).encode()) - 2 <= room:
            lo = mid
        else:
            hi = mid - 1
    message["original_full_log"] = full_log[:lo] + marker if room > 0 else ""
    raw = prefix + json_dumps(message).encode()
    if len(raw) >= MAX_DATAGRAM:
        raise DeliveryError("message too large even without original_full_log")
    return raw


def send(home: str, raw: bytes) -> None:
    path = os.path.join(home, "queue", "sockets", "queue")
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        try:
            sock.connect(path)
            sock.send(raw)
        finally:
            sock.close()
    except FileNotFoundError:
        raise DeliveryError(f"queue socket {path} is missing (is wazuh-analysisd running?)") from None
    except ConnectionRefusedError:
        raise DeliveryError(f"queue socket {path} refused the message (wazuh-analysisd is down)") from None
    except OSError as exc:
        raise DeliveryError(f"cannot send to {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- one lookup

class Run:
    """Everything one invocation needs, passed explicitly (no module-level state)."""

    def __init__(self, home: str, cfg: Config, log: Log, state: State | None, api_key: str,
                 timeout: float, retries: int, deadline: Deadline, debug: bool) -> None:
        self.home, self.cfg, self.log, self.state = home, cfg, log, state
        self.api_key, self.timeout, self.retries = api_key, timeout, retries
        self.deadline, self.debug = deadline, debug
        self._client: VTClient | None = None

    def client(self) -> VTClient:
        if self._client is None:
            self._client = VTClient(self.cfg, self.api_key, self.timeout, self.retries,
                                    self.deadline, self._count_request)
        return self._client

    def _count_request(self) -> None:
        if self.state is not None:
            try:
                self.state.record_request()
            except sqlite3.Error as exc:
                self.log.warning(f"cannot record a VT request in the cache ({exc})")

    def blocked(self) -> str | None:
        """Why no VT request may be made now (quota outage, budget), or None."""
        if self.state is None:
            return None
        now = time.time()
        until = float(self.state.get_state("quota_until", "0") or 0)
        if now < until:
            return f"VirusTotal quota exceeded; no requests until {iso_utc(until)}"
        limit = self.cfg.rate_limit_per_minute
        if limit and self.state.requests_since(now - 60) >= limit:
            return f"rate_limit_per_minute={limit} reached"
        daily, midnight = self.cfg.daily_quota, next_utc_midnight(now)
        if daily and self.state.requests_since(midnight - 86400) >= daily:
            return f"daily_quota={daily} reached; no requests until {iso_utc(midnight)}"
        return None

    def quota_hit(self, exc: VTError) -> bool:
        """Start or extend a quota outage; True if this outage has not been reported yet."""
        if self.state is None:
            return True
        now = time.time()
        last_until = float(self.state.get_state("quota_until", "0") or 0)
        # A per-minute block that did not clear it means the daily (or monthly) quota is spent.
        repeated = exc.code == "QuotaExceededError" and last_until > 0 and now - last_until < 120
        until = next_utc_midnight(now) if repeated else now + QUOTA_MINUTE_BLOCK
        report = self.state.get_state("outage_reported") != "1"
        self.state.set_state(quota_until=until, outage_reported=1)
        self.log.warning(f"VirusTotal {exc.code}: no requests until {iso_utc(until)}")
        return report

    def quota_ok(self) -> None:
        if self.state is not None and self.state.get_state("outage_reported") == "1":
            self.state.set_state(quota_until=0, outage_reported=0)
            self.log.info("VirusTotal answered again; quota outage over")

    def lookup(self, ip: str) -> tuple:
        """("entry", entry, cached) | ("defer", why) | ("error", VTError, report: bool)."""
        cfg, now = self.cfg, time.time()
        entry = self._cached(ip)
        self.log.debug(f"{ip}: {'cached' if entry is not None else 'not cached'}")
        if is_usable(entry, cfg, now):
            self._count("hit")
            return "entry", entry, True
        self._count("miss")
        if not self.api_key:
            return "error", VTError("NoApiKey", "no VirusTotal API key: set api_key in "
                                    f"{SCRIPT_NAME}.json or <api_key> in ossec.conf"), True
        lock = None
        try:
            if self.state is not None:
                try:
                    with Watchdog(self.deadline):
                        lock = self.state.lock("lookup")
                except DeadlineExceeded:
                    return "defer", "another lookup held the lock for the whole time budget"
                # another run may have looked it up while we waited for the lock
                entry = self._cached(ip)
                if is_usable(entry, cfg, now):
                    return "entry", entry, True
            return self._fetch(ip, entry if entry is not None and is_fresh(entry, cfg, now) else None)
        finally:
            if lock is not None:
                os.close(lock)

    def _fetch(self, ip: str, entry: dict | None) -> tuple:
        cfg = self.cfg
        try:
            if entry is None:
                why = self.blocked()
                if why:
                    return "defer", why
                facts = self.client().ip_object(ip)
                self.quota_ok()
                entry = {"found": facts is not None, "facts": facts, "fetched_at": time.time()}
                self._store(ip, entry)
            if needs_pivot_request(entry, cfg, time.time()):
                why = self.blocked()
                if why:
                    return "defer", why
                try:
                    entry["pivot"] = self.client().communicating_files(ip, cfg.pivot_limit)
                    self.quota_ok()
                except VTError as exc:
                    if exc.quota:
                        raise
                    # a failed pivot leaves the verdict as it was (integration.md step 5)
                    self.log.warning(f"pivot for {ip} failed: {exc.code}: {exc.description}")
                    entry["pivot_failed"] = True
                self._store(ip, entry)
        except VTError as exc:
            if exc.quota:
                return "error", exc, self.quota_hit(exc)
            return "error", exc, True
        return "entry", entry, False

    def _cached(self, ip: str) -> dict | None:
        if self.state is None:
            return None
        try:
            return self.state.get(ip)
        except (sqlite3.Error, ValueError) as exc:
            self.log.warning(f"cache read failed ({exc}); looking {ip} up")
            return None

    def _store(self, ip: str, entry: dict) -> None:
        if self.state is not None:
            try:
                self.state.put(ip, entry, self.cfg.cache_max_entries)
            except sqlite3.Error as exc:
                self.log.warning(f"cache write failed ({exc}); result not cached")

    def _count(self, name: str) -> None:
        if self.state is not None:
            try:
                self.state.count(name)
            except (sqlite3.Error, OSError):
                pass  # statistics only

    def deliver(self, event: dict, source: dict) -> None:
        raw = encode_message(event, source)
        if self.debug:
            print(f"# Request result from VT server: {raw.decode('utf-8', 'replace')}")
        send(self.home, raw)
        self.log.debug(f"sent {len(raw)} bytes for alert {shown(source.get('alert_id'))} to analysisd")

    def defer(self, source: dict, why: str) -> bool:
        if self.state is None:
            self.log.error(f"cannot defer the lookup of {source['ip']} ({why}): cache unusable")
            return False
        try:
            self.state.defer(source)
        except sqlite3.Error as exc:
            self.log.error(f"cannot defer the lookup of {source['ip']} ({why}): {exc}")
            return False
        self.log.info(f"deferred lookup of {source['ip']} for alert {shown(source['alert_id'])}: {why}")
        return True

    def flush_pending(self, ip: str, entry: dict, cached: bool) -> int:
        """Send the deferred alerts waiting for this IP; returns how many were sent."""
        if self.state is None:
            return 0
        sent = 0
        for row_id, source in self.state.pending_for(ip):
            event = build_enrichment(entry, self.cfg, time.time(), source, cached)
            event["deferred"] = True
            try:
                self.deliver(event, source)
            except DeliveryError as exc:
                self.log.error(f"deferred alerts for {ip} stay queued: {exc}")
                break
            self.state.done(row_id)
            sent += 1
        if sent:
            self.log.info(f"sent {sent} deferred enrichment(s) for {ip}")
        return sent


def handle_alert(run: Run, alert: dict) -> int:
    """The integratord path: one alert in, at most one enrichment or error event out."""
    log, cfg = run.log, run.cfg
    if is_own_enrichment(alert):
        # Harmless here, but it means the <integration> trigger matches our own rules.
        log.warning(f"alert {shown(alert.get('id'))} is our own enrichment (loop guard); nothing sent. "
                    "The <integration> filter must not match groups virustotal/vt_ip or our rule ids")
        return EXIT_OK
    packed, field = select_ip(alert, cfg.ip_fields)
    alert_id = shown(alert.get("id"))
    if packed is None:
        log.info(f"alert {alert_id}: no valid IP in {', '.join(cfg.ip_fields)}; nothing sent")
        return EXIT_OK
    ip = ip_text(packed)
    why = skip_reason(packed, cfg)
    if why:
        log.info(f"alert {alert_id}: {field} {ip} is {why}; not looked up")
        return EXIT_OK
    source = alert_source(alert, ip)
    outcome = run.lookup(ip)
    try:
        if outcome[0] == "entry":
            _, entry, cached = outcome
            event = build_enrichment(entry, cfg, time.time(), source, cached)
            run.deliver(event, source)
            log.info(f"{ip}: {event['verdict']} ({','.join(event['reasons'])})"
                     f"{' from cache' if cached else ''} for alert {alert_id}")
            run.flush_pending(ip, entry, cached)
            return EXIT_OK
        if outcome[0] == "defer":
            return EXIT_OK if run.defer(source, outcome[1]) else EXIT_UNDELIVERED
        _, exc, report = outcome
        log.error(f"{ip}: VirusTotal error {exc.code}: {exc.description}")
        if exc.transient:
            run.defer(source, f"after {exc.code}")
        if report:
            run.deliver(error_event(exc.code, exc.description, source), source)
        return EXIT_OK
    except DeliveryError as exc:
        log.error(f"{ip}: {exc}")
        if outcome[0] == "entry":
            run.defer(source, "delivery failed")
        return EXIT_UNDELIVERED


def drain(run: Run) -> int:
    """Look up deferred alerts while budget allows; send them marked deferred."""
    state = run.state
    if state is None:
        return EXIT_UNDELIVERED
    guard = state.lock("drain", blocking=False)
    if guard is None:
        run.log.info("--drain: another drain is running")
        return EXIT_OK
    sent = 0
    try:
        try:
            state.prune_counts(stats_first_day(time.time()))
        except (OSError, sqlite3.Error) as exc:
            run.log.warning(f"--drain: cannot prune old hit/miss counts ({exc})")
        for ip in state.pending_ips():
            if run.deadline.remaining() < 1:
                break
            outcome = run.lookup(ip)
            if outcome[0] != "entry":
                if outcome[0] == "error":
                    exc, report = outcome[1], outcome[2]
                    run.log.warning(f"--drain: {ip}: {exc.code}: {exc.description}")
                    if exc.quota and report:
                        rows = state.pending_for(ip)
                        if rows:
                            run.deliver(error_event(exc.code, exc.description, rows[0][1]), rows[0][1])
                break  # budget, quota or VT trouble: try again next minute
            sent += run.flush_pending(ip, outcome[1], outcome[2])
    except DeliveryError as exc:
        run.log.error(f"--drain: {exc}")
        return EXIT_UNDELIVERED
    finally:
        os.close(guard)
    left = state.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
    run.log.info(f"--drain: sent {sent}, {left} still pending")
    return EXIT_OK


# --------------------------------------------------------------------------- command line

def wazuh_home() -> str:
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def parse_integratord_argv(args: list) -> dict:
    """integratord's argv, 4.3 to 4.14 (contract section 1), read defensively."""
    if not args:
        raise InputError("usage: custom-virustotal_ip ALERT_FILE API_KEY HOOK_URL [debug] ...")
    rest = args[2:]
    api_key = args[1] if len(args) > 1 else ""
    if api_key.startswith("api_key:"):
        api_key = api_key[len("api_key:"):]
    options = args[4] if len(args) > 4 and args[4].endswith(".options") else None
    if options is None:
        options = next((a for a in rest if a.endswith(".options")), None)
    numbers = [int(a) for a in rest if a.isascii() and a.isdigit() and len(a) < 6]
    return {
        "alert": args[0],
        "api_key": api_key.strip(),
        "debug": "debug" in rest,
        "options": options,
        "timeout": min(max(numbers[0], 1), 300) if numbers else DEFAULT_TIMEOUT,
        "retries": min(numbers[1], 10) if len(numbers) > 1 else DEFAULT_RETRIES,
    }


def run_integratord(args: list, home: str, started: float) -> int:
    log = Log(os.path.join(home, "logs", "integrations.log"))
    try:
        opts = parse_integratord_argv(args)
        log.debug_enabled = opts["debug"]
        if opts["debug"]:
            print("# Running VirusTotal IP script")
        alert = read_alert(opts["alert"])
    except InputError as exc:
        log.error(str(exc))
        return EXIT_BAD_INPUT
    if opts["debug"]:              # nothing of this is built on the non-debug (cache-hit) path
        print(f"# Opening alert file at '{opts['alert']}' with '{alert}'")
        log.debug(f"alert file {shown(opts['alert'])}: alert {shown(alert.get('id'))}, options file "
                  f"{shown(opts['options'] or None)}, timeout {opts['timeout']} s, retries {opts['retries']}")
    cfg = load_config(home, opts["options"], log)
    state = open_state(home, log)
    deadline = Deadline(started, opts["timeout"] * (opts["retries"] + 1))
    run = Run(home, cfg, log, state, opts["api_key"] or cfg.api_key, opts["timeout"],
              opts["retries"], deadline, opts["debug"])
    return handle_alert(run, alert)


def drop_root(directory: str) -> None:
    """Analyst commands run as root act as the state's owner, so wazuh can keep using it."""
    if os.geteuid() != 0:
        return
    try:
        st = os.stat(directory)
    except OSError:
        return
    if st.st_uid != 0:
        os.setgroups([])
        os.setgid(st.st_gid)
        os.setuid(st.st_uid)


def format_check(ip: str, entry: dict, cached: bool, cfg: Config) -> str:
    source = {"alert_id": "", "rule": "", "ip": ip}
    e = build_enrichment(entry, cfg, time.time(), source, cached)
    age = "" if e.get("age_days") is None else f" ({e['age_days']} days ago)"
    lines = [f"IP:          {ip}", f"Verdict:     {e['verdict']}",
             f"Reasons:     {', '.join(e['reasons'])}"]
    if e["found"]:
        lines += [
            f"Engines:     malicious {e['counts']['malicious']}, suspicious {e['counts']['suspicious']}"
            f" (weighted {e['weighted_malicious']:.2f})",
            f"Reputation:  {e['reputation']}",
            f"Tags:        {', '.join(e['tags']) or '-'}",
            f"Analysed:    {e['last_analysis_date'] or 'never'}{age}",
            f"Owner:       {e['as_owner'] or '-'} ({e['country'] or '-'}, {e['network'] or '-'})",
        ]
        if e["pivot"]["used"]:
            lines.append(f"Pivot:       {e['pivot']['strong_mal_files']} of "
                         f"{e['pivot']['total_files']} communicating files strongly malicious")
    else:
        lines.append("VirusTotal:  not found (never seen)")
    lines += [f"Source:      {'cache' if cached else 'VirusTotal'}", f"Permalink:   {e['permalink']}"]
    return "\n".join(lines)


def format_status(state: State, cfg: Config) -> str:
    db, now = state.db, time.time()
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    entries = db.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
    fresh = sum(1 for (raw,) in db.execute("SELECT entry FROM cache")
                if is_fresh(json_loads(raw), cfg, now))
    daily_hits, daily_misses = state.counts(stats_first_day(now))
    hits, misses = sum(daily_hits.values()), sum(daily_misses.values())
    ratio = f"{100.0 * hits / (hits + misses):.1f}%" if hits + misses else "n/a"
    until = float(state.get_state("quota_until", "0") or 0)
    quota = f"exceeded, no requests until {iso_utc(until)}" if now < until else "ok"
    pending, oldest = db.execute("SELECT COUNT(*), MIN(queued_at) FROM pending").fetchone()
    limit, daily, managers = cfg.rate_limit_per_minute, cfg.daily_quota, cfg.budget_managers
    budget = (f"{f'{limit} requests a minute' if limit else 'no per-minute limit'}, "
              f"{f'{daily} a day' if daily else 'no daily cap'}")
    if managers > 1:
        budget += f": this manager's share of a key {managers} managers share"
    return "\n".join([
        f"Cache:             {entries} entries ({fresh} fresh), {state.path}",
        f"Cache hit ratio:   {ratio} ({hits} hits, {misses} misses in {STATS_DAYS} days; today "
        f"{daily_hits.get(today, 0)}/{daily_misses.get(today, 0)})",
        f"VT requests today: {state.requests_since(next_utc_midnight(now) - 86400)}"
        f"{f' of {daily} allowed' if daily else ''} "
        f"(last minute: {state.requests_since(now - 60)}"
        f"{f' of {limit} allowed' if limit else ', no local rate limit'})",
        f"Budget:            {budget}",
        f"Quota:             {quota}",
        f"Pending lookups:   {pending}"
        f"{f' (oldest queued {iso_utc(oldest)})' if pending else ''}",
    ])


def run_cli(args: list, home: str, started: float) -> int:
    import argparse
    parser = argparse.ArgumentParser(
        prog="custom-virustotal_ip.py",
        description="VirusTotal IP reputation for Wazuh: analyst and maintenance commands.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", metavar="IP", help="look one IP up and print the verdict with its reasons")
    mode.add_argument("--status", action="store_true", help="cache, request, quota and pending figures")
    mode.add_argument("--drain", action="store_true", help="look up deferred alerts (cron, every minute)")
    parser.add_argument("--api-key", default=os.environ.get("VT_API_KEY", ""),
                        help="VirusTotal key (default: $VT_API_KEY, then api_key in the config file)")
    parser.add_argument("--options", metavar="FILE", help="a JSON options file applied last")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per request")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="retries per request")
    ns = parser.parse_args(args)
    log = Log(os.path.join(home, "logs", "integrations.log"), echo=True)
    cfg = load_config(home, ns.options, log)
    timeout, retries = min(max(ns.timeout, 1), 300), min(max(ns.retries, 0), 10)
    drop_root(os.path.join(home, "var", INTEGRATION))
    state = open_state(home, log)
    if ns.status:
        if state is None:
            return EXIT_INTERNAL
        print(format_status(state, cfg))
        return EXIT_OK
    seconds = DRAIN_SECONDS if ns.drain else timeout * (retries + 1)
    run = Run(home, cfg, log, state, ns.api_key or cfg.api_key, timeout, retries,
              Deadline(started, seconds), False)
    if ns.drain:
        return drain(run)
    packed = parse_ip(ns.check)
    if packed is None:
        print(f"error: {shown(ns.check)} is not an IP address", file=sys.stderr)
        return EXIT_BAD_INPUT
    ip = ip_text(packed)
    why = skip_reason(packed, cfg)
    if why:
        print(f"{ip}: {why}; the integration never looks it up")
        return EXIT_OK
    outcome = run.lookup(ip)
    if outcome[0] == "entry":
        print(format_check(ip, outcome[1], outcome[2], cfg))
        return EXIT_OK
    if outcome[0] == "defer":
        print(f"{ip}: not looked up now: {outcome[1]}", file=sys.stderr)
    else:
        print(f"{ip}: VirusTotal error {outcome[1].code}: {outcome[1].description}", file=sys.stderr)
    return EXIT_UNDELIVERED


def main(argv: list) -> int:
    started = time.monotonic()
    os.umask(0o007)   # cache, lock and log files are for root and the wazuh group only
    home = wazuh_home()
    try:
        if len(argv) > 1 and argv[1].startswith("-"):
            return run_cli(argv[1:], home, started)
        return run_integratord(argv[1:], home, started)
    except KeyboardInterrupt:
        Log(os.path.join(home, "logs", "integrations.log")).error("interrupted (SIGINT); stopped")
        return EXIT_INTERNAL
    except DeadlineExceeded:
        Log(os.path.join(home, "logs", "integrations.log")).error(
            "the run's time bound (timeout x (retries + 1)) was reached; stopped")
        return EXIT_INTERNAL
    except Exception as exc:  # the last line of defence: one log line, never a traceback
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        line = where.tb_lineno if where is not None else 0
        Log(os.path.join(home, "logs", "integrations.log")).error(
            f"internal error {type(exc).__name__} at line {line}: {shown(str(exc), 200)}")
        return EXIT_INTERNAL


def main_and_exit(argv: list) -> None:
    """The wrapper's entry point: main(), then exit without the interpreter's teardown of
    every module and object (about a tenth of a cache hit). Nothing is lost by skipping it:
    logs are written unbuffered, SQLite commits as it goes, and stdio is flushed here."""
    status = main(argv)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
