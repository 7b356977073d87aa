"""Attacker-controlled and broken input: no traceback, no stray request, no event, one log line.

`srcip` comes from logs an attacker writes; alert files, options and the disk can be broken.
"""
from __future__ import annotations

import contextlib
import ipaddress
import sqlite3

import pytest
from harness import sample_alert, script_package

SCHEMA = script_package("state")[0].SCHEMA_VERSION

HOSTILE_IPS = [
    "999.1.1.1", "1.2.3.4/../../files", "1.2.3.4?x=1", "1.2.3.4#x", "fe80::1%eth0",
    "1.2.3.4%25eth0", "../../../etc/passwd", "1.2.3.4/32", "1.2.3", "01.2.3.4", "1.2.3.4 5.6.7.8",
    "http://1.2.3.4/", "", " ", "\u0661.\u0662.\u0663.\u0664", "1.2.3.4\x00", "a" * 5000,
]
NON_GLOBAL_IPS = [
    "10.1.2.3", "172.16.0.9", "192.168.1.1", "127.0.0.1", "169.254.1.1", "100.64.0.1",
    "224.0.0.251", "239.255.255.250", "0.0.0.0", "255.255.255.255", "240.0.0.1", "192.0.2.7",
    "198.51.100.7", "203.0.113.7", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12::1",
    "ff02::1", "2001:db8::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:c000:0204::1",
]


@pytest.mark.parametrize("raw", HOSTILE_IPS, ids=range(len(HOSTILE_IPS)))
def test_invalid_ip_in_srcip_makes_no_request_and_no_event(home, vt, raw):
    r = home.run(sample_alert(data={"srcip": raw}))
    assert (r.rc, r.stderr, r.messages, vt.requests) == (0, "", [], [])
    assert r.log.count("\n") == 1 and "no valid IP" in r.log


@pytest.mark.parametrize("ip", NON_GLOBAL_IPS)
def test_non_global_address_is_never_looked_up(home, vt, ip):
    r = home.run(sample_alert(ip))
    assert (r.rc, r.messages, vt.requests) == (0, [], [])
    assert "is not a global address; not looked up" in r.log


def test_ipv4_mapped_ipv6_is_looked_up_as_its_ipv4_address(home, vt):
    e = home.run(sample_alert("::ffff:64.62.197.132")).event()["virustotal_ip"]
    assert e["source"]["ip"] == "64.62.197.132"
    assert vt.paths() == ["/api/v3/ip_addresses/64.62.197.132"]


@pytest.mark.parametrize("ip,why", [
    ("64:ff9b::7f00:1", "not a global address (it carries 127.0.0.1)"),           # NAT64 of loopback
    ("64:ff9b::a00:1", "not a global address (it carries 10.0.0.1)"),
    ("::ffff:0:192.168.1.1", "not a global address (it carries 192.168.1.1)"),    # IPv4-translated
    ("::169.254.169.254", "not a global address (it carries 169.254.169.254)"),   # IPv4-compatible
    ("64:ff9b::64.62.197.132", "allowlisted (it carries 64.62.197.132)"),
])
def test_an_ipv6_address_carrying_a_private_or_allowlisted_ipv4_address_is_never_looked_up(home, vt, ip, why):
    home.config({"api_url": vt.url, "allowlist": ["64.62.197.0/24"]})
    r = home.run(sample_alert(ip))
    assert (r.rc, r.messages, vt.requests) == (0, [], [])
    assert f"data.srcip {ipaddress.ip_address(ip)} is {why}; not looked up" in r.log   # its canonical form


@pytest.mark.parametrize("ip", ["64:ff9b::64.62.197.132", "::ffff:0:64.62.197.132", "::64.62.197.132"])
def test_an_ipv6_address_carrying_a_global_ipv4_address_is_looked_up_as_that_ipv4_address(home, vt, ip):
    e = home.run(sample_alert(ip)).event()["virustotal_ip"]
    assert (e["source"]["ip"], e["verdict"]) == ("64.62.197.132", "malicious")
    assert vt.paths() == ["/api/v3/ip_addresses/64.62.197.132"]


def test_ipv6_is_looked_up_in_canonical_form(home, vt):
    r = home.run(sample_alert("2A00:1450:4001:0811:0000:0000:0000:200E"))
    assert vt.paths() == ["/api/v3/ip_addresses/2a00:1450:4001:811::200e"]
    assert r.event()["virustotal_ip"]["found"] == 0


