"""What the role leaves on a manager, and the integration end to end through Wazuh itself.

The same tests run against the official wazuh/wazuh-manager image and Wazuh's own daemons built from source:
they use only Wazuh's interfaces (files, wazuh-control, the queue socket, alerts.json,
integrations.log). Waiting is for a line to appear in alerts.json, with a time limit.
"""
import json
import shlex
import sys
from pathlib import Path

import pytest

# The helpers the harness uses too (tests/wazuh_events.py: standard library only).
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from wazuh_events import ALERTS_JSON, OSSEC, SEND_DATAGRAM, forged_verdict_line, login_message, parse_alerts
from wazuh_events import enrichment_for as wazuh_events_enrichment_for

testinfra_hosts = ["all"]
BEGIN = "<!-- BEGIN custom-virustotal_ip (managed by the Ansible role virustotal_ip) -->"
END = "<!-- END custom-virustotal_ip (managed by the Ansible role virustotal_ip) -->"


@pytest.mark.parametrize("path,user,group,mode", [
    ("integrations/custom-virustotal_ip", "root", "wazuh", 0o750),
    ("integrations/custom-virustotal_ip.py", "root", "wazuh", 0o750),
    ("integrations/virustotal_ip", "root", "wazuh", 0o750),
    ("integrations/virustotal_ip/cli.py", "root", "wazuh", 0o640),
    ("integrations/virustotal_ip/verdict.py", "root", "wazuh", 0o640),
    ("integrations/virustotal_ip/__pycache__", "root", "wazuh", 0o2750),
    ("var/virustotal_ip", "wazuh", "wazuh", 0o770),
    ("etc/custom-virustotal_ip.json", "root", "wazuh", 0o640),
    ("etc/ossec.conf", "root", "wazuh", 0o660),
    ("etc/rules/virustotal_ip_rules.xml", "wazuh", "wazuh", 0o660),
])
def test_files_owners_and_modes(host, path, user, group, mode):
    f = host.file(f"{OSSEC}/{path}")
    assert f.exists
    assert (f.user, f.group, f.mode) == (user, group, mode)


def test_the_entry_point_is_not_compiled(host):
    """Python never reads bytecode for a script it runs by path (the analysts' commands, --drain),
    and the wrapper imports the package, not the entry point: nothing of ours in integrations/__pycache__."""
    r = host.run(f"ls {OSSEC}/integrations/__pycache__/custom-virustotal_ip.* 2>/dev/null")
    assert r.stdout.strip() == "", r.stdout


def test_package_bytecode_is_current_and_readable_by_the_wazuh_group_only(host):
    """What the wrapper imports on every alert: each module of the package from its bytecode."""
    python = f"{OSSEC}/framework/python/bin/python3"
    code = f"import sys; sys.path.append('{OSSEC}/integrations'); import virustotal_ip.cli"
    r = host.run(f"{python} -I -S -B -v -c {shlex.quote(code)}")
    loaded = [line.split("'")[1] for line in r.stderr.splitlines()
              if line.startswith("# code object from") and "/virustotal_ip/" in line]
    assert r.rc == 0 and len(loaded) >= 6, r.stderr[-2000:]
    for pyc in loaded:
        assert pyc.startswith(f"{OSSEC}/integrations/virustotal_ip/__pycache__/")
        f = host.file(pyc)
        assert (f.user, f.group, f.mode) == ("root", "wazuh", 0o640), pyc
    assert f"matches {OSSEC}/integrations/virustotal_ip/verdict.py" in r.stderr


def test_ossec_conf_gets_our_block_and_nothing_else_changes(host):
    now = host.file(f"{OSSEC}/etc/ossec.conf").content_string
    before, rest = now.split(BEGIN + "\n", 1)
    block, after = rest.split(END + "\n", 1)
    assert before + after == host.file("/opt/vtip-test/ossec.conf.orig").content_string
    assert "<name>custom-virustotal_ip</name>" in block and "<group>sshd</group>" in block
    assert "<alert_format>json</alert_format>" in block and "<api_key>" not in block
    assert now.count(BEGIN) == 1


def test_config_file_holds_every_setting_the_deployed_script_knows_and_the_inventorys_values(host):
    config = json.loads(host.file(f"{OSSEC}/etc/custom-virustotal_ip.json").content_string)
    code = (f"import json, sys; sys.path.append('{OSSEC}/integrations'); from virustotal_ip import settings; "
            "print(json.dumps(sorted(settings.defaults())))")
    known = json.loads(host.check_output(f"{OSSEC}/framework/python/bin/python3 -I -c {shlex.quote(code)}"))
    assert sorted(config) == known
    assert config["api_url"] == "http://127.0.0.1:8090/api/v3"
    assert (config["rate_limit_per_minute"], config["daily_quota"]) == (0, 0)
    assert (config["mal_strong_min"], config["weight_mal_strong"], config["stale_weak_days"]) == (3, 3.0, 90)


