"""A dry run that tells the truth, on Wazuh's own daemons: in each state a manager can be in
(fresh, as deployed, a variable changed and changed back, other code, half-installed by hand),
`--check --diff` of site.yml and of the uninstall passes, changes nothing (content, owners,
modes, daemons), shows what a real run would write (the ossec.conf block, the code, the config
file with the API key masked), never shows the key, prints no warning, and announces every task
the real run that follows then changes, the restart among them.

It once failed on a fresh manager: the handler that waits for the restarted integratord waited
60 s for a restart check mode never made, and the play ended failed. And the restart was only
"skipping" in a dry run (a command does not run in check mode), so the dry run of a change that
restarts the manager did not say it would.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from ansible_output import changed_tasks, warnings
from manager_harness import OSSEC, REPO, Manager, manager_image

KEY = "tag-test-key"       # the deployed image's key (Manager.site's default): its config is current
UNINSTALL = REPO / "playbooks" / "uninstall.yml"
RESTART = "virustotal_ip : Restart wazuh-manager"
# Steps of the real run that follow from a change the dry run announced but cannot show
# themselves changing: the package is compiled from the code the real run copied; the backups
# the real run made of the files it changed are removed once they validate.
FOLLOW_ON = {
    "virustotal_ip : Compile the package with the manager's Python",
    "virustotal_ip : Remove the backups of the files that validated",
}


def dry_run(m: Manager, tmp_path: Path, *args: str, playbook: Path = REPO / "site.yml") -> tuple:
    """`--check --diff`: it passes, changes nothing, never shows the key and prints no warning.
    Returns (its output, its changed tasks)."""
    before = m.snapshot()
    dry = m.site(tmp_path, "--check", "--diff", *args, playbook=playbook)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert m.snapshot() == before, "the dry run changed the manager"
    assert KEY not in dry.stdout + dry.stderr
    printed = warnings(dry.stdout, dry.stderr)
    assert not printed, printed
    return dry.stdout, changed_tasks(dry.stdout)


def dry_then_real(m: Manager, tmp_path: Path, *args: str, playbook: Path = REPO / "site.yml") -> tuple:
    """dry_run(), then the same run for real: it passes, prints no warning, and changes nothing
    the dry run did not announce. Returns (the dry run's output, its changed tasks, the real
    run's)."""
    out, announced = dry_run(m, tmp_path, *args, playbook=playbook)
    real = m.site(tmp_path, "--diff", *args, playbook=playbook)
    assert real.returncode == 0, real.stdout[-3000:]
    printed = warnings(real.stdout, real.stderr)
    assert not printed, printed
    made = changed_tasks(real.stdout)
    assert made - FOLLOW_ON <= announced, f"changed but not announced by the dry run: {made - FOLLOW_ON - announced}"
    return out, announced, made


def restarted(m: Manager, pids: str) -> bool:
    return m.pid_files() != pids


@pytest.fixture
def fresh():
    m = Manager(manager_image("wazuh-src", "the dry run on a fresh manager"))
    yield m
    m.stop()


def test_a_dry_run_on_a_fresh_manager_shows_the_block_and_the_config_and_announces_the_restart(fresh, tmp_path):
    out, announced = dry_run(fresh, tmp_path)
    assert "+<!-- BEGIN custom-virustotal_ip" in out                     # the ossec.conf block, as a diff
    assert '+  "api_key": "********",' in out                             # the config file, as a diff
    assert RESTART in announced                                           # the restart, announced
    assert "Check mode: a real run would restart wazuh-manager" in " ".join(out.split())
    assert "Check mode: the changes above were not written, so wazuh-analysisd -t" in " ".join(out.split())
    waited = out.split("RUNNING HANDLER [virustotal_ip : Wait for wazuh-integratord]", 1)[1].split("\n", 2)[1]
    assert waited.startswith("skipping:"), waited                      # not 30 tries at a daemon never restarted


def test_a_dry_run_of_the_uninstall_on_a_fresh_manager_passes_and_changes_nothing(fresh, tmp_path):
    dry_run(fresh, tmp_path, playbook=UNINSTALL)


def test_a_dry_run_announces_each_variable_change_the_change_back_and_the_uninstall(deployed, tmp_path):
    m = deployed
    pids = m.pid_files()
    out, announced = dry_run(m, tmp_path)
    assert announced == set(), out[-3000:]             # as deployed: nothing to do, nothing announced

    changes = ("-e", "virustotal_ip_mal_strong_min=5",                      # a threshold: the config file
               "-e", '{"virustotal_ip_trigger_groups": ["sshd", "authentication_failed"]}',  # ossec.conf
               "-e", "virustotal_ip_active_response_enabled=true",           # ossec.conf
               "-e", "virustotal_ip_active_response_command=host-deny")
    out, announced, made = dry_then_real(m, tmp_path, *changes)
    assert "+    <group>sshd,authentication_failed</group>" in out          # the ossec.conf block, as a diff
    assert "+    <command>host-deny</command>" in out
    assert '-  "mal_strong_min": 3,' in out and '+  "mal_strong_min": 5,' in out   # the config file, key masked
    assert RESTART in announced and restarted(m, pids)
    assert "virustotal_ip : Write the integration's configuration (read on every alert; no restart needed)" in made
    assert "<command>host-deny</command>" in m.role_block()

    pids = m.pid_files()
    out, announced, made = dry_then_real(m, tmp_path)                       # back to the defaults: AR off
    assert "-    <command>host-deny</command>" in out
    assert RESTART in announced and restarted(m, pids)
    assert "<active-response>" not in m.role_block()

    pids = m.pid_files()
    out, announced, made = dry_then_real(m, tmp_path, playbook=UNINSTALL)   # uninstall, fully installed
    assert "-<!-- BEGIN custom-virustotal_ip" in out                        # the block's removal, as a diff
    assert "virustotal_ip : Remove the <integration> block from ossec.conf" in made
    assert RESTART in announced and restarted(m, pids)
    assert m.exec("test", "-e", f"{OSSEC}/integrations/virustotal_ip").returncode == 1


def test_a_dry_run_announces_the_repair_of_other_code_and_removed_files_and_then_the_uninstall(deployed, tmp_path):
    m = deployed
    package = f"{OSSEC}/integrations/virustotal_ip"
    removed = (f"{OSSEC}/etc/rules/virustotal_ip_rules.xml", f"{package}/verdict.py")
    m.sh(f"echo '# an older release' >> {package}/wazuh.py")              # the code of another version
    m.exec("rm", *removed, check=True)                                     # and files removed by hand
    pids = m.pid_files()
    out, announced, made = dry_then_real(m, tmp_path)
    assert "-# an older release" in out                                     # the code, as a diff
    assert {"virustotal_ip : Install the wrapper, the entry point and the package",
            "virustotal_ip : Install the rules (standalone manager or cluster master)"} <= made, made
    assert RESTART in announced and restarted(m, pids)
    assert m.exec("test", "-f", removed[0]).returncode == m.exec("test", "-f", removed[1]).returncode == 0
    assert "older release" not in m.read(f"{package}/wazuh.py")

    m.exec("rm", *removed, check=True)
    pids = m.pid_files()
    out, announced, made = dry_then_real(m, tmp_path, playbook=UNINSTALL)   # uninstall, half-installed
    assert "-<!-- BEGIN custom-virustotal_ip" in out
    assert "virustotal_ip : Remove the code, rules, configuration, state and schedule" in made
    assert RESTART in announced and restarted(m, pids)