def test_skip_non_global_false_looks_up_private_addresses(home, vt):
    home.run(sample_alert("10.1.2.3"), options={"skip_non_global": False})
    assert vt.paths() == ["/api/v3/ip_addresses/10.1.2.3"]


def test_allowlisted_address_is_never_looked_up(home, vt):
    home.config({"api_url": vt.url, "allowlist": ["64.62.197.0/24", "2a00::/16"]})
    r = home.run()
    assert (r.rc, r.messages, vt.requests) == (0, [], [])
    assert "is allowlisted; not looked up" in r.log


def test_our_own_enrichment_fed_back_is_ignored(home, vt):
    """The loop guard: the enrichment alert comes back through alerts.json."""
    enrichment = home.run().event()
    requests_before = len(vt.requests)
    fed_back = sample_alert(location="virustotal_ip", data=enrichment,
                            rule={"id": "199901", "level": 12, "groups": ["local", "virustotal", "vt_ip"]})
    fed_back["data"]["srcip"] = "64.62.197.132"
    r = home.run(fed_back)
    assert (r.rc, r.messages, len(vt.requests)) == (0, [], requests_before)
    assert "is our own enrichment (loop guard); nothing sent" in r.log
    # An agent's enrichment comes back with the same location: analysisd writes the part after
    # "[<id>] (<name>) <ip>->" into the alert (tests/images: the agent-routed location test).
    agent_routed = sample_alert(location="virustotal_ip", agent={"id": "001", "name": "web"})
    assert home.run(agent_routed).messages == []


@pytest.mark.parametrize("location", ["/var/log/app.json", "/tmp/x->virustotal_ip", "virustotal_ipx",
                                      "(web) any->virustotal_ip", "VirusTotal_IP"])
def test_a_forged_line_shaped_like_our_enrichment_is_an_ordinary_alert(home, vt, location):
    """A log line holding our event's fields decides nothing: only the location analysisd gives our
    script's events (`virustotal_ip`) makes an alert one of ours, so this one is looked up."""
    forged = sample_alert(location=location, rule={"id": "100777", "level": 10, "groups": ["local", "vt_ip"]})
    forged["data"].update({"integration": "virustotal_ip", "virustotal_ip": {"verdict": "malicious"}})
    r = home.run(forged)
    assert r.rc == 0 and "loop guard" not in r.log
    assert vt.paths() == ["/api/v3/ip_addresses/64.62.197.132"]
    assert r.event()["virustotal_ip"]["source"]["alert_id"] == forged["id"]


@pytest.mark.parametrize("content,why", [
    (b"", "is empty"),
    (b"\n  \n", "is empty"),
    (b"timestamp='2025' rule.id='100003'", "is not JSON (the <integration> block needs <alert_format>json"),
    (b"[1, 2, 3]", "holds JSON that is not an object"),
    (b'"a string"', "holds JSON that is not an object"),
    (b"[" * 100000 + b"]" * 100000, "is not JSON"),
    (b'{"data": {"srcip": "64.62.197.132"', "is not JSON"),
    (b"\xff\xfe\x00\x00garbage", "is not JSON"),
], ids=["empty", "blank", "legacy-format", "array", "string", "deep-nesting", "truncated", "binary"])
def test_unusable_alert_file_exits_2_with_one_clear_line(home, vt, content, why):
    r = home.run(content)
    assert (r.rc, r.stdout, r.stderr, r.messages, vt.requests) == (2, "", "", [], [])
    assert r.log.count("\n") == 1 and why in r.log


def test_missing_alert_file_exits_2(home):
    r = home.run_argv(home.integratord_argv(home.root / "tmp" / "gone.alert"))
    assert (r.rc, r.stderr) == (2, "")
    assert "cannot read alert file" in r.log


def test_no_arguments_exit_2_with_usage(home):
    r = home.run_argv([str(home.root / "integrations/custom-virustotal_ip")])
    assert (r.rc, r.stderr) == (2, "")
    assert "usage: custom-virustotal_ip ALERT_FILE" in r.log


@pytest.mark.parametrize("alert", [
    {"data": "srcip=1.2.3.4"}, {"data": {"srcip": ["64.62.197.132"]}}, {"data": {"srcip": 1234}},
    {"data": None}, {}, {"rule": "x", "agent": [], "id": {"a": 1}, "data": {"srcip": "64.62.197.132"},
                         "full_log": 42, "location": 7},
], ids=["data-string", "ip-list", "ip-number", "data-null", "empty", "wrong-types"])
def test_alerts_of_any_shape_never_crash(home, vt, alert):
    r = home.run(alert)
    assert (r.rc, r.stderr) == (0, "")
    assert "Traceback" not in r.log and "internal error" not in r.log


