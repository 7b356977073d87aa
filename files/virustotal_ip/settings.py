# SPDX-License-Identifier: MIT
"""The settings: one table, from which come the script's defaults and validation, and (by
`make settings`) the role's defaults, argument specs, range checks, and the documentation.

Applied in order: the defaults below, <home>/etc/custom-virustotal_ip.json (written by the
role), then integratord's <options> file. A bad value is logged by name and skipped; the
run goes on with the value before it.
"""
from __future__ import annotations

from .codec import is_int, is_number, json_loads, shown
from .address import parse_network

CONFIG_FILE = "custom-virustotal_ip.json"        # in <home>/etc
TTL_KEYS = ("malicious", "suspicious", "unknown", "not_found")


class Setting:
    """One row of the table. `kind` names its check (KINDS); `low`/`high` bound numbers;
    `role` is false for the keys the role derives rather than takes from a variable."""
    __slots__ = ("choices", "default", "doc", "high", "key", "kind", "low", "role")

    def __init__(self, key: str, kind: str, default: object, doc: str, low: float | None = None,
                 high: float | None = None, role: bool = True, choices: tuple = ()) -> None:
        self.key, self.kind, self.default, self.doc = key, kind, default, doc
        self.low, self.high, self.role, self.choices = low, high, role, choices


SCHEMA = (
    Setting("api_key", "secret", "",
            "VirusTotal API key (required). Keep it in ansible-vault: the role writes it only to "
            "etc/custom-virustotal_ip.json (root:wazuh 0640), never to ossec.conf, argv or its output."),
    Setting("api_url", "url", "https://www.virustotal.com/api/v3",
            "VirusTotal API base URL (a proxy, or a local server in tests)."),
    Setting("mal_strong_min", "int", 3, "Malicious outright at this many malicious engines or more.", 1, 1000),
    Setting("rep_bad_lt", "int", 0, "A reputation below this is bad.", -10**6, 10**6),
    Setting("weight_mal_strong", "number", 3.0,
            "Weighted engine score that makes an IP malicious. The score counts 1 per malicious and 0.5 per "
            "suspicious engine, times that engine's weight.",
            0, 10**6),
    Setting("weight_mal_sus", "number", 1.5, "Weighted engine score that lifts unknown to suspicious.", 0, 10**6),
    Setting("stale_weak_days", "int", 90,
            "Days after which a weak hit is downgraded to unknown. Weak: at most 1 malicious engine and a "
            "reputation that is not bad.",
            0, 36500),
    Setting("risk_tags", "strings", ["tor", "vpn", "proxy", "anonymizer", "anonymous"],
            "VirusTotal tags that keep an IP with any engine hit at least suspicious (case-insensitive)."),
    Setting("engine_weights", "weights", {},
            "Per-engine multiplier (>= 0) of that engine's points, like `{Kaspersky: 1.5}` (case-insensitive)."),
    Setting("pivot_enabled", "bool", True,
            "Look at the files that communicate with a borderline IP (one more request)."),
    Setting("pivot_limit", "int", 10, "Communicating files fetched.", 1, 40),
    Setting("pivot_strong_file_min", "int", 5, "A file is strong at this many malicious engines or more.", 1, 1000),
    Setting("pivot_upgrade_1", "int", 1, "Strong files that lift unknown to suspicious.", 1, 40),
    Setting("pivot_upgrade_2", "int", 3, "Strong files that raise the verdict one level.", 1, 40),
    Setting("pivot_max_hits", "int", 1, "Pivot only when malicious + suspicious engines are at most this.", 0, 1000),
    Setting("ip_fields", "strings", ["data.srcip", "data.src_ip", "data.source_ip", "data.client_ip"],
            "Alert fields tried in order; the first holding a valid IP is looked up."),
    Setting("skip_non_global", "bool", True,
            "Never look up private, loopback, link-local, CGNAT, multicast, reserved or documentation addresses."),
    Setting("allowlist", "cidrs", [], "CIDRs never looked up."),
    Setting("cache_ttl_hours", "ttls", {"malicious": 24, "suspicious": 12, "unknown": 12, "not_found": 24},
            "Hours (>= 0) a cached answer is used, per verdict (keys malicious, suspicious, unknown, not_found)."),
    Setting("cache_max_entries", "int", 100000, "Cached IPs kept at most; the oldest are evicted.", 1, 10**7),
    Setting("lookup_mode", "choice", "worker",
            "How a cache miss is looked up. `worker`: queued, and looked up by a lookup worker the script "
            "starts, so integratord (which runs every integration one at a time) never waits on VirusTotal. "
            "`inline`: within integratord's call, as 1.2 and earlier did.",
            choices=("worker", "inline")),
    Setting("lookup_parallel", "int", 2,
            "Lookup workers at most at once (never more than rate_limit_per_minute when that is set).", 1, 32),
    Setting("rate_limit_per_minute", "int", 0,
            "VirusTotal requests a minute on this manager (0: no limit); the role writes its share of the key's.",
            0, 100000, role=False),
    Setting("daily_quota", "int", 0,
            "VirusTotal requests a day on this manager (0: no cap); past it, lookups are deferred until "
            "00:00 UTC. The role writes its share of the key's.", 0, 10**9, role=False),
    Setting("ipv6_prefix_requests_per_day", "int", 20,
            "VirusTotal requests a day for the addresses of one IPv6 /64 (0: no limit). An attacker rotating "
            "addresses within a /64 misses the cache on each; this keeps them from spending the daily quota. "
            "Past it, that /64's lookups are deferred until 00:00 UTC; other addresses are still looked up, and "
            "each address keeps its own verdict. Counted per manager; IPv4 addresses (also one an IPv6 address "
            "carries, looked up as itself) count against no /64.", 0, 10**9),
    Setting("budget_managers", "int", 1, "Managers sharing the key, shown by --status (the role writes it).",
            1, 10000, role=False),
)


