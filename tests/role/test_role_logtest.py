"""The role proves on the manager that the rules it installed fire: analysisd's own logtest
must raise rule base + 1 for a malicious verdict, else the change is rolled back like a failed
validation, naming the rule that fired instead. On Wazuh's own daemons (localhost/wazuh-manager-src).
"""
from __future__ import annotations

import pytest
from manager_harness import OSSEC, Manager, manager_image

SHADOW = """<group name="local,">
  <rule id="100500" level="14">
    <if_sid>87100</if_sid>
    <field name="integration">virustotal_ip</field>
    <description>every VirusTotal IP event, escalated</description>
  </rule>
</group>
"""


@pytest.fixture
def manager():
    m = Manager(manager_image("wazuh-src", "the role's logtest proof"))
    yield m
    m.stop()


def untouched(manager: Manager, before: list) -> None:
    """Every file as it was (content, owner, mode; no backups), none of ours installed, the
    manager never restarted (manager_harness.Manager.snapshot)."""
    assert manager.snapshot() == before
    assert manager.exec("test", "-e", f"{OSSEC}/etc/rules/virustotal_ip_rules.xml").returncode != 0
    assert manager.exec("test", "-e", f"{OSSEC}/integrations/custom-virustotal_ip").returncode != 0


def test_a_user_rule_that_shadows_ours_is_refused_and_named(manager, tmp_path):
    manager.put(f"{OSSEC}/etc/rules/local_rules.xml", SHADOW, mode="0660", owner="wazuh:wazuh")
    before = manager.snapshot()
    r = manager.site(tmp_path)
    assert r.returncode != 0
    assert "The change was rolled back" in r.stdout
    assert ('analysisd\'s logtest raised rule 100500 (level 14, "every VirusTotal IP event, escalated")'
            in " ".join(r.stdout.split()))
    untouched(manager, before)


def test_a_stopped_analysisd_gets_a_clear_message_in_bounded_time(manager, tmp_path):
    assert manager.control("stop").returncode == 0
    before = manager.snapshot()
    r = manager.site(tmp_path, "-e", "_virustotal_ip_logtest_wait=3")
    assert r.returncode != 0
    out = " ".join(r.stdout.split())
    assert "Cannot prove the rules fire: no answer from wazuh-analysisd" in out and "is the manager running?" in out
    untouched(manager, before)


# An administrator's overwrite of our base rule, say to reword it, that drops its <location>.
UNGUARDED = """<group name="local,virustotal,vt_ip,">
  <rule id="199900" level="3" overwrite="yes">
    <if_sid>87100</if_sid>
    <field name="integration">^virustotal_ip$</field>
    <description>VirusTotal IP reputation event (reworded)</description>
  </rule>
</group>
"""


def test_rules_that_let_a_log_line_raise_our_verdict_are_refused_and_named(manager, tmp_path):
    """The proof also sends our event from a log file's location: were the base rule not bound to our
    location, a line in any monitored log could raise 199901 and drive Active Response."""
    manager.put(f"{OSSEC}/etc/rules/zz_reworded.xml", UNGUARDED, mode="0660", owner="wazuh:wazuh")
    before = manager.snapshot()
    r = manager.site(tmp_path)
    assert r.returncode != 0
    out = " ".join(r.stdout.split())
    assert "The change was rolled back" in out
    assert ("A line shaped like our event in a log file (location /var/log/auth.log) raised our rule 199901: the "
            "rules on disk do not restrict our events to our own location" in out)
    untouched(manager, before)
