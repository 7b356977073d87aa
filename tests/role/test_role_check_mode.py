"""The dry run an administrator starts with, `--check --diff`, on Wazuh's own daemons: on a
manager where the integration is not installed yet it passes, shows what a real run would
write (the ossec.conf block, the config file with the API key masked), announces the restart it
would make as a change, prints no warning, and changes nothing.

It once failed there: the handler that waits for the restarted integratord waited 60 s for a
restart check mode never made, and the play ended failed.
"""
from __future__ import annotations

import pytest
from ansible_output import changed_tasks, warnings
from manager_harness import REPO, Manager, manager_image

KEY = "check-mode-key"


@pytest.fixture
def fresh():
    m = Manager(manager_image("wazuh-src", "the dry run on a fresh manager"))
    yield m
    m.stop()


def test_a_dry_run_on_a_fresh_manager_passes_shows_the_block_announces_the_restart_and_changes_nothing(
        fresh, tmp_path):
    before = fresh.snapshot()
    r = fresh.site(tmp_path, "--check", "--diff", api_key=KEY)
    out = r.stdout
    assert r.returncode == 0, out[-3000:]
    assert "+<!-- BEGIN custom-virustotal_ip" in out                     # the ossec.conf block, as a diff
    assert '+  "api_key": "********",' in out                             # the config file, as a diff
    assert "virustotal_ip : Restart wazuh-manager" in changed_tasks(out)  # the restart, announced
    assert "Check mode: a real run would restart wazuh-manager" in " ".join(out.split())
    assert "Check mode: the changes above were not written, so wazuh-analysisd -t" in " ".join(out.split())
    waited = out.split("RUNNING HANDLER [virustotal_ip : Wait for wazuh-integratord]", 1)[1].split("\n", 2)[1]
    assert waited.startswith("skipping:"), waited                      # not 30 tries at a daemon never restarted
    assert KEY not in out and KEY not in r.stderr
    printed = warnings(out, r.stderr)
    assert not printed, printed
    assert fresh.snapshot() == before


def test_a_dry_run_of_the_uninstall_on_a_fresh_manager_passes_and_changes_nothing(fresh, tmp_path):
    before = fresh.snapshot()
    r = fresh.site(tmp_path, "--check", "--diff", playbook=REPO / "playbooks" / "uninstall.yml")
    assert r.returncode == 0, r.stdout[-3000:]
    printed = warnings(r.stdout, r.stderr)
    assert not printed, printed
    assert fresh.snapshot() == before