def test_integratord_is_running(host):
    assert "wazuh-integratord is running..." in host.run(f"{OSSEC}/bin/wazuh-control status").stdout


def enrichment_for(host, ip, timeout=90):
    """The enrichment alert of an sshd login from `ip` sent to analysisd (wazuh_events.py: the
    same helper the harness uses), through testinfra's connection to the manager."""
    python = f"{OSSEC}/framework/python/bin/python3"

    def send(message):
        host.run_expect([0], f"{python} -c {shlex.quote(SEND_DATAGRAM)} {shlex.quote(message.decode())}")

    def alerts_with(text):
        return parse_alerts(host.run(f"grep -F -- {shlex.quote(text)} {ALERTS_JSON}").stdout)

    def context():
        return f"; integrations.log ends:\n{host.run(f'tail -5 {OSSEC}/logs/integrations.log').stdout}"
    return wazuh_events_enrichment_for(send, alerts_with, ip, timeout, context)


def test_malicious_ip_comes_back_as_rule_199901_with_the_seeds_figures(host):
    alert = enrichment_for(host, "64.62.197.132")
    assert (alert["rule"]["id"], alert["rule"]["level"], alert["rule"]["mail"]) == ("199901", 12, True)
    assert alert["rule"]["description"] == "Source IP flagged malicious by VirusTotal"
    vt = alert["data"]["virustotal_ip"]
    assert (vt["verdict"], vt["found"], vt["reputation"], vt["weighted_malicious"]) == ("malicious", "1", "-3", "12")
    assert vt["counts"] == {"malicious": "11", "suspicious": "2"}
    assert (vt["age_days"], vt["as_owner"], vt["country"], vt["network"]) == \
        ("0.700000", "HURRICANE", "US", "64.62.197.0/24")
    assert vt["verdict_line"] == ('vt_ip verdict=malicious ip=64.62.197.132 mal=11 sus=2 wmal=12.0 rep=-3 '
                                  'age_days=0.7 tags=- as_owner="HURRICANE"')
    assert alert["data"]["integration"] == "virustotal_ip" and alert["location"] == "virustotal_ip"


def test_a_log_line_shaped_like_our_enrichment_raises_none_of_our_rules(host):
    """Only our script's location raises our rules: the same event as a line of auth.log does not."""
    forged = "203.0.113.77"
    python = f"{OSSEC}/framework/python/bin/python3"
    message = login_message(forged_verdict_line(forged)).decode()
    host.run_expect([0], f"{python} -c {shlex.quote(SEND_DATAGRAM)} {shlex.quote(message)}")
    # analysisd takes its input in order and this enrichment goes through integratord and the
    # script: once it is in alerts.json, the forged line was judged long before.
    enrichment_for(host, "64.62.197.132")
    alerts = parse_alerts(host.run(f"grep -F -- {shlex.quote(forged)} {ALERTS_JSON}").stdout)
    assert [a["rule"]["id"] for a in alerts if a["rule"]["id"].startswith("1999")] == []


def test_clean_ip_comes_back_as_rule_199903_after_the_pivot(host):
    alert = enrichment_for(host, "108.157.98.17")
    assert (alert["rule"]["id"], alert["rule"]["level"]) == ("199903", 3)
    vt = alert["data"]["virustotal_ip"]
    assert vt["verdict"] == "unknown"
    assert vt["pivot"] == {"used": "true", "total_files": "1", "strong_mal_files": "0"}


def test_enrichment_alerts_do_not_trigger_the_integration_again(host):
    # integratord reads alerts.json in order: once this later enrichment is there, it has seen
    # every enrichment alert before it.
    enrichment_for(host, "64.62.197.132")
    log = host.file(f"{OSSEC}/logs/integrations.log").content_string
    assert "loop guard" not in log
    ossec_log = host.file(f"{OSSEC}/logs/ossec.log").content_string
    assert "Unable to run integration for custom-virustotal_ip" not in ossec_log


def test_vt_answering_429_comes_back_as_rule_199904(host):
    """Last: a quota outage stops lookups for a minute."""
    alert = enrichment_for(host, "185.220.101.1")
    assert (alert["rule"]["id"], alert["rule"]["level"]) == ("199904", 5)
    assert alert["data"]["virustotal_ip"]["error"] == "QuotaExceededError"
    assert alert["rule"]["description"] == "VirusTotal IP integration error: Quota exceeded"
