"""Side by side with a tool that writes ossec.conf whole (wazuh-ansible's manager role, a
wazuh-docker config mount): virustotal_ip_manage_ossec_conf, on Wazuh's own daemons.

The other tool is played by `other_tool_writes`: it replaces ossec.conf with the image's own
plus the <integration> entries of `wazuh_manager_integrations`, rendered as wazuh-ansible's
template renders them (name, api_key, rule_id, <level> from alert_level, alert_format; no
<group>), mode 0644, and restarts the manager as wazuh-ansible's handler does.
"""
from __future__ import annotations

import pytest
import yaml
from manager_harness import OSSEC, Manager, manager_image

CONF = f"{OSSEC}/etc/ossec.conf"
FALSE = ("-e", "virustotal_ip_manage_ossec_conf=false")


@pytest.fixture
def manager():
    m = Manager(manager_image("wazuh-src", "the role beside wazuh-ansible"))
    m.original_conf = m.read(CONF)
    yield m
    m.stop()


def rendered(entry: dict) -> str:
    lines = ["  <integration>", f"    <name>{entry['name']}</name>"]
    tags = (("hook_url", "hook_url"), ("api_key", "api_key"), ("rule_id", "rule_id"), ("alert_level", "level"))
    for key, tag in tags:
        if key in entry:
            lines.append(f"    <{tag}>{entry[key]}</{tag}>")
    lines += [f"    <alert_format>{entry['alert_format']}</alert_format>", "  </integration>"]
    return "\n".join(lines)


def other_tool_writes(m: Manager, integrations: list) -> None:
    head, _, _ = m.original_conf.rpartition("</ossec_config>")
    body = "".join(rendered(entry) + "\n" for entry in integrations)
    m.put(CONF, f"{head}{body}</ossec_config>\n", mode="0644", owner="root:wazuh")
    assert m.control("restart").returncode == 0
    m.wait_running()


def printed_entry(out: str) -> list:
    """The wazuh_manager_integrations entry the role printed (JSON in the message), parsed as YAML."""
    text = out[out.index("wazuh_manager_integrations: [{"):].replace('\\"', '"')
    return yaml.safe_load(text[:text.index("}]") + 2])["wazuh_manager_integrations"]


def test_false_without_the_entry_fails_before_changing_anything_and_prints_it(manager, tmp_path):
    before = manager.snapshot()
    r = manager.site(tmp_path, *FALSE)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0 and "has no custom-virustotal_ip <integration>" in out, out[-3000:]
    assert "Nothing was changed" in out
    assert printed_entry(out) == [{"name": "custom-virustotal_ip", "alert_format": "json",
                                   "rule_id": "5710,5712,5715,5716,5718,5719,5720,5758,5760,5763"}]
    assert manager.read(CONF) == manager.original_conf and manager.snapshot() == before


def test_false_with_the_printed_entry_deploys_without_touching_ossec_conf_and_reruns_change_nothing(manager, tmp_path):
    entry = printed_entry(" ".join(manager.site(tmp_path, "-e", '{"virustotal_ip_trigger_rule_ids": [5715]}',
                                                *FALSE).stdout.split()))
    assert entry == [{"name": "custom-virustotal_ip", "rule_id": "5715", "alert_format": "json"}]
    other_tool_writes(manager, entry)
    written = manager.read(CONF)
    manager.start_vt_server("ansible-test-key")
    deploy = ("-e", "virustotal_ip_api_url=http://127.0.0.1:8090/api/v3", *FALSE)

    r = manager.site(tmp_path, *deploy, api_key="ansible-test-key")
    assert r.returncode == 0, r.stdout[-3000:]
    assert manager.read(CONF) == written                                   # not a byte
    assert manager.exec("stat", "-c", "%a %U:%G", CONF).stdout.decode().split() == ["644", "root:wazuh"]
    alert = manager.enrichment_for("64.62.197.132")                        # the integration runs, once
    assert (alert["rule"]["id"], alert["data"]["virustotal_ip"]["verdict"]) == ("199901", "malicious")

    other_tool_writes(manager, entry)                                      # the other tool's next run
    r = manager.site(tmp_path, *deploy, api_key="ansible-test-key")
    assert r.returncode == 0 and "changed=0" in r.stdout, r.stdout[-3000:]
    assert manager.read(CONF) == written

    other_tool_writes(manager, [dict(entry[0], api_key="ansible-test-key")])   # the key in a 0644 file
    r = manager.site(tmp_path, *deploy, api_key="ansible-test-key")
    out = " ".join(r.stdout.split())
    assert r.returncode == 0 and "WARNING: the custom-virustotal_ip <integration>" in out, out[-3000:]
    assert "drop api_key from the wazuh_manager_integrations entry" in out


def test_true_refuses_when_another_tool_declares_the_integration_and_names_the_line(manager, tmp_path):
    other_tool_writes(manager, [{"name": "custom-virustotal_ip", "rule_id": "5715", "alert_format": "json"}])
    written, before = manager.read(CONF), manager.snapshot()
    line = next(i for i, text in enumerate(written.splitlines(), 1) if "<name>custom-virustotal_ip</name>" in text)
    r = manager.site(tmp_path)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0, out[-3000:]
    assert f"outside this role's block (line {line})" in out and "set virustotal_ip_manage_ossec_conf: false" in out
    assert manager.snapshot() == before                                     # ossec.conf included


def test_false_refuses_a_second_declaration_beside_the_roles_earlier_block(deployed, tmp_path):
    manager = deployed                                                      # the role's own block first
    conf = manager.read(CONF)
    head, _, block = conf.rpartition("<!-- BEGIN custom-virustotal_ip")
    head, end, tail = head.rpartition("</ossec_config>")             # inside the last block before ours
    entry = rendered({"name": "custom-virustotal_ip", "rule_id": "5715", "alert_format": "json"})
    manager.put(CONF, f"{head}{entry}\n{end}{tail}<!-- BEGIN custom-virustotal_ip{block}", mode="0660",
                owner="root:wazuh")
    conf = manager.read(CONF)
    r = manager.site(tmp_path, *FALSE)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0 and "declares custom-virustotal_ip 2 times" in out, out[-3000:]
    assert "and the block this role wrote earlier" in out
    assert manager.read(CONF) == conf


def test_false_refuses_active_response_which_needs_the_roles_block(manager, tmp_path):
    other_tool_writes(manager, [{"name": "custom-virustotal_ip", "rule_id": "5715", "alert_format": "json"}])
    before = manager.snapshot()
    r = manager.site(tmp_path, *FALSE, "-e", "virustotal_ip_active_response_enabled=true")
    out = " ".join(r.stdout.split())
    assert r.returncode != 0 and "virustotal_ip_active_response_enabled needs virustotal_ip_manage_ossec_conf: true" \
        in out, out[-3000:]
    assert "rules_id: '199901'" in out and manager.snapshot() == before
