"""Active Response on a malicious verdict, on Wazuh's own analysisd, integratord and execd.

An sshd login from the original design's malicious address and one from its unknown address
go to analysisd; the integration looks both up (VirusTotal v3 stand-in in the container); the
enrichment of the malicious one raises rule 199901 with data.srcip, and execd runs Wazuh's own
host-deny, which writes the address into /etc/hosts.deny.
"""
from __future__ import annotations

import pytest
from manager_harness import OSSEC, Manager, manager_image

KEY = "ar-test-key"
MALICIOUS, UNKNOWN = "64.62.197.132", "108.157.98.17"
AR = ("-e", "virustotal_ip_api_url=http://127.0.0.1:8090/api/v3",
      "-e", "virustotal_ip_active_response_command=host-deny")


@pytest.fixture
def manager(deployed):
    """A deployed manager (conftest.py) with the VirusTotal stand-in: turning Active Response
    on is a change to an installed integration, as in the field."""
    deployed.start_vt_server(KEY)
    return deployed


@pytest.fixture
def fresh():
    m = Manager(manager_image("wazuh-src", "Active Response with Wazuh's own execd"))
    yield m
    m.stop()


def test_a_malicious_verdict_is_blocked_by_host_deny_and_an_unknown_one_is_not(manager, tmp_path):
    r = manager.site(tmp_path, *AR, "-e", "virustotal_ip_active_response_enabled=true", api_key=KEY)
    assert r.returncode == 0, r.stdout[-3000:]
    assert ("<active-response>\n    <disabled>no</disabled>\n    <command>host-deny</command>\n"
            "    <location>local</location>\n    <rules_id>199901</rules_id>\n    <timeout>600</timeout>\n"
            "  </active-response>") in manager.role_block()

    unknown = manager.enrichment_for(UNKNOWN)
    assert (unknown["rule"]["id"], unknown["data"]["srcip"]) == ("199903", UNKNOWN)
    malicious = manager.enrichment_for(MALICIOUS)
    assert (malicious["rule"]["id"], malicious["data"]["srcip"]) == ("199901", MALICIOUS)
    manager.wait(lambda: f"ALL:{MALICIOUS}" in manager.hosts_deny(), 30, f"{MALICIOUS} in /etc/hosts.deny")
    # execd runs responses in order: the unknown verdict, alerted first, would be there by now
    assert UNKNOWN not in manager.hosts_deny()
    log = manager.read(f"{OSSEC}/logs/active-responses.log")
    assert "host-deny" in log and MALICIOUS in log and UNKNOWN not in log


def test_turning_it_off_removes_the_active_response_and_validates(manager, tmp_path):
    on = ("-e", "virustotal_ip_active_response_enabled=true", "-e", "virustotal_ip_active_response_timeout=0")
    assert manager.site(tmp_path, *AR, *on, api_key=KEY).returncode == 0
    block = manager.role_block()
    assert "<active-response>" in block and "<timeout>" not in block.split("<active-response>")[1]
    r = manager.site(tmp_path, *AR, api_key=KEY)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "<active-response>" not in manager.role_block()
    assert "TASK [virustotal_ip : Validate the manager's configuration]" in r.stdout


def test_a_command_ossec_conf_does_not_define_is_refused_before_anything_changes(fresh, tmp_path):
    manager = fresh
    conf = manager.read(f"{OSSEC}/etc/ossec.conf")
    r = manager.site(tmp_path, *AR, "-e", "virustotal_ip_active_response_enabled=true",
                     "-e", "virustotal_ip_active_response_command=block-everything", api_key=KEY)
    out = " ".join(r.stdout.split())
    assert r.returncode != 0 and "defines no <command> of that name" in out, out[-3000:]
    assert manager.read(f"{OSSEC}/etc/ossec.conf") == conf
    assert manager.exec("test", "-e", f"{OSSEC}/integrations/custom-virustotal_ip.py").returncode != 0


def test_an_address_on_the_white_list_is_never_blocked_and_its_neighbour_is(manager, tmp_path):
    """virustotal_ip_active_response_white_list becomes Wazuh's <global><white_list>, which
    analysisd checks before any response: a malicious verdict for a listed address blocks nothing."""
    neighbour = "64.62.197.133"
    r = manager.site(tmp_path, *AR, "-e", "virustotal_ip_active_response_enabled=true",
                     "-e", f'{{"virustotal_ip_active_response_white_list": ["{MALICIOUS}", "198.51.100.0/24"]}}',
                     api_key=KEY)
    assert r.returncode == 0, r.stdout[-3000:]
    assert ("  <global>\n    <white_list>64.62.197.132</white_list>\n    <white_list>198.51.100.0/24</white_list>\n"
            "  </global>\n") in manager.role_block()
    listed = manager.enrichment_for(MALICIOUS)
    assert (listed["rule"]["id"], listed["data"]["srcip"]) == ("199901", MALICIOUS)
    blocked = manager.enrichment_for(neighbour)
    assert (blocked["rule"]["id"], blocked["data"]["srcip"]) == ("199901", neighbour)
    manager.wait(lambda: f"ALL:{neighbour}" in manager.hosts_deny(), 30, f"{neighbour} in /etc/hosts.deny")
    # execd runs responses in order: the listed address, alerted first, would be there by now
    assert f"ALL:{MALICIOUS}\n" not in manager.hosts_deny() + "\n"
    assert MALICIOUS not in manager.read(f"{OSSEC}/logs/active-responses.log")