def test_wrong_types_in_the_alert_do_not_leak_into_the_event(home):
    alert = {"rule": "x", "agent": [], "id": {"a": 1}, "data": {"srcip": "64.62.197.132"},
             "full_log": 42, "location": 7}
    msg = home.run(alert).event()
    assert msg["virustotal_ip"]["source"] == {"alert_id": "", "rule": "", "ip": "64.62.197.132"}
    assert msg["original_full_log"] == ""


def test_hostile_agent_name_cannot_break_out_of_the_location(home):
    alert = sample_alert(agent={"id": "001", "name": "x\n1:virustotal_ip:{\"fake\": 1}", "ip": "any"})
    [(location, msg)] = home.run(alert).events()
    assert location == "[001] (x1:virustotal_ip:{\"fake\": 1}) any->virustotal_ip"
    assert msg["virustotal_ip"]["verdict"] == "malicious"


def test_log_never_contains_the_api_key_or_raw_attacker_newlines(home, vt):
    home.run(sample_alert(data={"srcip": "1.2.3.4\nFAKE LOG LINE"}))
    vt.fail(status=401, code="WrongCredentialsError", message="Wrong API key")
    home.run()
    log = home.log_path.read_text()
    assert "test-key-" not in log
    assert not any(line.startswith("FAKE") for line in log.splitlines())


def test_unwritable_log_is_survived(home):
    home.log_path.mkdir()          # root may write anywhere: a directory in its place cannot be opened
    r = home.run()                 # a miss: the lookup worker (stderr /dev/null) writes the lines
    assert r.rc == 0
    assert r.event()["virustotal_ip"]["verdict"] == "malicious"
    r = home.run()                 # a hit: the run itself writes its line, and says it cannot
    assert r.rc == 0 and r.event()["virustotal_ip"]["cached"] is True
    assert "cannot write" in r.stderr


def test_an_unusable_state_makes_no_request_and_the_alert_gets_an_error_event_naming_why(home, vt):
    """No state, no budget: a request that cannot be counted is not made (it ran uncached, with
    no budget at all, before), and the administrator sees why in the alert's error event."""
    (home.root / "var" / "virustotal_ip").write_text("not a directory")
    r = home.run()
    assert (r.rc, vt.requests) == (3, [])
    e = r.event()["virustotal_ip"]
    assert e["error"] == "Undelivered" and "var/virustotal_ip is unusable" in e["description"]
    assert e["source"]["alert_id"] == "1753101678.8211" and "not looked up" in r.log


def test_corrupt_cache_is_recreated(home, vt):
    home.run()
    home.db_path.write_bytes(b"this is not an sqlite database" * 100)
    r = home.run()
    assert r.rc == 0 and r.event()["virustotal_ip"]["cached"] is False
    assert "is corrupt" in r.log and "recreating it" in r.log
    assert home.run().event()["virustotal_ip"]["cached"] is True


def test_cache_made_by_schema_1_keeps_its_entries_and_leaves_wal_once_nobody_has_it_open(home, vt):
    """Version 1 kept the cache in WAL mode; a hit there created and deleted -wal/-shm files."""
    home.run()
    home.sql("PRAGMA journal_mode=WAL")
    home.sql("PRAGMA user_version=1")
    with contextlib.closing(sqlite3.connect(home.db_path)) as other:   # e.g. a --drain running
        other.execute("SELECT COUNT(*) FROM cache").fetchall()
        r = home.run()
        assert r.rc == 0 and r.event()["virustotal_ip"]["cached"] is True and r.log.count("\n") == 1
        assert home.sql("PRAGMA journal_mode") == [("wal",)]
    r = home.run()
    assert r.rc == 0 and r.event()["virustotal_ip"]["cached"] is True and len(vt.requests) == 1
    assert home.sql("PRAGMA journal_mode") == [("delete",)] and home.sql("PRAGMA user_version") == [(SCHEMA,)]
    assert not home.db_path.with_name("cache.db-wal").exists()


