"""site.yml run by phase tag (virustotal_ip_install / _configure / _rules) against Wazuh's own
daemons (localhost/wazuh-manager-src): each phase alone changes, validates and restarts as a
full run does.

A phase run once failed: the validation step tested registers of phases that --tags skipped.
Values given with -e once reached the config file as strings, which the script ignores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO
from manager_harness import OSSEC, Manager, manager_image


@pytest.fixture
def manager():
    m = Manager(manager_image("wazuh-src", "role tag runs"))
    yield m
    m.stop()


def site(manager: Manager, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(f"""all:
  children:
    wazuh_managers:
      children:
        wazuh_master:
          hosts:
            {manager.name}:
              ansible_connection: community.docker.docker
              ansible_become: false
              virustotal_ip_api_key: tag-test-key
""")
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([str(bindir / "ansible-playbook"), "-i", str(inventory), str(REPO / "site.yml"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)


def test_each_phase_tag_runs_alone(manager, tmp_path):
    assert site(manager, tmp_path).returncode == 0
    pids = manager.sh(f"ls {OSSEC}/var/run").stdout

    r = site(manager, tmp_path, "--tags", "virustotal_ip_rules", "-e", "virustotal_ip_rules_level_malicious=13")
    assert r.returncode == 0, r.stdout[-3000:]
    assert '<rule id="199901" level="13">' in manager.read(f"{OSSEC}/etc/rules/virustotal_ip_rules.xml")
    assert manager.sh(f"ls {OSSEC}/var/run").stdout != pids          # rules changed: restarted

    pids = manager.sh(f"ls {OSSEC}/var/run").stdout
    # values given with -e are strings: the config file must still get a number and a boolean
    r = site(manager, tmp_path, "--tags", "virustotal_ip_configure", "-e", "virustotal_ip_mal_strong_min=5",
             "-e", "virustotal_ip_pivot_enabled=false", "-e", "virustotal_ip_rules_level_malicious=13")
    assert r.returncode == 0, r.stdout[-3000:]
    config = json.loads(manager.read(f"{OSSEC}/etc/custom-virustotal_ip.json"))
    assert (config["mal_strong_min"], config["pivot_enabled"]) == (5, False)
    assert manager.sh(f"ls {OSSEC}/var/run").stdout == pids          # thresholds only: no restart

    r = site(manager, tmp_path, "--tags", "virustotal_ip_install", "-e", "virustotal_ip_rules_level_malicious=13")
    assert r.returncode == 0, r.stdout[-3000:]
