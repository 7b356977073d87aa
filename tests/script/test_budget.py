"""Frugal with a 4-requests-a-minute key: quota outages, the rate budget, deferral and --drain,
and the analyst commands --check and --status.

Time passing is simulated by moving the stored deadlines (quota_until, request timestamps)
into the past, never by sleeping.
"""
from __future__ import annotations

import subprocess
import time

import pytest
from harness import API_KEY, sample_alert, script_env


@pytest.fixture(autouse=True)
def key_in_config(home, vt):
    """As deployed: --drain (cron) finds the key in the config file, not in argv."""
    home.config({"api_url": vt.url, "api_key": API_KEY})


def configure(home, **values) -> None:
    home.config({"api_url": home.vt.url, "api_key": API_KEY, **values})


def alert(ip: str, alert_id: str) -> dict:
    a = sample_alert(ip)
    a["id"] = alert_id
    return a


def quota_over(home) -> None:
    """The minute the quota block lasts has passed."""
    home.sql("UPDATE state SET value = ? WHERE key = 'quota_until'", (str(time.time() - 1),))


@pytest.mark.parametrize("code", ["QuotaExceededError", "TooManyRequestsError"])
def test_quota_outage_sends_one_error_event_and_defers_every_alert(home, vt, code):
    vt.fail(status=429, code=code, message="Quota exceeded")
    first = home.run(alert("64.62.197.132", "1.1"))
    assert first.event()["virustotal_ip"]["error"] == code
    later = [home.run(alert(ip, f"1.{i}")) for i, ip in enumerate(["64.62.197.132", "108.157.98.17"], 2)]
    assert [r.messages for r in later] == [[], []]
    assert [r.rc for r in later] == [0, 0]
    assert len(vt.requests) == 1                 # no request while the quota is out
    assert len(home.waiting()) == 3
    assert "VirusTotal quota exceeded; no requests until" in later[0].log


def test_quota_outage_is_remembered_and_ends_when_vt_answers_again(home, vt):
    vt.fail(status=429, code="QuotaExceededError")
    home.run(alert("64.62.197.132", "1.1"))
    quota_over(home)
    vt.behaviour.clear()
    r = home.run(alert("108.157.98.17", "1.2"))
    # the lookup worker also sends the alert the outage deferred, oldest first
    assert [(e["source"]["alert_id"], e["verdict"], e.get("deferred")) for e in r.enrichments()] == [
        ("1.1", "malicious", True), ("1.2", "unknown", None)]
    assert "quota outage over" in r.log
    vt.fail(status=429, code="QuotaExceededError")
    r = home.run(alert("93.184.216.34", "1.3"))
    assert r.event()["virustotal_ip"]["error"] == "QuotaExceededError"   # a new outage, a new event


