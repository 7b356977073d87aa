# SPDX-License-Identifier: MIT
"""The verdict: what VirusTotal knows of an IP (its facts) and the thresholds -> a verdict
and the reasons for it. Pure: no I/O, no clock (the caller passes `now`), nothing imported.

A cache entry is {"found": bool, "facts": dict | None, "fetched_at": epoch, and, once the
pivot ran, "pivot": [malicious-engine count of each communicating file] or "pivot_failed"}.
Facts are what virustotal.parse_ip_object() keeps: malicious, suspicious, reputation, tags,
last_analysis_date, engines ({engine: "malicious" | "suspicious"}), country, as_owner, network.
The verdict is recomputed from the facts on every alert, so a changed threshold applies to
cached IPs at once.
"""
from __future__ import annotations

VERDICTS = ("unknown", "suspicious", "malicious")


class Verdict:
    """The outcome of the heuristic for one IP."""
    __slots__ = ("age_days", "pivot", "reasons", "verdict", "weighted")

    def __init__(self, verdict: str, reasons: list, weighted: float, age_days: float | None,
                 pivot: dict) -> None:
        self.verdict = verdict        # one of VERDICTS
        self.reasons = reasons        # the steps that decided it, e.g. ["hits>=1", "stale>90d"]
        self.weighted = weighted      # the weighted engine score
        self.age_days = age_days      # days since VirusTotal last analysed the IP, or None
        self.pivot = pivot            # {"used": False} or {"used": True, "total_files", "strong_mal_files"}


def age_in_days(last_analysis_date: float | None, now: float) -> float | None:
    if last_analysis_date is None:
        return None
    return max(0.0, (now - last_analysis_date) / 86400.0)


def weighted_score(engines: dict, weights: dict) -> float:
    """1.0 per malicious and 0.5 per suspicious engine, times that engine's weight (default 1)."""
    points = {"malicious": 1.0, "suspicious": 0.5}
    return sum((points.get(cat, 0.0) * weights.get(name.lower(), 1.0) for name, cat in engines.items()), 0.0)


def base_verdict(facts: dict, cfg, age_days: float | None) -> tuple:
    """Steps 1-4 of the heuristic (docs/verdict.md): (verdict, reasons, weighted score)."""
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


def wants_pivot(verdict: str, facts: dict, cfg) -> bool:
    """Step 5's precondition: a borderline verdict with few engine hits."""
    return (cfg.pivot_enabled and verdict in ("unknown", "suspicious")
            and facts["malicious"] + facts["suspicious"] <= cfg.pivot_max_hits)


def apply_pivot(verdict: str, reasons: list, file_malicious: list, cfg) -> tuple:
    """Step 5: files talking to the IP that many engines call malicious raise the verdict."""
    strong = sum(1 for n in file_malicious if n >= cfg.pivot_strong_file_min)
    if strong >= cfg.pivot_upgrade_2:
        verdict = VERDICTS[min(VERDICTS.index(verdict) + 1, 2)]
        reasons = [*reasons, f"pivot_strong_files>={cfg.pivot_upgrade_2}"]
    elif strong >= cfg.pivot_upgrade_1 and verdict == "unknown":
        verdict = "suspicious"
        reasons = [*reasons, f"pivot_strong_files>={cfg.pivot_upgrade_1}"]
    return verdict, reasons, strong


def evaluate(entry: dict, cfg, now: float) -> Verdict:
    """The verdict of a cache entry under the current settings."""
    if not entry["found"]:
        return Verdict("unknown", ["not_in_virustotal"], 0.0, None, {"used": False})
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
    return Verdict(verdict, reasons, weighted, age, pivot)


def needs_pivot_request(entry: dict, cfg, now: float) -> bool:
    """True when the entry's verdict still depends on a pivot that was never attempted."""
    if not entry["found"] or entry.get("pivot") is not None or entry.get("pivot_failed"):
        return False
    facts = entry["facts"]
    verdict = base_verdict(facts, cfg, age_in_days(facts["last_analysis_date"], now))[0]
    return wants_pivot(verdict, facts, cfg)


def is_fresh(entry: dict, cfg, now: float) -> bool:
    """Younger than the TTL of its verdict (of "not_found" when VirusTotal never saw it)."""
    key = evaluate(entry, cfg, now).verdict if entry["found"] else "not_found"
    return now - entry["fetched_at"] < cfg.cache_ttl_hours[key] * 3600


def is_usable(entry: dict | None, cfg, now: float) -> bool:
    """A cached entry that answers the alert without any request."""
    return entry is not None and is_fresh(entry, cfg, now) and not needs_pivot_request(entry, cfg, now)