def test_cache_made_by_schema_2_keeps_its_deferred_alerts_and_the_worker_sends_them(home, vt):
    """Version 2's pending table had no slot and deferred columns; its alerts were deferred."""
    home.config({"api_url": vt.url, "rate_limit_per_minute": 1})
    home.run(sample_alert("93.184.216.34"))
    home.run(sample_alert("64.62.197.132", id="2.1"))            # deferred: budget spent
    with contextlib.closing(sqlite3.connect(home.db_path)) as db, db:
        db.executescript("""
            CREATE TABLE old AS SELECT id, ip, source, queued_at, alert_key FROM pending;
            DROP TABLE pending;
            CREATE TABLE pending(id INTEGER PRIMARY KEY, ip TEXT NOT NULL, source TEXT NOT NULL,
                                 queued_at REAL NOT NULL, alert_key TEXT UNIQUE);
            INSERT INTO pending SELECT * FROM old;
            DROP TABLE old;
            PRAGMA user_version = 2;""")
    home.sql("UPDATE requests SET ts = ts - 61")
    r = home.run(sample_alert("64.62.197.132", id="2.2"))
    assert [(e["source"]["alert_id"], e.get("deferred")) for e in r.enrichments()] == [("2.1", True), ("2.2", None)]
    assert home.sql("PRAGMA user_version") == [(SCHEMA,)] and home.sql("SELECT COUNT(*) FROM pending") == [(0,)]


def test_cache_made_by_schema_4_keeps_its_request_log_and_deferred_alerts_and_counts_ipv6_64s_from_then_on(home, vt):
    """Version 4's requests had no prefix column, its pending table no not_before: the requests
    it logged still count against the daily quota and against no /64."""
    home.config({"api_url": vt.url, "rate_limit_per_minute": 1, "ipv6_prefix_requests_per_day": 0})
    home.run(sample_alert("2a0b:4140:1234:5678::1", id="4.1"))
    home.run(sample_alert("2a0b:4140:1234:5678::2", id="4.2"))            # deferred: the minute's budget
    with contextlib.closing(sqlite3.connect(home.db_path)) as db, db:
        db.executescript("""
            DROP INDEX requests_prefix;
            CREATE TABLE old_requests AS SELECT ts FROM requests;
            DROP TABLE requests;
            ALTER TABLE old_requests RENAME TO requests;
            CREATE TABLE old AS SELECT id, ip, source, queued_at, alert_key, slot, deferred FROM pending;
            DROP TABLE pending;
            CREATE TABLE pending(id INTEGER PRIMARY KEY, ip TEXT NOT NULL, source TEXT NOT NULL,
                                 queued_at REAL NOT NULL, alert_key TEXT UNIQUE,
                                 slot INTEGER, deferred INTEGER NOT NULL DEFAULT 1);
            INSERT INTO pending SELECT * FROM old;
            DROP TABLE old;
            PRAGMA user_version = 4;""")
    home.config({"api_url": vt.url, "rate_limit_per_minute": 3, "daily_quota": 3, "ipv6_prefix_requests_per_day": 1})
    home.sql("UPDATE requests SET ts = ts - 61")
    r = home.run(sample_alert("2a0b:4140:1234:5678::3", id="4.3"))
    # 4.1's request counts against no /64: 4.2 is looked up, and spends the /64's share
    assert [(e["source"]["alert_id"], e.get("deferred")) for e in r.enrichments()] == [("4.2", True)]
    assert "ipv6_prefix_requests_per_day=1 reached for 2a0b:4140:1234:5678::/64" in r.log
    assert home.sql("PRAGMA user_version") == [(SCHEMA,)]
    assert home.sql("SELECT prefix FROM requests ORDER BY ts") == [(None,), ("2a0b:4140:1234:5678::/64",)]
    assert [(ip, deferred) for ip, deferred, _ in home.waiting()] == [("2a0b:4140:1234:5678::3", 1)]
    assert [e["source"]["alert_id"] for e in home.run(sample_alert("64.62.197.132", id="4.4")).enrichments()] == \
        ["4.4"]                                                              # the day's third request
    r = home.run(sample_alert("108.157.98.17", id="4.5"))
    assert r.messages == [] and "daily_quota=3 reached" in r.log and len(vt.requests) == 3


def test_options_file_with_xml_leftovers_is_ignored_not_fatal(home):
    alert = home.write_alert(sample_alert())
    opt = alert.with_suffix(".options")
    opt.write_text('{"mal_strong_min": 2 &amp; }')
    argv = home.integratord_argv(alert)
    argv[5] = str(opt)
    r = home.run_argv(argv)
    assert r.rc == 0 and "is not valid JSON; ignored" in r.log
    assert r.event()["virustotal_ip"]["verdict"] == "malicious"
