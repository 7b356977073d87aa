"""Wazuh's interfaces where we touch them, as docs/wazuh-interfaces.md states them, checked on
Wazuh's own daemons built from source (make wazuh-image): where that page (our reading of
Wazuh's source) and the daemons disagree, the daemons win and the page is corrected. Only Wazuh's
interfaces are used (manager_harness.py). Without a Docker engine they are skipped with the
reason shown, except on CI (CI=true), where that is a failure.
"""
from __future__ import annotations

import json
import re

import pytest
from manager_harness import OSSEC, WAZUH_VERSION, Manager, manager_image, sentinel, sentinel_rule_xml

VT_RULES = (__import__("harness").RULES).read_text()


@pytest.fixture(scope="module")
def image():
    return manager_image("wazuh-src", "the manager interface tests")


@pytest.fixture
def manager(image):
    m = Manager(image)
    yield m
    m.stop()


def restart_ok(m: Manager) -> None:
    r = m.control("restart")
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    m.wait_running()


def with_rules(m: Manager, rules_xml: str, name: str = "test_rules.xml") -> None:
    m.put(f"{OSSEC}/etc/rules/{name}", rules_xml, mode="0660", owner="wazuh:wazuh")
    m.put(f"{OSSEC}/etc/rules/zz_sentinel.xml", sentinel_rule_xml(), mode="0660", owner="wazuh:wazuh")
    restart_ok(m)


def vt_message(verdict: str = "malicious", **extra) -> bytes:
    event = {"virustotal_ip": {"found": 1, "verdict": verdict, "source": {"alert_id": "1.1", "rule": "100003",
                                                                          "ip": "64.62.197.132"},
                               "weighted_malicious": 12.0, "age_days": 0.7, "tags": [], "pivot": {"used": False},
                               "reputation": -3, **extra},
             "integration": "virustotal_ip", "original_full_log": "Dec 10 01:02:02 host sshd[1234]: Accepted"}
    return b"1:virustotal_ip:" + json.dumps(event).encode()


# --------------------------------------------------------------------------- layout and control

def test_tree_users_and_modes_are_the_official_ones(manager):
    manager.wait_file(f"{OSSEC}/logs/alerts/alerts.json", 60)       # analysisd creates it as it starts
    out = manager.sh(f"cd {OSSEC} && stat -c '%U:%G %a %n' . etc etc/ossec.conf etc/rules etc/rules/local_rules.xml "
                     "integrations logs logs/alerts/alerts.json logs/ossec.log logs/integrations.log "
                     "queue/sockets/queue framework/python/bin/python3 && id wazuh").stdout.decode()
    for expected in ["root:wazuh 750 .", "root:wazuh 660 etc/ossec.conf", "root:wazuh 770 etc/rules",
                     "wazuh:wazuh 660 etc/rules/local_rules.xml", "root:wazuh 750 integrations",
                     "wazuh:wazuh 640 logs/alerts/alerts.json", "wazuh:wazuh 660 logs/ossec.log",
                     "wazuh:wazuh 640 logs/integrations.log", "wazuh:wazuh 660 queue/sockets/queue"]:
        assert expected in out, expected
    assert "uid=" in out and "(wazuh)" in out
    conf = manager.read(f"{OSSEC}/etc/ossec.conf")
    assert conf.count("<ossec_config>") == 2
    assert manager.exec(f"{OSSEC}/framework/python/bin/python3", "-c", "import requests").returncode == 0
    assert manager.control("info").stdout.decode().startswith(f'WAZUH_VERSION="v{WAZUH_VERSION}"')


def test_status_lists_every_daemon_and_exits_1_on_a_healthy_manager(manager):
    """Exit 1 with a daemon off: integratord, with no <integration> configured, exits cleanly
    (a packaged manager also lists its optional daemons that are off)."""
    r = manager.control("status")
    out = r.stdout.decode()
    assert r.returncode == 1
    assert "wazuh-analysisd is running..." in out
    assert "wazuh-integratord not running..." in out


