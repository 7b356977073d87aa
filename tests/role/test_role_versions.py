"""The role deploys only to the Wazuh versions it supports (4.3 to 4.14), reading the version as
Wazuh reports it (`wazuh-control info -v`), before anything changes. Wazuh 5 is refused with
where to read what to do (docs/wazuh-5.md), whether it reports 5.x or is found by its own
layout (/var/wazuh-manager, with no wazuh-control under /var/ossec).

On Wazuh's own daemons (localhost/wazuh-manager-src at the current version sources.lock pins)
with the version wazuh-control reports changed: the one line of wazuh-control that sets it is
rewritten, as a package of that version would have it.
"""
from __future__ import annotations

import pytest
from harness import REPO
from manager_harness import OSSEC, Manager, deployed_image, manager_image

CONTROL = f"{OSSEC}/bin/wazuh-control"
WAZUH5_CONTROL = "/var/wazuh-manager/bin/wazuh-manager-control"     # Wazuh 5's own place and name
WAZUH5_DOC = str(REPO / "docs" / "wazuh-5.md")                      # the role runs from this checkout


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


@pytest.mark.parametrize("line, says, wazuh5", [
    ('VERSION="v5.0.0"', "Wazuh 5.0.0 on {host} has no wazuh-integratord (removed in 5.0)", True),
    ('VERSION="v4.15.0"', "Wazuh 4.15.0 on {host} is newer than 4.14, the newest version this role is tested with",
     False),
    ('VERSION="v4.2.2"', "Wazuh 4.2.2 on {host} is older than 4.3.0", False),
    ('VERSION=""', "Cannot read the Wazuh version on {host}", False),
], ids=["5.0", "4.15", "4.2", "unreadable"])
def test_an_unsupported_or_unreadable_version_is_refused_before_anything_changes(manager, tmp_path, line, says,
                                                                                 wazuh5):
    """Wazuh 5 is pointed to docs/wazuh-5.md, and not offered the override (the integration
    cannot run there); the others are offered it."""
    reports(manager, line)
    before = manager.snapshot()
    r = manager.site(tmp_path)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0, out[-3000:]
    assert says.format(host=manager.name) in out and "Nothing was changed" in out, out[-3000:]
    assert ("virustotal_ip_skip_version_check=true" in out) is not wazuh5, out[-3000:]
    assert (WAZUH5_DOC in out) is wazuh5, out[-3000:]
    assert manager.snapshot() == before


def test_a_wazuh_5_manager_is_named_and_pointed_to_wazuh_5_md_when_installing_or_removing(manager, tmp_path):
    """A Wazuh 5 manager lives under /var/wazuh-manager: with no wazuh-control under /var/ossec,
    the role says it found Wazuh 5 (not "no manager"), for the install and for the removal,
    and changes nothing."""
    manager.exec("mv", CONTROL, f"{CONTROL}.4x", check=True)
    manager.sh(f"mkdir -p {WAZUH5_CONTROL.rsplit('/', 1)[0]} && printf '#!/bin/sh\\necho v5.0.0\\n' > {WAZUH5_CONTROL} "
               f"&& chmod 0750 {WAZUH5_CONTROL}", check=True)
    try:
        before = manager.snapshot()
        for state in ("present", "absent"):
            r = manager.site(tmp_path, "-e", f"virustotal_ip_state={state}")
            out = " ".join(r.stdout.split())
            assert r.returncode != 0, out[-3000:]
            assert f"{manager.name} runs Wazuh 5 ({WAZUH5_CONTROL})" in out and WAZUH5_DOC in out, out[-3000:]
        assert manager.snapshot() == before
    finally:
        manager.exec("rm", "-rf", "/var/wazuh-manager")
        manager.exec("mv", f"{CONTROL}.4x", CONTROL, check=True)


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
