"""An agent's login, enriched on the manager and blocked on that agent, on Wazuh's own daemons.

The manager (localhost/wazuh-manager-src: analysisd, integratord, execd, wazuh-db, remoted,
authd) as site.yml deployed it, with Active Response on; beside it an agent
(localhost/wazuh-agent-src: agentd, logcollector, execd) that enrolled through authd and
connected to remoted over 127.0.0.1. An sshd login written to the agent's /var/log/auth.log goes
logcollector -> agentd -> remoted -> analysisd (5715 as agent 001) -> integratord -> our script
-> its enrichment, routed to agent 001 -> 199901 as agent 001 -> Active Response with location
local -> the agent's execd runs the command. The address is blocked on the agent, not on the
manager; the unknown address is not blocked; at the timeout the agent lifts the block. A line
shaped like our enrichment, written to the same log, raises none of our rules and blocks nothing.
"""
from __future__ import annotations

import time

import pytest
from manager_harness import OSSEC, Agent, Manager
from wazuh_events import forged_verdict_line, login_and_enrichment

KEY = "agent-chain-key"
MALICIOUS, UNKNOWN = "64.62.197.132", "108.157.98.17"
FORGED = "203.0.113.77"      # VirusTotal is never asked about it: only a forged line names it
TIMEOUT = 20          # the block's, in seconds: long enough to see it, short enough to see it lifted


@pytest.fixture
def manager(deployed):
    deployed.start_vt_server(KEY)
    return deployed


def deploy_active_response(manager: Manager, tmp_path, command: str) -> None:
    r = manager.site(tmp_path, "-e", "virustotal_ip_api_url=http://127.0.0.1:8090/api/v3",
                     "-e", "virustotal_ip_active_response_enabled=true",
                     "-e", f"virustotal_ip_active_response_command={command}",
                     "-e", f"virustotal_ip_active_response_timeout={TIMEOUT}", api_key=KEY)
    assert r.returncode == 0, r.stdout[-3000:]


def login_on(agent: Agent, manager: Manager, ip: str) -> tuple:
    """An sshd login from `ip` on the agent; returns (the alert it raised on the manager, the
    enrichment of that alert)."""
    def context() -> str:
        return f"; the manager's integrations.log ends:\n{manager.read_tail(f'{OSSEC}/logs/integrations.log')}"
    return login_and_enrichment(agent.log, manager.alerts_with, ip, 60, context)


def test_a_malicious_login_on_an_agent_is_blocked_by_host_deny_on_that_agent_until_the_timeout(manager, tmp_path):
    deploy_active_response(manager, tmp_path, "host-deny")
    agent = Agent(manager, "web01")
    try:
        assert agent.id == "001"
        trigger, unknown = login_on(agent, manager, UNKNOWN)
        assert (trigger["rule"]["id"], trigger["agent"]) == ("5715", {"id": "001", "name": "web01"})
        assert (unknown["rule"]["id"], unknown["agent"]["id"], unknown["data"]["srcip"]) == ("199903", "001", UNKNOWN)

        # An attacker's line in the same log, ahead of the genuine login: logcollector sends it first
        # and analysisd decodes it as JSON, long before the genuine login's enrichment comes back.
        agent.log(forged_verdict_line(FORGED))
        start = time.monotonic()
        _, malicious = login_on(agent, manager, MALICIOUS)
        assert (malicious["rule"]["id"], malicious["agent"]["id"], malicious["agent"]["name"]) == ("199901", "001",
                                                                                                 "web01")
        agent.wait(lambda: f"ALL:{MALICIOUS}" in agent.hosts_deny(), 30, f"{MALICIOUS} in the agent's /etc/hosts.deny")
        print(f"\nfrom the login on the agent to the block on the agent: {time.monotonic() - start:.1f} s")
        forged = [(a["rule"]["id"], a["location"]) for a in manager.alerts_with(FORGED)]
        assert [f for f in forged if f[0].startswith("1999")] == [] and FORGED not in agent.hosts_deny()
        # execd runs responses in order: the unknown verdict, alerted first, would be there by now
        assert UNKNOWN not in agent.hosts_deny()
        assert MALICIOUS not in manager.hosts_deny() and UNKNOWN not in manager.hosts_deny()
        log = agent.read(f"{OSSEC}/logs/active-responses.log")
        assert "host-deny" in log and MALICIOUS in log and UNKNOWN not in log and FORGED not in log

        agent.wait(lambda: MALICIOUS not in agent.hosts_deny(), TIMEOUT + 30, f"{MALICIOUS} lifted at the timeout")
    finally:
        agent.stop()


def iptables_rules(agent: Agent) -> str:
    return agent.exec("iptables", "-S").stdout.decode()


def test_the_roles_default_command_firewall_drop_drops_the_address_on_the_agent_until_the_timeout(manager, tmp_path):
    deploy_active_response(manager, tmp_path, "firewall-drop")
    agent = Agent(manager, "db01", "--cap-add", "NET_ADMIN")
    try:
        assert MALICIOUS not in iptables_rules(agent)
        start = time.monotonic()
        _, malicious = login_on(agent, manager, MALICIOUS)
        assert (malicious["rule"]["id"], malicious["agent"]["name"]) == ("199901", "db01")
        agent.wait(lambda: f"-s {MALICIOUS}/32 -j DROP" in iptables_rules(agent), 30,
                   f"a DROP rule for {MALICIOUS} in the agent's iptables")
        print(f"\nfrom the login on the agent to the DROP rule on the agent: {time.monotonic() - start:.1f} s")
        agent.wait(lambda: MALICIOUS not in iptables_rules(agent), TIMEOUT + 30, f"{MALICIOUS}'s DROP lifted")
    finally:
        agent.stop()
