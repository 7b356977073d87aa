"""site.yml run by phase tag (virustotal_ip_install / _configure / _rules) against Wazuh's own
daemons (localhost/wazuh-manager-src): each phase alone changes, validates and restarts as a
full run does.

A phase run once failed: the validation step tested registers of phases that --tags skipped.
Values given with -e once reached the config file as strings, which the script ignores.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from manager_harness import OSSEC, Manager


def site(manager: Manager, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return manager.site(tmp_path, *args)


def test_each_phase_tag_runs_alone(deployed, tmp_path):
    manager = deployed
    pids = manager.pid_files()

    r = site(manager, tmp_path, "--tags", "virustotal_ip_rules", "-e", "virustotal_ip_rules_level_malicious=13")
    assert r.returncode == 0, r.stdout[-3000:]
    assert '<rule id="199901" level="13">' in manager.read(f"{OSSEC}/etc/rules/virustotal_ip_rules.xml")
    assert manager.pid_files() != pids          # rules changed: restarted

    pids = manager.pid_files()
    # values given with -e are strings: the config file must still get a number and a boolean
    r = site(manager, tmp_path, "--tags", "virustotal_ip_configure", "-e", "virustotal_ip_mal_strong_min=5",
             "-e", "virustotal_ip_pivot_enabled=false", "-e", "virustotal_ip_rules_level_malicious=13")
    assert r.returncode == 0, r.stdout[-3000:]
    config = json.loads(manager.read(f"{OSSEC}/etc/custom-virustotal_ip.json"))
    assert (config["mal_strong_min"], config["pivot_enabled"]) == (5, False)
    assert manager.pid_files() == pids          # thresholds only: no restart

    r = site(manager, tmp_path, "--tags", "virustotal_ip_install", "-e", "virustotal_ip_rules_level_malicious=13")
    assert r.returncode == 0, r.stdout[-3000:]