def test_integratord_runs_once_an_integration_is_configured(manager):
    with_integration(manager, "custom-argv", "<group>sshd</group>")
    r = manager.control("status")
    assert "wazuh-integratord is running..." in r.stdout.decode()


def test_manager_starts_under_a_replaced_command_like_molecules_sleep_loop(image):
    m = Manager(image, command=["bash", "-c", "while true; do sleep 10000; done"])
    try:
        assert "wazuh-analysisd is running..." in m.status()
    finally:
        m.stop()


def test_repeated_restarts_leave_no_zombie_daemons(manager):
    """/init reaps the daemons each restart leaves to it (a zombie made stop wait 10 s each)."""
    for _ in range(3):
        restart_ok(manager)
    assert b"<defunct>" not in manager.exec("ps", "-eo", "stat,cmd").stdout
    assert manager.control("stop").returncode == 0
    assert "wazuh-analysisd not running..." in manager.status()


def test_stop_and_start(manager):
    assert manager.control("stop").returncode == 0
    assert "wazuh-analysisd not running..." in manager.status()
    assert manager.control("start").returncode == 0
    manager.wait_running()


# --------------------------------------------------------------------------- analysisd -t and restart

@pytest.mark.parametrize("rule,error", [
    ('<rule id="100100" level="5"><if_sid>87100</if_sid><options>no_full_log,alert_by_email</options>'
     '<description>x</description></rule>', "Invalid option"),
    ('<rule id="100100" level="17"><description>x</description></rule>', "Invalid level"),
    ('<rule id="1001000" level="5"><description>x</description></rule>', "Invalid rule id"),
    ('<rule id="100100" level="5"><colour>red</colour><description>x</description></rule>',
     "Invalid option 'colour' for rule '100100'"),
    ('<rule id="100100" level="5" color="red"><description>x</description></rule>', "Invalid attribute"),
    ('<rule id="100100" level="5"><decoded_as>nosuch</decoded_as><description>x</description></rule>',
     "Invalid decoder name: 'nosuch'"),
    ('<rule id="100100" level="5"><field name="srcip">1.2.3.4</field><description>x</description></rule>',
     "is static"),
    ('<rule id="100100" level="5"><field name="x" type="pcre2">(</field><description>x</description></rule>',
     "(5107): Syntax error on tag 'x' in rule 100100"),
    ('<rule id="100100" level="5"><description>x</description>', "Error reading XML file"),
], ids=["two-options", "level-17", "id-7-digits", "unknown-element", "unknown-attribute", "unknown-decoder",
        "static-field", "bad-regex", "malformed-xml"])
def test_fatal_rule_mistakes_fail_t_and_restart_keeps_the_old_manager(manager, rule, error):
    pids_before = manager.pid_files()         # (not the .state files daemons write there later)
    manager.put(f"{OSSEC}/etc/rules/bad_rules.xml", f'<group name="test,">{rule}</group>', "0660", "wazuh:wazuh")
    t = manager.exec(f"{OSSEC}/bin/wazuh-analysisd", "-t")
    assert t.returncode != 0 and error in t.stderr.decode()
    assert "bad_rules.xml" in t.stderr.decode()                      # which file, as analysisd says
    r = manager.control("restart")
    assert r.returncode == 1
    assert "wazuh-analysisd is running..." in manager.status()
    assert manager.pid_files() == pids_before                        # the same daemons, never stopped


def test_duplicate_id_and_unknown_parent_are_warnings_only(manager):
    manager.put(f"{OSSEC}/etc/rules/warn_rules.xml",
                '<group name="test,"><rule id="87100" level="3"><description>dup</description></rule>'
                '<rule id="100101" level="3"><if_sid>999999</if_sid><description>orphan</description></rule></group>',
                "0660", "wazuh:wazuh")
    t = manager.exec(f"{OSSEC}/bin/wazuh-analysisd", "-t")
    assert t.returncode == 0
    assert "duplicated" in t.stderr.decode() and "999999" in t.stderr.decode()


