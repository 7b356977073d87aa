"""The role's promise on every entry point an administrator has: a change that does not
validate leaves every file it touched byte-identical, no backup files, the same daemons
(never restarted), and a message that says it rolled back and quotes the validator.

On Wazuh's own daemons (localhost/wazuh-manager-src). Each test starts a deployed manager, puts a rules file
in etc/rules/ that analysisd refuses (the manager keeps running its old configuration), then
makes a change through one entry point: untagged, each phase tag, several tags, --skip-tags,
--start-at-task, and a user's playbook with import_role/include_role under `tags:`; and
--skip-tags always, which would drop the rollback, is refused before anything changes.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from harness import REPO
from manager_harness import OSSEC, Manager, manager_image

BROKEN = '<group name="test,"><rule id="100900" level="17"><description>x</description></rule></group>\n'
LEVEL_13 = ("-e", "virustotal_ip_rules_level_malicious=13")
NEW_TRIGGER = ("-e", json.dumps({"virustotal_ip_trigger_groups": ["sshd", "authentication_success"]}))


@pytest.fixture
def manager(deployed):
    """A deployed manager (conftest.py) with a rules file that analysisd refuses."""
    deployed.put(f"{OSSEC}/etc/rules/zz_broken.xml", BROKEN, mode="0660", owner="wazuh:wazuh")
    return deployed


def assert_rolled_back(m: Manager, before: dict, r, *, mode_changed_by_hand: str = "") -> None:
    out = " ".join(r.stdout.split())
    assert r.returncode != 0, out[-3000:]
    assert "The change was rolled back" in out, out[-3000:]
    assert "Error loading the rules: 'etc/rules/zz_broken.xml'" in out          # the validator, quoted
    assert m.snapshot() == before                  # every file, owner, mode; no backups; the same daemons
    # the package's bytecode still matches the package (Python would otherwise compile it every run)
    code = f"import sys; sys.path.append('{OSSEC}/integrations'); import virustotal_ip.cli"
    loaded = m.exec(f"{OSSEC}/framework/python/bin/python3", "-I", "-S", "-B", "-v", "-c", code)
    assert f"matches {OSSEC}/integrations/virustotal_ip/verdict.py" in loaded.stderr.decode()
    modes = m.sh(f"stat -c '%U:%G %a %n' {OSSEC}/integrations/virustotal_ip/*.py").stdout.decode().split("\n")
    checked = [line for line in modes if line and line.split(" ", 2)[2] != mode_changed_by_hand]
    assert checked and all(line.startswith("root:wazuh 640 ") for line in checked), modes


def changed_files_dir(tmp_path: Path) -> Path:
    """A copy of files/ whose script differs by one comment line: an install-phase change."""
    copy = tmp_path / "files"
    shutil.copytree(REPO / "files", copy)
    for changed in ("custom-virustotal_ip.py", "virustotal_ip/verdict.py"):
        with open(copy / changed, "a") as fh:
            fh.write("# a changed copy\n")
    return copy


@pytest.mark.parametrize("args", [
    LEVEL_13,
    ("--tags", "virustotal_ip_rules", *LEVEL_13),
    ("--tags", "virustotal_ip_configure", *NEW_TRIGGER),
    ("--tags", "virustotal_ip_rules,virustotal_ip_configure", *LEVEL_13, *NEW_TRIGGER),
    ("--skip-tags", "virustotal_ip_install", *LEVEL_13),
    ("--skip-tags", "virustotal_ip_configure", *LEVEL_13),
], ids=["untagged", "tag-rules", "tag-configure", "tags-rules-configure", "skip-install", "skip-configure"])
def test_a_change_that_does_not_validate_is_rolled_back(manager, tmp_path, args):
    before = manager.snapshot()
    assert_rolled_back(manager, before, manager.site(tmp_path, *args))


def test_starting_after_the_checks_changes_nothing_and_says_why(manager, tmp_path):
    before = manager.snapshot()
    r = manager.site(tmp_path, "--start-at-task",
                     "virustotal_ip : Install the rules (standalone manager or cluster master)", *LEVEL_13)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0, out[-3000:]
    assert "The change was rolled back" in out and "--start-at-task starts after them" in out, out[-3000:]
    assert manager.snapshot() == before


def test_an_install_phase_change_alone_is_rolled_back_modes_set_by_hand_included(manager, tmp_path):
    """The run replaces two files and sets the manifest's mode on a third that an administrator
    made world-readable; the rollback puts all three back as they were (it removed that file
    when a mode-only change looked like a file the run had created)."""
    by_hand = f"{OSSEC}/integrations/virustotal_ip/address.py"
    manager.exec("chmod", "0644", by_hand, check=True)
    before = manager.snapshot()
    r = manager.site(tmp_path, "--tags", "virustotal_ip_install", "-e",
                     f"virustotal_ip_files_dir={changed_files_dir(tmp_path)}")
    assert_rolled_back(manager, before, r, mode_changed_by_hand=by_hand)


def user_playbook(tmp_path: Path, how: str, tags: str) -> Path:
    book = tmp_path / "user.yml"
    book.write_text(f"""---
