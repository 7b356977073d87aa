"""What the role leaves on a manager, and the integration end to end through Wazuh itself.

The same tests run against the official wazuh/wazuh-manager image and Wazuh's own daemons built from source:
they use only Wazuh's interfaces (files, wazuh-control, the queue socket, alerts.json,
integrations.log). Waiting is for a line to appear in alerts.json, with a time limit.
"""
import json
import random
import shlex
import time

import pytest

testinfra_hosts = ["all"]
OSSEC = "/var/ossec"
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


def test_script_bytecode_is_current_and_readable_by_the_wazuh_group_only(host):
    """The wrapper imports the script, so every alert loads this bytecode: Python says it
    matches the .py (-B: this check writes nothing, -v: the importer says what it loads)."""
    python = f"{OSSEC}/framework/python/bin/python3"
    code = f"import sys; sys.path.append('{OSSEC}/integrations'); __import__('custom-virustotal_ip')"
    r = host.run(f"{python} -I -S -B -v -c {shlex.quote(code)}")
    pyc = next((line.split("'")[1] for line in r.stderr.splitlines()
                if line.startswith("# code object from") and "custom-virustotal_ip" in line), None)
    assert pyc is not None, f"Python loaded no bytecode for the script (rc {r.rc}):\n{r.stderr[-2000:]}"
    assert r.rc == 0 and pyc.startswith(f"{OSSEC}/integrations/__pycache__/custom-virustotal_ip.")
    assert f"matches {OSSEC}/integrations/custom-virustotal_ip.py" in r.stderr
    f = host.file(pyc)
    assert (f.user, f.group, f.mode) == ("root", "wazuh", 0o640)
    d = host.file(f"{OSSEC}/integrations/__pycache__")
    assert (d.user, d.group, d.mode & 0o7777) == ("root", "wazuh", 0o2750)


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


def test_config_file_holds_every_setting(host):
    config = json.loads(host.file(f"{OSSEC}/etc/custom-virustotal_ip.json").content_string)
    assert config["api_url"] == "http://127.0.0.1:8090/api/v3"
    assert (config["mal_strong_min"], config["weight_mal_strong"], config["stale_weak_days"]) == (3, 3.0, 90)
    assert set(config) >= {"api_key", "risk_tags", "pivot_enabled", "ip_fields", "cache_ttl_hours",
                           "rate_limit_per_minute", "allowlist", "engine_weights"}


def test_integratord_is_running(host):
    assert "wazuh-integratord is running..." in host.run(f"{OSSEC}/bin/wazuh-control status").stdout


SEND = """
import socket, sys, time
deadline = time.monotonic() + 60
while True:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.connect('/var/ossec/queue/sockets/queue')
        s.send(sys.argv[1].encode())
        break
    except (ConnectionRefusedError, FileNotFoundError):   # analysisd (re)starting
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
"""


def sshd_login(ip):
    """An sshd login line, unique by its port, as sshd logs it: analysisd decodes it and raises
    stock rule 5715 (groups syslog, sshd, authentication_success), the integration's trigger."""
    port = random.randrange(1024, 65536)
    return f"Dec 10 01:02:02 host sshd[1234]: Accepted password for root from {ip} port {port} ssh2"


def alerts_with(host, text):
    """The alerts in alerts.json whose line holds `text` (a line still being written is skipped)."""
    found = []
    for line in host.run(f"grep -F {shlex.quote(text)} {OSSEC}/logs/alerts/alerts.json").stdout.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def enrichment_for(host, ip, timeout=90):
    """Send an sshd login to analysisd (the real path: appending to alerts.json would race
    with analysisd's own writes) and wait for the enrichment alert of the alert it raised."""
    line = sshd_login(ip)
    python = f"{OSSEC}/framework/python/bin/python3"
    host.run_expect([0], f"{python} -c {shlex.quote(SEND)} {shlex.quote('1:/var/log/auth.log:' + line)}")
    deadline = time.monotonic() + timeout
    alert_id = None
    while time.monotonic() < deadline:
        if alert_id is None:
            alert_id = next((a["id"] for a in alerts_with(host, line) if a.get("full_log") == line), None)
        if alert_id is not None:
            for found in alerts_with(host, alert_id):
                vt = found.get("data", {}).get("virustotal_ip", {})
                if found["rule"]["id"].startswith("1999") and vt.get("source", {}).get("alert_id") == alert_id:
                    return found
        time.sleep(0.5)
    raise AssertionError(f"no enrichment alert for {ip} ({line!r}, alert {alert_id}) within {timeout}s; "
                         f"integrations.log: {host.run(f'tail -5 {OSSEC}/logs/integrations.log').stdout}")


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