def test_unreadable_rules_file_is_skipped_with_a_warning(manager):
    manager.put(f"{OSSEC}/etc/rules/secret_rules.xml", '<group name="x,"><rule id="100300" level="99"/></group>',
                "0600", "root:root")
    t = manager.exec(f"{OSSEC}/bin/wazuh-analysisd", "-t")
    assert t.returncode == 0
    assert "WARNING: (1103): Could not open file 'etc/rules/secret_rules.xml' due to [(13)-(Permission denied)]." \
        in t.stderr.decode()


# --------------------------------------------------------------------------- the rule tree

def test_root_level_rule_on_integration_virustotal_ip_is_swallowed_by_87100(manager):
    with_rules(manager, '<group name="test,"><rule id="100100" level="10"><decoded_as>json</decoded_as>'
                        '<field name="integration">^virustotal_ip$</field><description>root</description>'
                        '</rule></group>')
    manager.send(vt_message())
    sentinel(manager)
    assert [a for a in manager.alerts() if a["rule"]["id"] == "100100"] == []


def test_the_same_rule_under_if_sid_87100_fires(manager):
    with_rules(manager, '<group name="test,"><rule id="100100" level="10"><if_sid>87100</if_sid>'
                        '<field name="integration">^virustotal_ip$</field><description>child</description>'
                        '</rule></group>')
    manager.send(vt_message())
    alert = manager.wait_alert(lambda a: a["rule"]["id"] == "100100")
    assert alert["rule"]["level"] == 10


def test_project_rules_turn_events_into_alerts_with_decoded_strings(manager):
    with_rules(manager, VT_RULES, "virustotal_ip_rules.xml")
    manager.send(vt_message())
    alert = manager.wait_alert(lambda a: a["rule"]["id"] == "199901")
    assert alert["rule"]["level"] == 12 and alert["rule"]["mail"] is True
    assert alert["rule"]["description"] == "Source IP flagged malicious by VirusTotal"
    assert alert["rule"]["groups"] == ["local", "virustotal", "vt_ip"]
    assert (alert["location"], alert["decoder"]["name"], alert["agent"]["id"]) == ("virustotal_ip", "json", "000")
    data = alert["data"]["virustotal_ip"]
    assert (data["found"], data["weighted_malicious"], data["age_days"], data["reputation"]) == \
        ("1", "12", "0.700000", "-3")
    assert data["pivot"] == {"used": "false"} and data["tags"] == []
    assert alert["data"]["integration"] == "virustotal_ip"
    assert alert["full_log"].startswith('{"virustotal_ip": {"found": 1')


@pytest.mark.parametrize("verdict,rule_id,level", [("suspicious", "199902", 7), ("unknown", "199903", 3)])
def test_verdict_rules(manager, verdict, rule_id, level):
    with_rules(manager, VT_RULES, "virustotal_ip_rules.xml")
    manager.send(vt_message(verdict))
    alert = manager.wait_alert(lambda a: a["rule"]["id"] == rule_id)
    assert alert["rule"]["level"] == level and alert["rule"]["mail"] is False


def test_error_events_fire_199904_with_their_description_and_null_does_not(manager):
    with_rules(manager, VT_RULES, "virustotal_ip_rules.xml")
    err = {"virustotal_ip": {"error": "QuotaExceededError", "description": "Quota exceeded",
                             "source": {"alert_id": "1", "rule": "2", "ip": "64.62.197.132"}},
           "integration": "virustotal_ip"}
    manager.send(b"1:virustotal_ip:" + json.dumps(err).encode())
    alert = manager.wait_alert(lambda a: a["rule"]["id"] == "199904")
    assert alert["rule"]["description"] == "VirusTotal IP integration error: Quota exceeded"
    null_err = {"virustotal_ip": {"error": None}, "integration": "virustotal_ip"}
    manager.send(b"1:virustotal_ip:" + json.dumps(null_err).encode())
    sentinel(manager)
    assert [a["rule"]["id"] for a in manager.alerts() if a["rule"]["id"].startswith("1999")] == ["199904", "199900"]