- name: A user's playbook
  hosts: wazuh_managers
  gather_facts: false
  tasks:
    - name: Deploy custom-virustotal_ip
      ansible.builtin.{how}:
        name: virustotal_ip
      tags: [{tags}]
""")
    return book


@pytest.mark.parametrize("how", ["import_role", "include_role"])
def test_a_users_playbook_with_the_role_under_tags_rolls_back_or_says_it_did_nothing(manager, tmp_path, how):
    before = manager.snapshot()
    r = manager.site(tmp_path, "--tags", "wazuh_vt", *LEVEL_13,
                     playbook=user_playbook(tmp_path, how, "wazuh_vt"))
    if how == "import_role":        # the tag reaches every task: the change is made, then undone
        assert_rolled_back(manager, before, r)
    else:                           # the tag stays on the include: nothing changes, and it says so
        out = " ".join(r.stdout.split())
        assert r.returncode == 0, out[-3000:]
        assert "WARNING: virustotal_ip changed nothing" in out and "apply: {tags: [...]}" in out, out[-3000:]
        assert manager.snapshot() == before


def test_skipping_the_always_tag_is_refused_before_anything_changes(manager, tmp_path):
    before = manager.snapshot()
    r = manager.site(tmp_path, "--skip-tags", "always", *LEVEL_13)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0 and "--skip-tags always would skip this role's validation and rollback" in out, out[-3000:]
    assert manager.snapshot() == before


def test_the_drain_schedule_is_part_of_the_change_and_rolled_back_with_it(tmp_path):
    """A first install on a manager with a cron daemon, whose rules directory holds a file
    analysisd refuses: the cron entry written before validation goes with the rest."""
    m = Manager(manager_image("wazuh-src", "the role's rollback on every entry point"))
    try:
        m.put("/usr/sbin/cron", "#!/bin/sh\nexit 0\n", mode="0755", owner="root:root")  # its presence is what counts
        m.exec("mkdir", "-p", "/etc/cron.d", check=True)
        m.put(f"{OSSEC}/etc/rules/zz_broken.xml", BROKEN, mode="0660", owner="wazuh:wazuh")
        conf, cron_d = m.read(f"{OSSEC}/etc/ossec.conf"), m.sh("ls -A /etc/cron.d").stdout
        r = m.site(tmp_path)
        out = " ".join(r.stdout.split())
        assert r.returncode != 0 and "The change was rolled back" in out, out[-3000:]
        lines = [line for line in r.stdout.splitlines() if line.strip()]
        task = next((i for i, line in enumerate(lines) if "TASK [virustotal_ip : Schedule --drain with cron]" in line),
                    None)
        assert task is not None, "the schedule was not written within the change"
        assert lines[task + 1].startswith("changed:"), lines[task:task + 2]     # it was written
        assert m.sh("ls -A /etc/cron.d").stdout == cron_d               # and is gone, with no backup
        assert m.read(f"{OSSEC}/etc/ossec.conf") == conf
        assert m.exec("test", "-e", f"{OSSEC}/integrations/custom-virustotal_ip.py").returncode != 0
        assert m.exec("test", "-e", f"{OSSEC}/integrations/virustotal_ip").returncode != 0    # the package too
    finally:
        m.stop()
