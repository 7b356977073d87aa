"""The verdict: the heuristic of docs/verdict.md, steps 1-5, as pure functions.

Every branch of every step is a row; its two worked examples (the original design's, "the seed")
are checked field by field.
"""
from __future__ import annotations

import time

import pytest
from harness import script_package

settings, verdict_mod, wazuh, codec = script_package("settings", "verdict", "wazuh", "codec")
NOW = 1_800_000_000.0
DAY = 86400


def facts(m=0, s=0, rep=0, age=1.0, tags=(), engines=None, **extra):
    """VT facts as the script keeps them; per-engine results default to match the stats."""
    if engines is None:
        engines = {f"m{i}": "malicious" for i in range(m)}
        engines.update({f"s{i}": "suspicious" for i in range(s)})
    out = {"malicious": m, "suspicious": s, "reputation": rep, "tags": list(tags),
           "last_analysis_date": None if age is None else NOW - age * DAY, "engines": engines,
           "country": "US", "as_owner": "AS-OWNER", "network": "1.2.3.0/24"}
    out.update(extra)
    return out


def cfg(**overrides):
    values = settings.defaults()
    values.update(overrides)
    return settings.Settings(values)


def verdict(f, pivot=None, **config):
    entry = {"found": True, "facts": f, "fetched_at": NOW}
    if pivot is not None:
        entry["pivot"] = pivot
    result = verdict_mod.evaluate(entry, cfg(**config), NOW)
    return result.verdict, result.reasons


# (name, facts, pivot file counts, config overrides, expected verdict, expected reasons)
CASES = [
    # step 1: engine counts
    ("three_malicious_engines_are_malicious", facts(m=3), None, {}, "malicious", ["mal>=3"]),
    ("one_malicious_with_bad_reputation_is_malicious", facts(m=1, rep=-1), [], {}, "malicious",
     ["mal>=1&rep<0"]),
    ("one_malicious_with_neutral_reputation_is_suspicious", facts(m=1), [], {}, "suspicious",
     ["hits>=1"]),
    ("one_suspicious_engine_is_suspicious", facts(s=1), [], {}, "suspicious", ["hits>=1"]),
    ("no_engine_hits_is_unknown", facts(), [], {}, "unknown", ["no_hits"]),
    ("bad_reputation_without_malicious_hits_is_not_malicious", facts(s=1, rep=-50), [], {},
     "suspicious", ["hits>=1"]),
    ("mal_strong_min_is_configurable", facts(m=3), [], {"mal_strong_min": 4}, "malicious",
     ["hits>=1", "wmal>=3"]),
    ("rep_bad_lt_is_configurable", facts(m=1, rep=-1), [], {"rep_bad_lt": -5}, "suspicious",
     ["hits>=1"]),
    # step 2: staleness downgrades only weak step-1 suspicious hits
    ("stale_weak_hit_is_downgraded_to_unknown", facts(m=1, age=91), [], {}, "unknown",
     ["hits>=1", "stale>90d"]),
    ("hit_exactly_90_days_old_is_not_stale", facts(m=1, age=90), [], {}, "suspicious", ["hits>=1"]),
    ("stale_hit_with_two_malicious_engines_stays_suspicious", facts(m=2, age=200), None, {},
     "suspicious", ["hits>=1"]),
    ("stale_hit_with_bad_reputation_stays_malicious", facts(m=1, rep=-1, age=200), None, {},
     "malicious", ["mal>=1&rep<0"]),
    ("stale_strong_hit_stays_malicious", facts(m=5, age=400), None, {}, "malicious", ["mal>=3"]),
    ("hit_without_analysis_date_is_never_stale", facts(m=1, age=None), [], {}, "suspicious",
     ["hits>=1"]),
    ("stale_weak_days_is_configurable", facts(m=1, age=40), [], {"stale_weak_days": 30}, "unknown",
     ["hits>=1", "stale>30d"]),
    # step 3: light engine weighting
    ("weighted_score_of_three_makes_suspicious_malicious", facts(m=2, s=2), None, {}, "malicious",
     ["hits>=1", "wmal>=3"]),
    ("weighted_score_below_three_leaves_suspicious", facts(m=2, s=1), None, {}, "suspicious",
     ["hits>=1"]),
    ("weighted_score_of_one_and_a_half_lifts_stale_unknown_to_suspicious",
     facts(m=1, s=1, age=100), None, {}, "suspicious", ["hits>=1", "stale>90d", "wmal>=1.5"]),
    ("weighted_score_upgrades_even_a_stale_hit_to_malicious", facts(m=1, s=4, age=100), None, {},
     "malicious", ["hits>=1", "stale>90d", "wmal>=3"]),
    ("engine_weight_multiplies_that_engines_points", facts(m=1, engines={"BadEngine": "malicious"}),
     None, {"engine_weights": {"badengine": 3}}, "malicious", ["hits>=1", "wmal>=3"]),
    ("zero_engine_weight_silences_an_engine",
     facts(m=2, s=2, engines={"a": "malicious", "b": "malicious", "c": "suspicious", "d": "suspicious"}),
     None, {"engine_weights": {"a": 0}}, "suspicious", ["hits>=1"]),
    ("weights_count_per_engine_results_not_stats",
     facts(m=0, s=0, engines={f"e{i}": "malicious" for i in range(3)}), None, {}, "malicious",
     ["no_hits", "wmal>=3"]),
    # step 4: risk tags
    ("risk_tag_keeps_a_stale_hit_suspicious", facts(s=1, age=100, tags=["tor"]), [], {},
     "suspicious", ["hits>=1", "stale>90d", "risk_tag:tor"]),
    ("risk_tag_without_any_hit_changes_nothing", facts(tags=["vpn"]), [], {}, "unknown", ["no_hits"]),
    ("risk_tags_compare_case_insensitively", facts(m=1, age=100, tags=["Proxy"]), [], {},
     "suspicious", ["hits>=1", "stale>90d", "risk_tag:Proxy"]),
    ("tags_outside_risk_tags_do_not_count", facts(m=1, age=100, tags=["cdn"]), [], {}, "unknown",
     ["hits>=1", "stale>90d"]),
    # step 5: the communicating-files pivot
    ("three_strong_files_raise_unknown_to_suspicious", facts(), [5, 9, 40], {}, "suspicious",
     ["no_hits", "pivot_strong_files>=3"]),
    ("three_strong_files_raise_suspicious_to_malicious", facts(s=1), [5, 5, 5, 0], {}, "malicious",
     ["hits>=1", "pivot_strong_files>=3"]),
    ("one_strong_file_raises_unknown_to_suspicious", facts(), [5, 4], {}, "suspicious",
     ["no_hits", "pivot_strong_files>=1"]),
    ("one_strong_file_leaves_suspicious", facts(m=1), [6], {}, "suspicious", ["hits>=1"]),
    ("files_below_the_strong_minimum_change_nothing", facts(), [4, 4, 4], {}, "unknown", ["no_hits"]),
    ("pivot_is_skipped_above_pivot_max_hits", facts(s=2), None, {}, "suspicious", ["hits>=1"]),
    ("pivot_is_skipped_when_disabled", facts(), None, {"pivot_enabled": False}, "unknown", ["no_hits"]),
    ("failed_pivot_leaves_the_verdict", facts(), None, {}, "unknown", ["no_hits", "pivot_unavailable"]),
    ("pivot_never_touches_malicious", facts(m=3), [9, 9, 9], {}, "malicious", ["mal>=3"]),
    ("pivot_thresholds_are_configurable", facts(), [2, 2], {"pivot_strong_file_min": 2,
                                                            "pivot_upgrade_2": 2},
     "suspicious", ["no_hits", "pivot_strong_files>=2"]),
]


