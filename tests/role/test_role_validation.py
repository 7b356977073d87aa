"""The role refuses bad variables before it changes anything, naming the variable.

Runs the real role with ansible-playbook on this machine (connection local) against a Wazuh
home that does not exist: validation comes first, so a bad variable fails with its name, and a
good set gets as far as the probe ("No Wazuh manager at ..."), having changed nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO

GOOD = {"virustotal_ip_api_key": "k"}


def apply_role(tmp_path: Path, overrides: dict) -> subprocess.CompletedProcess:
    home = tmp_path / "no-wazuh-here"
    variables = {**GOOD, "virustotal_ip_wazuh_home": str(home), **overrides}
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"name": "Apply", "hosts": "localhost", "connection": "local",
                                     "gather_facts": False,
                                     "roles": [{"role": "virustotal_ip", "vars": variables}]}]))
    bindir = Path(sys.executable).parent
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
               ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               PATH=f"{bindir}:{os.environ['PATH']}")
    r = subprocess.run([str(bindir / "ansible-playbook"), str(playbook)], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=120, check=False)
    assert not home.exists()          # nothing was created on the way
    return r


@pytest.mark.parametrize("overrides,named", [
    ({"virustotal_ip_api_key": ""}, "virustotal_ip_api_key is empty"),
    ({"virustotal_ip_timeout": "ten"}, "virustotal_ip_timeout"),
    ({"virustotal_ip_state": "gone"}, "virustotal_ip_state"),
    ({"virustotal_ip_risk_tags": "tor"}, None),   # a string is a one-item list to argument_specs
    ({"virustotal_ip_rules_level_malicious": 17}, "virustotal_ip_rules_level_malicious is 17"),
    ({"virustotal_ip_pivot_limit": 0}, "virustotal_ip_pivot_limit is 0"),
    ({"virustotal_ip_rules_id_base": 999999}, "virustotal_ip_rules_id_base is 999999"),
    ({"virustotal_ip_trigger_groups": ["sshd", "virustotal"]}, "virustotal_ip_trigger_groups"),
    ({"virustotal_ip_trigger_groups": [], "virustotal_ip_trigger_rule_ids": [199903]},
     "virustotal_ip_trigger_rule_ids"),
    ({"virustotal_ip_trigger_groups": [], "virustotal_ip_trigger_level": 10}, "need at least one entry"),
    ({"virustotal_ip_trigger_groups": ["sshd,web"]}, "take no commas"),
    ({"virustotal_ip_cache_ttl_hours": {"weird": 1}}, "virustotal_ip_cache_ttl_hours"),
    ({"virustotal_ip_api_url": "ftp://x"}, "virustotal_ip_api_url"),
    ({"virustotal_ip_active_response_white_list": ["10.0.0.0/8", "2001:db8::1"]},
     'must hold IPv4 addresses or CIDRs (192.0.2.10, 10.0.0.0/8), not ["2001:db8::1"]'),
    ({"virustotal_ip_active_response_white_list": ["10.0.0.256", "10.0.0.0/33"]}, '["10.0.0.256", "10.0.0.0/33"]'),
    ({"virustotal_ip_active_response_white_list": ["192.0.2.10", "10.0.0.0/8"]}, None),
    ({"virustotal_ip_active_response_white_list": ["10.0.0.1"], "virustotal_ip_manage_ossec_conf": False},
     "virustotal_ip_active_response_white_list needs virustotal_ip_manage_ossec_conf: true"),
], ids=["no-key", "type", "choice", "string-as-list", "level-17", "pivot-limit-0", "id-7-digits",
        "loop-group", "loop-rule-id", "level-only-trigger", "comma-in-group", "ttl-key", "url",
        "white-list-ipv6", "white-list-bad-octet", "white-list-good", "white-list-without-block"])
def test_bad_variable_fails_before_anything_changes_naming_it(tmp_path, overrides, named):
    r = apply_role(tmp_path, overrides)
    output = r.stdout + r.stderr
    assert r.returncode != 0
    if named is None:
        assert "No Wazuh manager at" in output       # accepted, then stopped at the probe
    else:
        assert named in output, output[-3000:]
        assert "No Wazuh manager at" not in output   # refused before the probe


def test_good_variables_pass_validation_and_stop_at_the_missing_manager(tmp_path):
    r = apply_role(tmp_path, {"virustotal_ip_api_key": "s3cr3t-vt-key-value"})
    assert r.returncode != 0
    assert "No Wazuh manager at" in r.stdout and "set virustotal_ip_wazuh_home" in r.stdout
    assert "s3cr3t-vt-key-value" not in r.stdout + r.stderr