def test_quota_exceeded_again_after_a_minute_blocks_until_midnight_utc(home, vt):
    vt.fail(status=429, code="QuotaExceededError")
    home.run(alert("64.62.197.132", "1.1"))
    [(until,)] = home.sql("SELECT value FROM state WHERE key = 'quota_until'")
    assert 55 < float(until) - time.time() <= 60
    quota_over(home)
    r = home.run(alert("64.62.197.132", "1.2"))
    assert r.messages == []                       # still the same outage: no second event
    [(until,)] = home.sql("SELECT value FROM state WHERE key = 'quota_until'")
    assert float(until) == (int(time.time()) // 86400 + 1) * 86400
    assert len(vt.requests) == 2


def test_drain_sends_deferred_enrichments_after_the_outage(home, vt):
    vt.fail(status=429, code="QuotaExceededError")
    for i, ip in enumerate(["64.62.197.132", "64.62.197.132", "108.157.98.17"]):
        home.run(alert(ip, f"9.{i}"))
    vt.behaviour.clear()
    assert home.cli("--drain").messages == []    # the quota block still holds
    quota_over(home)
    r = home.cli("--drain")
    assert r.rc == 0
    events = [msg["virustotal_ip"] for _, msg in r.events()]
    assert [(e["source"]["alert_id"], e["verdict"], e["deferred"]) for e in events] == [
        ("9.0", "malicious", True), ("9.1", "malicious", True), ("9.2", "unknown", True)]
    assert len(home.waiting()) == 0
    assert "--drain: sent 3, 0 still pending" in r.log
    assert [p for p in vt.paths()[1:]] == ["/api/v3/ip_addresses/64.62.197.132",
                                           "/api/v3/ip_addresses/108.157.98.17",
                                           "/api/v3/ip_addresses/108.157.98.17/communicating_files"]


def test_rate_limit_defers_without_a_request_or_an_event(home, vt):
    configure(home, rate_limit_per_minute=1)
    assert home.run(alert("64.62.197.132", "2.1")).event()["virustotal_ip"]["verdict"] == "malicious"
    r = home.run(alert("93.184.216.34", "2.2"))
    assert (r.rc, r.messages, len(vt.requests)) == (0, [], 1)
    assert "rate_limit_per_minute=1 reached" in r.log
    assert home.run(alert("64.62.197.132", "2.3")).event()["virustotal_ip"]["cached"] is True
    home.sql("UPDATE requests SET ts = ts - 61")
    r = home.cli("--drain")
    e = r.event()["virustotal_ip"]
    assert (e["source"]["ip"], e["source"]["alert_id"], e["found"], e["deferred"]) == \
        ("93.184.216.34", "2.2", 0, True)


def test_a_later_alert_for_the_same_ip_also_sends_its_deferred_ones(home, vt):
    configure(home, rate_limit_per_minute=1)
    home.run(alert("93.184.216.34", "3.1"))
    home.run(alert("64.62.197.132", "3.2"))      # deferred: budget spent
    home.sql("UPDATE requests SET ts = ts - 61")
    r = home.run(alert("64.62.197.132", "3.3"))
    ids = [(e["source"]["alert_id"], e.get("deferred")) for e in r.enrichments()]
    assert ids == [("3.2", True), ("3.3", None)]       # the lookup worker sends them oldest first


def test_pivot_the_budget_does_not_allow_is_completed_later_with_one_request(home, vt):
    configure(home, rate_limit_per_minute=1)
    r = home.run(alert("108.157.98.17", "4.1"))
    assert r.messages == []                       # the IP object came, the pivot would exceed 1/min
    assert vt.paths() == ["/api/v3/ip_addresses/108.157.98.17"]
    home.sql("UPDATE requests SET ts = ts - 61")
    e = home.cli("--drain").event()["virustotal_ip"]
    assert (e["verdict"], e["pivot"]["used"], e["deferred"]) == ("unknown", True, True)
    assert vt.paths()[1:] == ["/api/v3/ip_addresses/108.157.98.17/communicating_files"]


def test_daily_quota_defers_until_midnight_utc_then_drain_sends_it(home, vt):
    configure(home, daily_quota=2)
    home.run(alert("64.62.197.132", "7.1"))
    home.run(alert("93.184.216.34", "7.2"))
    r = home.run(alert("8.8.4.4", "7.3"))
    assert (r.rc, r.messages, len(vt.requests)) == (0, [], 2)            # deferred, not dropped
    assert "daily_quota=2 reached; no requests until" in r.log and "T00:00:00+00:00" in r.log
    assert home.cli("--drain").messages == [] and len(vt.requests) == 2     # still today
    home.sql("UPDATE requests SET ts = ts - 86400")                         # midnight UTC has passed
    e = home.cli("--drain").event()["virustotal_ip"]
    assert (e["source"]["ip"], e["source"]["alert_id"], e["deferred"]) == ("8.8.4.4", "7.3", True)


ROTATING = [f"2a0b:4140:1234:5678::{n:x}" for n in range(1, 9)]     # eight addresses of one /64


@pytest.mark.parametrize("mode", ["worker", "inline"])
def test_misses_within_one_ipv6_64_make_at_most_its_daily_share_of_requests_and_other_addresses_go_on(
        home, vt, mode):
    configure(home, ipv6_prefix_requests_per_day=3, lookup_mode=mode)
    rotating = [home.run(alert(ip, f"10.{n}")) for n, ip in enumerate(ROTATING)]
    other = home.run(alert("2a0b:4140:1234:5679::1", "10.8"))          # the next /64
    ipv4 = home.run(alert("64.62.197.132", "10.9"))                     # counts against no /64
    assert vt.paths() == [f"/api/v3/ip_addresses/{ip}" for ip in
                          [*ROTATING[:3], "2a0b:4140:1234:5679::1", "64.62.197.132"]]
    # each address has its own verdict; the rest of the /64 waits, deferred, for its next share
    assert [r.event()["virustotal_ip"]["source"]["ip"] for r in [*rotating[:3], other, ipv4]] == \
        [*ROTATING[:3], "2a0b:4140:1234:5679::1", "64.62.197.132"]
    assert [r.messages for r in rotating[3:]] == [[]] * 5
    assert ("ipv6_prefix_requests_per_day=3 reached for 2a0b:4140:1234:5678::/64; its addresses wait until"
            in rotating[3].log)
    assert [(ip, deferred) for ip, deferred, _ in home.waiting()] == [(ip, 1) for ip in ROTATING[3:]]
    assert home.cli("--drain").messages == [] and len(vt.requests) == 5     # still today
    home.sql("UPDATE requests SET ts = ts - 86400")                         # midnight UTC has passed
    home.sql("UPDATE pending SET not_before = not_before - 86400")
    sent = home.cli("--drain").enrichments()
    assert [(e["source"]["ip"], e["deferred"]) for e in sent] == [(ip, True) for ip in ROTATING[3:6]]
    assert [ip for ip, _, _ in home.waiting()] == ROTATING[6:] and len(vt.requests) == 8


def test_parallel_runs_and_workers_for_one_ipv6_64_never_overrun_its_share(home, vt):
    """The share is counted in the state, checked and counted under lookup.lock as the rest of
    the budget is: twelve runs at once, four workers, three requests."""
    configure(home, ipv6_prefix_requests_per_day=3, lookup_parallel=4)
    vt.fail(delay=0.2)
    ips = [f"2a0b:4140:1234:5678::{n:x}" for n in range(1, 13)]
    procs = [subprocess.Popen(home.integratord_argv(home.write_alert(alert(ip, f"11.{n}"))), cwd=home.root,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n, ip in enumerate(ips)]
    assert home.wait_runs(procs) == [0] * len(procs)
    home.wait_workers()
    assert len(vt.requests) == 3
    assert len(home.drain_queue()) == 3 and len(home.waiting()) == 9


def test_status_shows_this_managers_share_of_the_keys_budget(home, vt):
    configure(home, rate_limit_per_minute=1, daily_quota=166, budget_managers=3)
    home.run(alert("64.62.197.132", "8.1"))
    out = home.cli("--status").stdout
    assert "VT requests today: 1 of 166 allowed (last minute: 1 of 1 allowed)" in out
    assert "Budget:            1 requests a minute, 166 a day: this manager's share of a key 3 managers share" in out


def test_drain_does_not_run_while_every_lookup_worker_slot_is_busy(home, vt):
    import fcntl
    import os
    home.run()
    fds = [os.open(home.root / f"var/virustotal_ip/worker-{slot}.lock", os.O_RDWR | os.O_CREAT) for slot in (0, 1)]
    try:
        for fd in fds:
            fcntl.flock(fd, fcntl.LOCK_EX)
        r = home.cli("--drain", wait=False)
        assert r.rc == 0 and "every lookup worker slot is busy" in r.log
    finally:
        for fd in fds:
            os.close(fd)


def test_check_prints_the_verdict_with_reasons_and_sends_nothing(home, vt):
    home.config({"api_url": vt.url})
    r = home.cli("--check", "64.62.197.132", "--api-key", API_KEY)
    assert r.rc == 0 and r.messages == []
    assert "Verdict:     malicious" in r.stdout and "Reasons:     mal>=3" in r.stdout
    assert "Engines:     malicious 11, suspicious 2 (weighted 12.00)" in r.stdout
    assert "Source:      VirusTotal" in r.stdout
    r = home.cli("--check", "64.62.197.132")     # from the cache now: no key needed
    assert "Source:      cache" in r.stdout and len(vt.requests) == 1


def test_check_takes_the_key_from_the_environment(home, vt):
    home.config({"api_url": vt.url})
    r = home.cli("--check", "108.157.98.17", env=script_env(VT_API_KEY=API_KEY))
    assert r.rc == 0 and "Pivot:       0 of 1 communicating files strongly malicious" in r.stdout


@pytest.mark.parametrize("arg,rc,text", [("1.2.3.4/../x", 2, "is not an IP address"),
                                         ("10.0.0.1", 0, "not a global address"),
                                         ("64:ff9b::7f00:1", 0, "not a global address (it carries 127.0.0.1)")])
def test_check_refuses_what_the_integration_would_not_look_up(home, vt, arg, rc, text):
    r = home.cli("--check", arg)
    assert r.rc == rc and text in (r.stdout + r.stderr) and vt.requests == []


def test_status_reports_cache_requests_quota_and_pending(home, vt):
    home.run(alert("64.62.197.132", "5.1"))
    home.run(alert("64.62.197.132", "5.2"))
    vt.fail(status=429, code="QuotaExceededError")
    home.run(alert("108.157.98.17", "5.3"))
    home.run(alert("93.184.216.34", "5.4"))
    r = home.cli("--status")
    assert r.rc == 0 and r.messages == []
    out = r.stdout
    assert "Cache:             1 entries (1 fresh)" in out
    assert "Cache hit ratio:   25.0% (1 hits, 3 misses in 30 days; today 1/3)" in out
    assert "VT requests today: 2 (last minute: 2, no local rate limit)" in out
    assert "Budget:            no per-minute limit, no daily cap\n" in out
    assert "Quota:             exceeded, no requests until" in out
    assert "Pending lookups:   2 (oldest queued" in out


def test_drain_forgets_hit_and_miss_counts_older_than_30_days(home, vt):
    home.run(alert("64.62.197.132", "6.1"))
    home.run(alert("64.62.197.132", "6.2"))
    state = home.db_path.parent
    (state / "hits-2000-01-01").write_bytes(b"." * 5)
    (state / "misses-2000-01-01").write_bytes(b"." * 3)
    home.sql("INSERT INTO stats(day, name, n) VALUES ('2000-01-01', 'miss', 7)")   # as 1.2 counted
    # old days never count: today's one hit and one miss only, not 6 hits and 11 misses
    assert "50.0% (1 hits, 1 misses in 30 days; today 1/1)" in home.cli("--status").stdout
    assert home.cli("--drain").rc == 0
    assert not (state / "hits-2000-01-01").exists() and not (state / "misses-2000-01-01").exists()
    assert home.sql("SELECT day FROM stats WHERE day < '2001'") == []
    assert "50.0% (1 hits, 1 misses in 30 days; today 1/1)" in home.cli("--status").stdout


def test_misses_are_tallied_in_a_file_and_those_an_older_version_counted_in_sqlite_still_count(home, vt):
    home.run(alert("64.62.197.132", "7.1"))
    home.run(alert("64.62.197.132", "7.2"))
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert (home.db_path.parent / f"misses-{today}").read_bytes() == b"."     # not a SQLite write
    home.sql("INSERT INTO stats(day, name, n) VALUES (?, 'miss', 2)", (today,))   # as 1.2 counted
    assert "25.0% (1 hits, 3 misses in 30 days; today 1/3)" in home.cli("--status").stdout