def test_agent_routed_location_attributes_the_alert_to_the_agent(manager):
    with_rules(manager, VT_RULES, "virustotal_ip_rules.xml")
    manager.send(vt_message().replace(b"1:virustotal_ip:", b"1:[017] (web|:01) any->virustotal_ip:", 1))
    alert = manager.wait_alert(lambda a: a["rule"]["id"] == "199901")
    assert alert["agent"] == {"id": "017", "name": "web:01"} and alert["location"] == "virustotal_ip"


# Where a line of a log, the attacker's, can come from: a file on the manager, a file on an
# agent (remoted's form), one whose path ends like our location, and near misses of ours.
FORGED_LOCATIONS = ["/var/log/auth.log", "[001] (web01) 10.0.0.7->/var/log/auth.log",
                    "[001] (web01) 10.0.0.7->/var/log/app/x->virustotal_ip", "/tmp/virustotal_ip",
                    "[001] (web01) 10.0.0.7->/var/log/virustotal_ip", "[001] (web01) any->virustotal_ip.log",
                    "virustotal_ipx", "VirusTotal_IP", "xvirustotal_ip"]


def test_our_rules_answer_only_events_from_our_own_location(manager):
    """A log line shaped like our enrichment raises none of our rules (nor Active Response):
    only the two locations our script sends from do."""
    with_rules(manager, VT_RULES, "virustotal_ip_rules.xml")
    for location in FORGED_LOCATIONS:
        escaped = location.replace("|", "||").replace(":", "|:")
        manager.send(vt_message().replace(b"1:virustotal_ip:", f"1:{escaped}:".encode(), 1))
    sentinel(manager)
    assert [(a["rule"]["id"], a["location"]) for a in manager.alerts() if a["rule"]["id"].startswith("1999")] == []
    manager.send(vt_message())
    manager.send(vt_message().replace(b"1:virustotal_ip:", b"1:[001] (web01) 10.0.0.7->virustotal_ip:", 1))
    manager.send(vt_message().replace(b"1:virustotal_ip:", b"1:[002] (db|:02) any->virustotal_ip:", 1))
    sentinel(manager)
    assert sorted((a["rule"]["id"], a["agent"]["id"]) for a in manager.alerts() if a["rule"]["id"] == "199901") == \
        [("199901", "000"), ("199901", "001"), ("199901", "002")]


def test_datagram_over_65535_bytes_is_not_decoded(manager):
    with_rules(manager, VT_RULES, "virustotal_ip_rules.xml")
    big = vt_message(padding="x" * 70000)
    assert len(big) > 65535
    manager.send(big)
    sentinel(manager)
    assert [a for a in manager.alerts() if a["rule"]["id"].startswith("1999")] == []


# --------------------------------------------------------------------------- integratord

ARGV_SCRIPT = """#!/bin/sh
# records how integratord ran it: one JSON line per run in /tmp/records.jsonl
{ printf '{"argv": ['; first=1; for a in "$0" "$@"; do [ $first = 1 ] || printf ','; first=0;
  printf '"%s"' "$a"; done; printf '], "uid": "%s", "cwd": "%s", "alert": ' "$(id -un)" "$(pwd)";
  tr -d '\\n' < "$1"; printf '}\\n'; } > /tmp/record.$$.tmp
cat /tmp/record.$$.tmp >> /tmp/records.jsonl
rm -f /tmp/record.$$.tmp
chmod 0644 /tmp/records.jsonl
exit ${EXIT_CODE:-0}
"""


