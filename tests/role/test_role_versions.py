"""The role deploys only to the Wazuh versions it supports (4.3 up to, not including, 5.0),
reading the version as Wazuh reports it (`wazuh-control info -v`), before anything changes.

On Wazuh's own daemons (localhost/wazuh-manager-src at the current version sources.lock pins)
with the version wazuh-control reports changed: the one line of wazuh-control that sets it is
rewritten, as a package of that version would have it.
"""
from __future__ import annotations

import pytest
from manager_harness import OSSEC, Manager, deployed_image, manager_image

CONTROL = f"{OSSEC}/bin/wazuh-control"


@pytest.fixture(scope="module")
def manager():
    """A deployed manager (manager_harness.deployed_image): the guard protects installs and
    upgrades alike; the oldest version's run rewrites the block without timeout and retries."""
    manager_image("wazuh-src", "the role's version guard")
    m = Manager(deployed_image())
    yield m
    m.stop()


def reports(m: Manager, line: str) -> None:
    """Make wazuh-control report another version (`line` replaces its VERSION= line)."""
    m.exec("sed", "-i", f"s/^VERSION=.*/{line}/", CONTROL, check=True)


@pytest.mark.parametrize("line, says", [
    ('VERSION="v5.0.0"', "Wazuh 5.0.0 on {host} has no wazuh-integratord (removed in 5.0)"),
    ('VERSION="v4.2.2"', "Wazuh 4.2.2 on {host} is older than 4.3.0"),
    ('VERSION=""', "Cannot read the Wazuh version on {host}"),
], ids=["5.0", "4.2", "unreadable"])
def test_an_unsupported_or_unreadable_version_is_refused_before_anything_changes(manager, tmp_path, line, says):
    reports(manager, line)
    before = manager.snapshot()
    r = manager.site(tmp_path)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0, out[-3000:]
    assert says.format(host=manager.name) in out and "Nothing was changed" in out, out[-3000:]
    assert "virustotal_ip_skip_version_check=true" in out
    assert manager.snapshot() == before


def test_the_oldest_supported_version_is_accepted_and_deployed_without_timeout_and_retries(manager, tmp_path):
    reports(manager, 'VERSION="v4.3.0"')
    r = manager.site(tmp_path)
    assert r.returncode == 0, r.stdout[-3000:]
    block = manager.role_block()
    assert "<name>custom-virustotal_ip</name>" in block and "<timeout>" not in block, block


def test_the_check_can_be_skipped_and_uninstalling_needs_no_supported_version(manager, tmp_path):
    reports(manager, 'VERSION="unknown"')
    r = manager.site(tmp_path, "-e", "virustotal_ip_skip_version_check=true")
    assert r.returncode == 0, r.stdout[-3000:]
    reports(manager, 'VERSION="v5.0.0"')            # upgraded with the integration still there
    r = manager.site(tmp_path, "-e", "virustotal_ip_state=absent")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "custom-virustotal_ip" not in manager.read(f"{OSSEC}/etc/ossec.conf")