def defaults() -> dict:
    """The table's defaults, as a fresh dict (lists and dicts copied)."""
    return {s.key: (list(s.default) if isinstance(s.default, list)
                    else dict(s.default) if isinstance(s.default, dict) else s.default) for s in SCHEMA}


# kind -> check(value, setting) returning the accepted value or None
def _secret(v: object, s: Setting) -> object:
    return v if isinstance(v, str) and len(v) < 256 and v.isprintable() else None


def _url(v: object, s: Setting) -> object:
    return v if isinstance(v, str) and v.startswith(("https://", "http://")) and len(v) < 2048 else None


def _int(v: object, s: Setting) -> object:
    return v if is_int(v) and s.low <= v <= s.high else None


def _number(v: object, s: Setting) -> object:
    return v if is_number(v) and s.low <= v <= s.high else None


def _bool(v: object, s: Setting) -> object:
    return v if isinstance(v, bool) else None


def _choice(v: object, s: Setting) -> object:
    return v if v in s.choices else None


def _strings(v: object, s: Setting) -> object:
    return v if isinstance(v, list) and all(isinstance(x, str) and x for x in v) else None


def _cidrs(v: object, s: Setting) -> object:
    if not isinstance(v, list):
        return None
    nets = [parse_network(item) for item in v]
    return None if None in nets else nets


def _weights(v: object, s: Setting) -> object:
    if isinstance(v, dict) and all(isinstance(k, str) and is_number(w) and w >= 0 for k, w in v.items()):
        return v
    return None


def _ttls(v: object, s: Setting) -> object:
    if isinstance(v, dict) and all(k in TTL_KEYS and is_number(h) and h >= 0 for k, h in v.items()):
        return {**s.default, **v}
    return None


KINDS = {
    "secret": (_secret, "a printable string"),
    "url": (_url, "an http(s) URL"),
    "int": (_int, "an integer {low}-{high}"),
    "number": (_number, "a number {low}-{high}"),
    "bool": (_bool, "true or false"),
    "choice": (_choice, "one of {choices}"),
    "strings": (_strings, "a list of non-empty strings"),
    "cidrs": (_cidrs, "a list of CIDRs"),
    "weights": (_weights, "an object of engine name -> number >= 0"),
    "ttls": (_ttls, "an object with malicious/suspicious/unknown/not_found hours >= 0"),
}


def number_text(value: float | None) -> str:
    """1000000, not 1e+06; 0.5 as 0.5."""
    return "" if value is None else str(int(value)) if float(value).is_integer() else str(value)


def expected(s: Setting) -> str:
    """What a value of this setting must be, in words."""
    text = KINDS[s.kind][1]
    if s.low is not None and s.low < 0:
        text = text.replace("{low}-{high}", "from {low} to {high}")
    return text.format(low=number_text(s.low), high=number_text(s.high), choices=", ".join(s.choices))


class Settings:
    """The effective settings of one run, typed; read-only by convention."""

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
        self.lookup_mode: str = values["lookup_mode"]
        self.lookup_parallel: int = values["lookup_parallel"]
        self.rate_limit_per_minute: int = values["rate_limit_per_minute"]
        self.daily_quota: int = values["daily_quota"]
        self.ipv6_prefix_requests_per_day: int = values["ipv6_prefix_requests_per_day"]
        self.budget_managers: int = values["budget_managers"]


def merge(values: dict, source: dict, origin: str, log) -> None:
    """Apply one config source; unknown keys and bad values are reported by name and skipped."""
    table = {s.key: s for s in SCHEMA}
    for key, value in source.items():
        setting = table.get(key)
        if setting is None:
            log.warning(f"config {origin}: unknown key {shown(key)} ignored")
            continue
        accepted = KINDS[setting.kind][0](value, setting)
        if accepted is None:
            log.warning(f"config {origin}: {key} must be {expected(setting)}; ignored")
            continue
        values[key] = accepted


def read_json_object(path: str, what: str, log) -> dict:
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


def load(home: str, options_path: str | None, log, options: dict | None = None) -> Settings:
    """`options`: the <options> object itself, instead of its file (a lookup worker's)."""
    values = defaults()
    path = f"{home}/etc/{CONFIG_FILE}"
    merge(values, read_json_object(path, "config file", log), path, log)
    if options_path:
        options = read_json_object(options_path, "options file", log)
    if options:
        merge(values, options, "<options>", log)
    if values["weight_mal_sus"] > values["weight_mal_strong"]:
        log.warning("config: weight_mal_sus is above weight_mal_strong; both still apply as written")
    return Settings(values)