def with_integration(m: Manager, name: str, filters: str, script: str = ARGV_SCRIPT, mode: str = "0750",
                     options: str = "") -> None:
    m.put(f"{OSSEC}/integrations/{name}", script, mode=mode, owner="root:wazuh")
    block = (f"\n<ossec_config>\n  <integration>\n    <name>{name}</name>\n    <api_key>k3y</api_key>\n"
             f"    {filters}\n    <alert_format>json</alert_format>\n{options}  </integration>\n</ossec_config>\n")
    m.sh(f"printf '%s' '{block}' >> {OSSEC}/etc/ossec.conf", check=True)
    restart_ok(m)
    m.wait_log(f"Enabling integration for: '{name}'.")


# kind -> (log line, the rule analysisd raises for it on Wazuh's stock ruleset: id, level, groups)
LOGINS = {
    "success": ("sshd[1234]: Accepted password for root from 64.62.197.132 port {port} ssh2",
                ("5715", 3, ["syslog", "sshd", "authentication_success"])),
    "failed": ("sshd[1234]: Failed password for root from 64.62.197.132 port {port} ssh2",
               ("5760", 5, ["syslog", "sshd", "authentication_failed"])),
    "su": ("su[99]: FAILED su for root by alice{port}", ("5302", 9, ["syslog", "su", "authentication_failed"])),
}


class Login:
    """One login event, unique by its port: the syslog line analysisd decodes, and the rule it
    raises for it."""

    def __init__(self, kind: str = "success", location: str = "/var/log/auth.log") -> None:
        Login.count = getattr(Login, "count", 40000) + 1
        text, (rule_id, level, groups) = LOGINS[kind]
        self.location = location
        self.line = f"Dec 10 01:02:02 host {text.format(port=Login.count)}"
        self.rule = (rule_id, level, groups)

    def raise_on(self, manager: Manager) -> None:
        """Send it to analysisd as a log collector would: analysisd raises the alert."""
        manager.send(f"1:{self.location}:{self.line}".encode())

    def written(self, manager: Manager) -> None:
        """Wait until analysisd has written its alert, the rule it should be."""
        alert = manager.wait_alert(lambda a: a.get("full_log") == self.line)
        assert (alert["rule"]["id"], alert["rule"]["level"], alert["rule"]["groups"]) == self.rule


def records(manager: Manager) -> list:
    r = manager.exec("cat", "/tmp/records.jsonl")
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line]


def record_of(manager: Manager, login: Login) -> dict:
    """The record of the run integratord made for `login`, once it is there."""
    manager.wait(lambda: any(r["alert"].get("full_log") == login.line for r in records(manager)), 60,
                 "the integration to run for the alert")
    return next(r for r in records(manager) if r["alert"].get("full_log") == login.line)


def test_group_filter_runs_the_script_with_the_4_14_argv_as_wazuh(manager):
    with_integration(manager, "custom-argv", "<group>sshd</group>", options="    <options>{\"a\": 1}</options>\n")
    other = Login("su")                                              # not in the group: not sent
    other.raise_on(manager)
    other.written(manager)
    login = Login()
    login.raise_on(manager)
    record = record_of(manager, login)
    assert [r["alert"]["full_log"] for r in records(manager)] == [login.line]
    argv = record["argv"]
    assert argv[0] == "integrations/custom-argv"                     # relative to its cwd
    assert re.fullmatch(r"/tmp/custom-argv-\d+--?\d+\.alert", argv[1])
    assert argv[2:5] == ["k3y", "", ""]
    assert re.fullmatch(r"/tmp/custom-argv-\d+--?\d+\.options", argv[5])
    assert argv[6:] == ["10", "3", "> /dev/null 2>&1"]
    assert (record["uid"], record["cwd"]) == ("wazuh", OSSEC)
    assert record["alert"]["rule"]["groups"] == ["syslog", "sshd", "authentication_success"]
    manager.wait(lambda: manager.sh("ls /tmp/custom-argv-* 2>/dev/null").stdout == b"", what="temp files removed")