@pytest.mark.parametrize("f,pivot,config,expected,reasons", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_verdict_table(f, pivot, config, expected, reasons):
    assert verdict(f, pivot, **config) == (expected, reasons)


def test_pivot_is_requested_only_for_borderline_verdicts_with_few_hits():
    c = cfg()
    assert verdict_mod.needs_pivot_request({"found": True, "facts": facts(), "fetched_at": NOW}, c, NOW)
    assert verdict_mod.needs_pivot_request({"found": True, "facts": facts(m=1), "fetched_at": NOW}, c, NOW)
    assert not verdict_mod.needs_pivot_request({"found": True, "facts": facts(m=3), "fetched_at": NOW}, c, NOW)
    assert not verdict_mod.needs_pivot_request({"found": True, "facts": facts(s=2), "fetched_at": NOW}, c, NOW)
    assert not verdict_mod.needs_pivot_request({"found": True, "facts": facts(), "pivot": [], "fetched_at": NOW},
                                        c, NOW)
    assert not verdict_mod.needs_pivot_request({"found": True, "facts": facts(), "pivot_failed": True,
                                         "fetched_at": NOW}, c, NOW)
    assert not verdict_mod.needs_pivot_request({"found": False, "facts": None, "fetched_at": NOW}, c, NOW)


def seed_source(ip):
    return {"alert_id": "1753101678.8211", "rule": "100003", "ip": ip}


def test_seed_example_malicious_64_62_197_132():
    """docs/verdict.md, worked example 1, field by field (dates relative to now)."""
    f = facts(m=11, s=2, rep=-3, age=0.7, as_owner="HURRICANE", network="64.62.197.0/24")
    entry = {"found": True, "facts": f, "fetched_at": NOW}
    e = wazuh.build_enrichment(entry, cfg(), NOW, seed_source("64.62.197.132"), cached=False)
    assert e == {
        "found": 1, "verdict": "malicious",
        "source": {"alert_id": "1753101678.8211", "rule": "100003", "ip": "64.62.197.132"},
        "counts": {"malicious": 11, "suspicious": 2}, "engine_counts": {"malicious": 11, "suspicious": 2},
        "weighted_malicious": 12.0, "reputation": -3, "tags": [], "age_days": 0.7,
        "last_analysis_date": codec.iso_utc(NOW - 0.7 * DAY), "country": "US", "as_owner": "HURRICANE",
        "network": "64.62.197.0/24", "permalink": "https://www.virustotal.com/gui/ip-address/64.62.197.132",
        "pivot": {"used": False},
        "verdict_line": 'vt_ip verdict=malicious ip=64.62.197.132 mal=11 sus=2 wmal=12.0 rep=-3 '
                        'age_days=0.7 tags=- as_owner="HURRICANE"',
        "reasons": ["mal>=3"], "cached": False,
    }


def test_seed_example_unknown_108_157_98_17_uses_the_pivot():
    """docs/verdict.md, worked example 2: no hits, 138.7 days old, pivot used with 1 file, 0 strong."""
    f = facts(age=138.7, as_owner="AMAZON-02", network="108.157.96.0/22")
    entry = {"found": True, "facts": f, "pivot": [0], "fetched_at": NOW}
    e = wazuh.build_enrichment(entry, cfg(), NOW, seed_source("108.157.98.17"), cached=False)
    assert (e["verdict"], e["age_days"], e["weighted_malicious"]) == ("unknown", 138.7, 0.0)
    assert e["pivot"] == {"used": True, "total_files": 1, "strong_mal_files": 0}
    assert e["verdict_line"] == ('vt_ip verdict=unknown ip=108.157.98.17 mal=0 sus=0 wmal=0.0 rep=0 '
                                 'age_days=138.7 tags=- as_owner="AMAZON-02"')


def test_not_found_ip_is_unknown_with_found_0():
    e = wazuh.build_enrichment({"found": False, "facts": None, "fetched_at": NOW}, cfg(), NOW,
                              seed_source("8.8.4.4"), cached=True)
    assert (e["found"], e["verdict"], e["source"]["ip"], e["cached"]) == (0, "unknown", "8.8.4.4", True)


def test_verdict_line_values_carry_no_quotes_or_control_characters():
    f = facts(m=3, tags=['a"b', "c d", "e\nf"], as_owner='Evil"\n\\Corp\x07')
    e = wazuh.build_enrichment({"found": True, "facts": f, "fetched_at": NOW}, cfg(), NOW,
                              seed_source("1.1.1.1"), cached=False)
    line = e["verdict_line"]
    assert line.endswith('tags=ab,c_d,ef as_owner="EvilCorp"')
    assert not any(ch < " " for ch in line)


def test_weighted_score_is_rounded_to_two_decimals():
    f = facts(m=1, engines={"x": "malicious"})
    e = wazuh.build_enrichment({"found": True, "facts": f, "fetched_at": NOW},
                              cfg(engine_weights={"x": 1.23456}), NOW, seed_source("1.1.1.1"), cached=False)
    assert e["weighted_malicious"] == 1.23


def test_age_is_one_decimal_or_null():
    assert verdict_mod.age_in_days(None, NOW) is None
    assert verdict_mod.age_in_days(NOW + 5 * DAY, NOW) == 0.0   # a clock ahead of ours is not negative age
    e = wazuh.build_enrichment({"found": True, "facts": facts(age=None), "fetched_at": NOW}, cfg(), NOW,
                              seed_source("1.1.1.1"), cached=False)
    assert (e["age_days"], e["last_analysis_date"]) == (None, None)
    assert "age_days=-" in e["verdict_line"]


def test_cache_freshness_follows_the_ttl_of_the_verdict():
    c = cfg(cache_ttl_hours={"malicious": 24, "suspicious": 12, "unknown": 1, "not_found": 2})
    now = time.time()
    mal = {"found": True, "facts": facts(m=5), "fetched_at": now - 20 * 3600}
    unk = {"found": True, "facts": facts(), "pivot": [], "fetched_at": now - 2 * 3600}
    nf = {"found": False, "facts": None, "fetched_at": now - 1.5 * 3600}
    assert verdict_mod.is_fresh(mal, c, now)
    assert not verdict_mod.is_fresh(unk, c, now)
    assert verdict_mod.is_fresh(nf, c, now)
