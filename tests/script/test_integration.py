"""The script as wazuh-integratord runs it: argv shapes, output, location, size, config.

Each test runs the real wrapper and script in a throwaway Wazuh home, against the local VT v3
server (tests/vt_server.py) and a real AF_UNIX datagram socket (docs/wazuh-interfaces.md section 3).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from harness import API_KEY, NO_DEBUG, PACKAGE, SCRIPT, sample_alert, script_env, split_message


def test_seed_manual_test_prints_what_the_seed_shows_and_sends_the_message(home):
    """The manual run of docs/operations.md: python3 custom-virustotal_ip.py ALERT KEY sshd debug."""
    alert_path = home.write_alert(sample_alert())
    python = str(home.root / "framework/python/bin/python3")
    r = home.run_argv([python, str(home.root / "integrations/custom-virustotal_ip.py"),
                       str(alert_path), API_KEY, "sshd", "debug"])
    assert r.rc == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "# Running VirusTotal IP script"
    assert lines[1].startswith(f"# Opening alert file at '{alert_path}' with '{{'timestamp': ")
    assert lines[2].startswith("# Request result from VT server: 1:virustotal_ip:{\"virustotal_ip\": "
                               "{\"found\": 1, \"verdict\": \"malicious\"")
    assert lines[2].endswith('"integration": "virustotal_ip", "original_full_log": "Dec 10 01:02:02 host '
                             'sshd[1234]: Accepted none for root from 64.62.197.132 port 1066 ssh2", '
                             '"srcip": "64.62.197.132"}')
    assert r.messages == [lines[2][len("# Request result from VT server: "):].encode()]


def test_debug_lines_through_the_wrapper_survive_its_fast_exit(home):
    """The wrapper's entry point ends with os._exit: stdout (a pipe here, so block-buffered)
    must be flushed first."""
    r = home.run_argv(home.integratord_argv(home.write_alert(sample_alert()), debug=True))
    lines = r.stdout.splitlines()
    assert r.rc == 0 and len(lines) == 3 and lines[0] == "# Running VirusTotal IP script"
    assert r.messages == [lines[2][len("# Request result from VT server: "):].encode()]


def test_integratord_debug_mode_writes_debug_lines_without_the_key(home, vt):
    """integratord -d passes "debug" as argv[4]: the log then says what was decided."""
    quiet = home.run()
    assert "DEBUG:" not in quiet.log
    r = home.run(debug=True)
    assert r.rc == 0
    debug = [line for line in r.log.splitlines() if ": DEBUG: " in line]
    assert any("alert file " in line and "timeout 10 s, retries 3" in line for line in debug), r.log
    assert any(line.endswith("64.62.197.132: cached") for line in debug), r.log
    assert any(" bytes for alert " in line and line.endswith("to analysisd") for line in debug), r.log
    assert API_KEY not in r.log


def test_an_interrupted_run_exits_1_with_one_log_line(home, vt):
    home.config({"api_url": vt.url, "lookup_mode": "inline"})    # a run that waits on VirusTotal
    vt.fail(hang=True)
    # A job started in the background by a shell without job control has SIGINT ignored, and
    # an ignored signal stays ignored across exec: the run gets the default disposition here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(home.integratord_argv(home.write_alert(sample_alert())), cwd=home.root,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=script_env(), start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    vt.wait_requests(1, timeout=20)                               # until the script waits on VT
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=20) == 1
    assert proc.stderr.read() == b""
    errors = [line for line in home.log_path.read_text().splitlines() if ": ERROR: " in line]
    assert len(errors) == 1 and errors[0].endswith("interrupted (SIGINT); stopped")


def test_integratord_4_14_argv_gets_the_enrichment_on_the_queue(home, vt):
    r = home.run()
    assert (r.rc, r.stdout, r.stderr) == (0, "", "")
    [(location, msg)] = r.events()
    assert location == "virustotal_ip"
    assert list(msg) == ["virustotal_ip", "integration", "original_full_log", "srcip"]
    e = msg["virustotal_ip"]
    assert (e["verdict"], e["counts"], e["weighted_malicious"], e["reputation"], e["age_days"]) == \
        ("malicious", {"malicious": 11, "suspicious": 2}, 12.0, -3, 0.7)
    assert e["source"] == {"alert_id": "1753101678.8211", "rule": "100003", "ip": "64.62.197.132"}
    assert (e["reasons"], e["cached"], e["pivot"]) == (["mal>=3"], False, {"used": False})
    assert vt.paths() == ["/api/v3/ip_addresses/64.62.197.132"]
    assert vt.requests[0]["apikey"] == API_KEY and vt.requests[0]["tool"]


def test_seed_unknown_example_pivots_to_communicating_files(home, vt):
    r = home.run(sample_alert("108.157.98.17"))
    e = r.event()["virustotal_ip"]
    assert (e["verdict"], e["pivot"]) == ("unknown", {"used": True, "total_files": 1, "strong_mal_files": 0})
    assert vt.paths() == ["/api/v3/ip_addresses/108.157.98.17",
                          "/api/v3/ip_addresses/108.157.98.17/communicating_files"]
    assert vt.requests[1]["query"] == "limit=10"


def test_pivot_with_three_strong_files_makes_a_clean_ip_suspicious(home, vt):
    vt.fixtures["93.184.216.34"] = {"engines": {"harmless": 70}, "age_days": 3,
                                    "attributes": {"reputation": 0},
                                    "communicating_files": [12, 30, 7, 1]}
    e = home.run(sample_alert("93.184.216.34")).event()["virustotal_ip"]
    assert (e["verdict"], e["pivot"]["strong_mal_files"], e["reasons"]) == \
        ("suspicious", 3, ["no_hits", "pivot_strong_files>=3"])


def test_failed_pivot_leaves_the_verdict_and_is_not_retried_from_cache(home, vt):
    vt.fixtures["93.184.216.34"] = {"engines": {"harmless": 70}, "age_days": 3,
                                    "communicating_files_error": {"status": 403, "code": "ForbiddenError"}}
    e = home.run(sample_alert("93.184.216.34")).event()["virustotal_ip"]
    assert (e["verdict"], e["pivot"], e["reasons"]) == ("unknown", {"used": False},
                                                        ["no_hits", "pivot_unavailable"])
    assert home.run(sample_alert("93.184.216.34")).event()["virustotal_ip"]["cached"] is True
    assert len(vt.requests) == 2


def test_older_argv_shapes_and_api_key_prefix_are_understood(home, vt):
    alert = home.write_alert(sample_alert())
    wrapper = str(home.root / "integrations/custom-virustotal_ip")
    shapes = {
        "4.7 (no timeout/retries)": [wrapper, str(alert), API_KEY, "", "", "", NO_DEBUG],
        "4.3 (no options)": [wrapper, str(alert), API_KEY, "", "", NO_DEBUG],
        "api_key:VALUE": [wrapper, str(alert), "api_key:" + API_KEY, "", "", "", "10", "3", NO_DEBUG],
        "4.14 debug": [wrapper, str(alert), API_KEY, "", "debug", "", "10", "3"],
    }
    for name, argv in shapes.items():
        if home.db_path.exists():
            home.sql("DELETE FROM cache")
        r = home.run_argv(argv)
        assert r.rc == 0, (name, r.log)
        assert r.event()["virustotal_ip"]["verdict"] == "malicious", name
    assert all(req["apikey"] == API_KEY for req in vt.requests)


def test_api_key_from_config_file_when_argv_has_none(home, vt):
    home.config({"api_url": vt.url, "api_key": API_KEY})
    r = home.run(api_key="")
    assert r.event()["virustotal_ip"]["verdict"] == "malicious"
    assert vt.requests[0]["apikey"] == API_KEY


def test_missing_api_key_is_an_error_event_not_a_verdict(home, vt):
    r = home.run(api_key="")
    e = r.event()["virustotal_ip"]
    assert (e["error"], "verdict" in e) == ("NoApiKey", False)
    assert vt.requests == []


def test_options_file_overrides_the_config_file(home, vt):
    home.config({"api_url": vt.url, "mal_strong_min": 2})
    r = home.run(options={"mal_strong_min": 20, "rep_bad_lt": -10, "weight_mal_strong": 50})
    e = r.event()["virustotal_ip"]
    assert (e["verdict"], e["reasons"]) == ("suspicious", ["hits>=1"])


def test_unknown_keys_and_wrong_types_are_reported_by_name_and_the_rest_applies(home, vt):
    home.config({"api_url": vt.url, "mal_strong_minimum": 1, "pivot_limit": "ten",
                 "stale_weak_days": True, "mal_strong_min": 12})
    r = home.run()
    assert r.rc == 0
    assert 'unknown key "mal_strong_minimum" ignored' in r.log
    assert "pivot_limit must be an integer 1-40; ignored" in r.log
    assert "stale_weak_days must be an integer 0-36500; ignored" in r.log
    assert r.event()["virustotal_ip"]["reasons"] == ["mal>=1&rep<0"]   # 11 < 12 applied


def test_broken_config_and_options_files_never_stop_the_integration(home, vt, egress):
    (home.root / "etc/custom-virustotal_ip.json").write_text("{not json")
    r = home.run(options=["a", "list"])
    assert r.rc == 0 and r.stderr == ""
    assert "is not valid JSON; ignored" in r.log and "is not a JSON object; ignored" in r.log
    assert vt.requests == []
    # api_url fell back to the default, the real VirusTotal: the egress catcher refused the
    # first try and the 3 retries (integratord's default <retries>)
    assert egress.take() == [("CONNECT", "www.virustotal.com:443")] * 4
    assert r.event()["virustotal_ip"]["error"] == "ConnectionError"


def test_agent_alerts_are_routed_back_to_the_agent_with_escaped_location(home):
    alert = sample_alert(agent={"id": "017", "name": "web:01|dmz", "ip": "fd00::5"})
    [(location, _)] = home.run(alert).events()
    assert location == "[017] (web:01|dmz) fd00::5->virustotal_ip"
    assert r_raw(home, alert).startswith(b"1:[017] (web|:01||dmz) fd00|:|:5->virustotal_ip:{")
    alert = sample_alert(agent={"id": "018", "name": "db"})
    [(location, _)] = home.run(alert).events()
    assert location == "[018] (db) any->virustotal_ip"


def r_raw(home, alert) -> bytes:
    [raw] = home.run(alert).messages
    return raw


def test_ip_fields_are_tried_in_order_and_the_first_valid_ip_wins(home, vt):
    alert = sample_alert()
    alert["data"] = {"srcip": "not-an-ip", "src_ip": "999.1.1.1", "source_ip": "64.62.197.132",
                     "client_ip": "108.157.98.17"}
    assert home.run(alert).event()["virustotal_ip"]["source"]["ip"] == "64.62.197.132"
    alert["data"] = {"win": {"eventdata": {"ipAddress": "108.157.98.17"}}}
    r = home.run(alert, options={"ip_fields": ["data.win.eventdata.ipAddress"]})
    assert r.event()["virustotal_ip"]["source"]["ip"] == "108.157.98.17"


def test_the_verdict_carries_the_looked_up_address_as_srcip_for_active_response(home, vt):
    """Top-level srcip becomes the alert's data.srcip: the address looked up, not the alert's
    data.srcip (here not an address), and never on an error event."""
    alert = sample_alert()
    alert["data"] = {"srcip": "not-an-ip", "source_ip": "64.62.197.132"}
    assert home.run(alert).event()["srcip"] == "64.62.197.132"
    alert["data"] = {"srcip": "108.157.98.17"}
    r = home.run(alert, options={"api_url": "http://127.0.0.1:9/api/v3"})      # nothing listens: an error event
    assert "error" in r.event()["virustotal_ip"] and "srcip" not in r.event()


def test_one_megabyte_full_log_is_truncated_below_65535_bytes(home):
    alert = sample_alert(full_log="A\u00e9\"\\" * 262144)
    r = home.run(alert)
    assert r.rc == 0
    [raw] = r.messages
    assert len(raw) < 65535
    msg = split_message(raw)[1]
    assert msg["virustotal_ip"]["verdict"] == "malicious"
    assert msg["original_full_log"].startswith("A\u00e9\"\\A") and msg["original_full_log"].endswith("[truncated]")


def test_non_utf8_bytes_in_the_alert_are_survived(home):
    raw = json.dumps(sample_alert()).encode().replace(b"Accepted none", b"Accepted \xff\xfe\xc3none")
    r = home.run(raw)
    assert r.rc == 0 and r.stderr == ""
    assert "\ufffd" in r.event()["original_full_log"]


def test_cache_hit_makes_no_request_and_says_cached(home, vt):
    first = home.run().event()["virustotal_ip"]
    alert = sample_alert()
    alert["id"] = "1753101999.1"
    second = home.run(alert).event()["virustotal_ip"]
    assert len(vt.requests) == 1
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["source"]["alert_id"] == "1753101999.1"
    assert {k: v for k, v in second.items() if k not in ("cached", "source")} == \
        {k: v for k, v in first.items() if k not in ("cached", "source")}


def test_threshold_changes_apply_to_cached_entries_without_a_new_request(home, vt):
    assert home.run().event()["virustotal_ip"]["verdict"] == "malicious"
    home.config({"api_url": vt.url, "mal_strong_min": 50, "rep_bad_lt": -100, "weight_mal_strong": 100})
    e = home.run().event()["virustotal_ip"]
    assert (e["verdict"], e["cached"]) == ("suspicious", True)
    assert len(vt.requests) == 1


def test_expired_cache_entry_is_looked_up_again(home, vt):
    home.run()
    home.sql("UPDATE cache SET entry = json_set(entry, '$.fetched_at', fetched_at - 25 * 3600)")
    e = home.run().event()["virustotal_ip"]
    assert (e["cached"], len(vt.requests)) == (False, 2)


@pytest.mark.parametrize("mode", ["worker", "inline"])
def test_concurrent_runs_for_one_uncached_ip_make_one_request(home, vt, mode):
    home.config({"api_url": vt.url, "lookup_mode": mode})
    vt.fail("64.62.197.132", delay=0.5)   # VT is slow, so the runs overlap
    procs = [subprocess.Popen(home.integratord_argv(home.write_alert(sample_alert(id=f"1.{i}"))), cwd=home.root,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(5)]
    assert home.wait_runs(procs) == [0] * 5
    home.wait_workers()
    events = [split_message(m)[1]["virustotal_ip"] for m in home.drain_queue()]
    assert sorted(e["source"]["alert_id"] for e in events) == [f"1.{i}" for i in range(5)]
    assert {e["verdict"] for e in events} == {"malicious"}
    if mode == "inline":       # the first run asks; the others, waiting for its lock, find its answer
        assert sorted(e["cached"] for e in events) == [False, True, True, True, True]
    assert vt.paths() == ["/api/v3/ip_addresses/64.62.197.132"]


def wrapper_python_argv(home, alert) -> list:
    """The Python command line the wrapper execs, with an import log (-X importtime) added."""
    import re
    from harness import WRAPPER
    found = re.search(r'python3" (-I -S) -c \'(.*?)\' "\$dir_name"', WRAPPER.read_text(), re.S)
    assert found, "the wrapper's exec line changed"
    python = str(home.root / "framework/python/bin/python3")
    return [python, "-X", "importtime", *found.group(1).split(), "-c", found.group(2),
            str(home.root / "integrations"), "custom-virustotal_ip", *home.integratord_argv(alert)[1:]]


def imported_modules(r) -> set:
    return {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}


def test_cache_hit_through_the_wrapper_loads_neither_os_nor_the_entry_point(home):
    """The wrapper imports the package directly, and the package uses posix: under -S nothing
    else imports os (with stat, posixpath and _collections_abc, a sixth of a hit on 3.9)."""
    home.run()
    r = home.run_argv(wrapper_python_argv(home, home.write_alert(sample_alert())))
    assert r.rc == 0 and r.event()["virustotal_ip"]["cached"] is True
    imported = imported_modules(r)
    assert {"virustotal_ip.cli", "virustotal_ip.verdict", "virustotal_ip.state", "_sqlite3"} <= imported
    assert imported & {"os", "posixpath", "custom-virustotal_ip", "virustotal_ip.virustotal",
                       "virustotal_ip.analyst", "requests"} == set()


def test_alert_without_an_address_to_look_up_opens_no_state(home, vt):
    """A private, allowlisted or missing address is decided before the state: no SQLite is
    loaded, no state directory created."""
    alert = home.write_alert(sample_alert("192.168.1.20"))
    r = home.run_argv(wrapper_python_argv(home, alert))
    assert r.rc == 0 and r.events() == []
    assert "192.168.1.20 is not a global address; not looked up" in r.log
    assert imported_modules(r) & {"_sqlite3", "virustotal_ip.state", "virustotal_ip.lookup"} == set()
    assert not (home.root / "var" / "virustotal_ip").exists() and vt.requests == []


def test_script_uses_only_the_standard_library_and_requests():
    """The entry point and its package import the standard library, each other, and
    `requests`; only the VirusTotal edge (virustotal.py) imports `requests`."""
    import ast
    import sys
    by_module = {}
    for path in (SCRIPT, *sorted(PACKAGE.glob("*.py"))):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
        by_module[path.name] = imported - set(sys.stdlib_module_names) - {PACKAGE.name}
    assert set().union(*by_module.values()) == {"requests"}
    assert [name for name, outside in by_module.items() if outside] == ["virustotal.py"]


def test_package_imports_run_one_way_down_its_list_of_modules():
    """Each module imports only modules listed above it in the package's own list (its
    __init__): the pure modules first, the entry points last, so no import climbs back up, not
    even one made inside a function."""
    import ast
    import re
    order = re.findall(r"^    (\w+)\.py ", (PACKAGE / "__init__.py").read_text(), re.M)
    assert sorted(order) == sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    climbing = []
    for position, name in enumerate(order):
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                targets = [node.module] if node.module else [a.name for a in node.names]
                climbing += [(name, t) for t in targets if t.split(".")[0] not in order[:position]]
    assert climbing == []


def test_script_runs_on_python_3_9_syntax():
    import ast
    for path in (SCRIPT, *PACKAGE.glob("*.py")):
        ast.parse(path.read_text(), feature_version=(3, 9))


def test_wrapper_prefers_wazuh_path_from_the_environment(home, tmp_path):
    fake = tmp_path / "other" / "framework" / "python" / "bin"
    fake.mkdir(parents=True)
    (fake / "python3").write_text("#!/bin/sh\nprintf 'other python:'; printf ' [%s]' \"$@\"\n")
    os.chmod(fake / "python3", 0o755)
    env = script_env(WAZUH_PATH=str(tmp_path / "other"))
    alert = home.write_alert(sample_alert())
    r = home.run_argv(home.integratord_argv(alert), env=env)
    assert r.stdout.startswith("other python: [-I] [-S] [-c] ")
    assert f"] [{home.root}/integrations] [custom-virustotal_ip] [{alert}] " in r.stdout


def test_wrapper_outside_integrations_refuses_with_a_message(tmp_path):
    import shutil
    from harness import WRAPPER
    shutil.copy(WRAPPER, tmp_path / "custom-virustotal_ip")
    r = subprocess.run([str(tmp_path / "custom-virustotal_ip")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "must be installed in <wazuh home>/integrations" in r.stderr


def test_cache_hit_imports_neither_requests_nor_the_heavy_stdlib_wrappers(home):
    """What keeps a cache hit cheap: `requests` (and site-packages) only for a real VT request;
    json, sqlite3, socket and ipaddress replaced by the C modules under them."""
    home.run()
    alert = home.write_alert(sample_alert())
    python = str(home.root / "framework/python/bin/python3")
    argv = home.integratord_argv(alert)
    # the interpreter flags the wrapper uses, plus an import log
    argv[0:1] = [python, "-X", "importtime", "-I", "-S", str(home.root / "integrations/custom-virustotal_ip.py")]
    r = home.run_argv(argv)
    assert r.rc == 0 and r.event()["virustotal_ip"]["cached"] is True
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert {"_json", "_sqlite3", "_socket"} <= imported
    heavy = {"requests", "urllib3", "site", "json", "re", "enum", "sqlite3", "datetime", "socket", "ipaddress"}
    assert imported & heavy == set()