@pytest.mark.parametrize("filters,matching,other", [
    ("<rule_id>5715,5716</rule_id>", ("success", "/var/log/auth.log"), ("failed", "/var/log/auth.log")),
    ("<level>5</level>", ("failed", "/var/log/auth.log"), ("success", "/var/log/auth.log")),
    ("<event_location>auth.log$</event_location>", ("success", "/var/log/auth.log"), ("success", "/var/log/x")),
], ids=["rule_id", "level", "event_location"])
def test_other_filters(manager, filters, matching, other):
    with_integration(manager, "custom-argv", filters)
    not_sent = Login(*other)
    not_sent.raise_on(manager)
    not_sent.written(manager)
    sent = Login(*matching)
    sent.raise_on(manager)
    record_of(manager, sent)
    assert [r["alert"]["full_log"] for r in records(manager)] == [sent.line]


def ossec_log_after_a_login(manager: Manager, name: str, until: str, **integration) -> str:
    """Configure integration `name` on group sshd, raise one login, and return ossec.log once
    it holds `until`."""
    with_integration(manager, name, "<group>sshd</group>", **integration)
    Login().raise_on(manager)
    manager.wait_log(until)
    return manager.ossec_log()


def test_script_writable_by_wazuh_is_refused_with_127(manager):
    log = ossec_log_after_a_login(manager, "custom-argv", "Check file and permissions.", mode="0770")
    assert "At wpopenv(): file 'integrations/custom-argv' has write permissions." in log
    refused = next(line for line in log.splitlines() if "Couldn't execute command (integrations /tmp/" in line)
    assert " k3y " in refused                                          # the command line, API key included
    assert "Exit status was" not in log
    assert records(manager) == []


def test_non_zero_exit_is_logged_in_three_lines(manager):
    log = ossec_log_after_a_login(manager, "custom-fail", "Exit status was: 3", script="#!/bin/sh\necho oops\nexit 3\n")
    assert "Unable to run integration for custom-fail -> integrations" in log
    assert "While running custom-fail -> integrations. Output: oops" in log


def test_invalid_names_and_scripts_added_after_start_stay_disabled(manager):
    manager.put(f"{OSSEC}/integrations/notcustom", ARGV_SCRIPT, mode="0750", owner="root:wazuh")
    manager.sh(f"printf '%s' '<ossec_config><integration><name>notcustom</name><alert_format>json</alert_format>"
               f"</integration><integration><name>custom-later</name><group>sshd</group>"
               f"<alert_format>json</alert_format></integration></ossec_config>' >> {OSSEC}/etc/ossec.conf", check=True)
    restart_ok(manager)
    manager.wait_log("Invalid integration: 'notcustom'")
    manager.wait_log("Unable to enable integration for: 'custom-later'. File not found inside 'integrations'.")
    manager.put(f"{OSSEC}/integrations/custom-later", ARGV_SCRIPT, mode="0750", owner="root:wazuh")
    early = Login()
    early.raise_on(manager)
    early.written(manager)
    with_integration(manager, "custom-argv", "<group>sshd</group>")   # a restart enables what exists now
    late = Login()
    late.raise_on(manager)
    record_of(manager, late)
    assert "Enabling integration for: 'custom-later'." in manager.ossec_log()
    assert early.line not in [r["alert"]["full_log"] for r in records(manager)]


def test_alerts_written_while_integratord_is_down_are_never_sent(manager):
    with_integration(manager, "custom-argv", "<group>sshd</group>")
    manager.sh(f"kill $(cat {OSSEC}/var/run/wazuh-integratord-*.pid)", check=True)
    manager.wait(lambda: "wazuh-integratord not running..." in manager.status(), what="integratord to stop")
    missed = Login()
    missed.raise_on(manager)
    missed.written(manager)
    starts = manager.ossec_log().count("wazuh-integratord: INFO: Started")
    assert manager.control("start").returncode == 0               # starts what is not running
    manager.wait_running()
    manager.wait(lambda: manager.ossec_log().count("wazuh-integratord: INFO: Started") > starts,
                 what="integratord to start again")
    sent = Login()
    sent.raise_on(manager)
    record_of(manager, sent)
    assert [r["alert"]["full_log"] for r in records(manager)] == [sent.line]
