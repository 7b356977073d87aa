"""An agent's sshd login, enriched on the manager and blocked on that agent by the role's
default Active Response command, firewall-drop.

`host` is the manager; the agent is the container side_effect.yml started beside it, in its network
namespace (so an iptables rule is seen from both: which execd ran the command is told by each
one's active-responses.log). Only Wazuh's interfaces: the agent's auth.log, the manager's
alerts.json, the agent's iptables and logs.
"""
import shlex
import sys
from pathlib import Path

import testinfra

# The helpers the harness uses too (tests/wazuh_events.py: standard library only).
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from wazuh_events import ALERTS_JSON, OSSEC, login_and_enrichment, parse_alerts, poll

testinfra_hosts = ["all"]
MALICIOUS, UNKNOWN = "64.62.197.132", "108.157.98.17"     # the original design's addresses
TIMEOUT = 20                                              # molecule.yml's active_response_timeout
AR_LOG = f"{OSSEC}/logs/active-responses.log"


def agent_of(host):
    return testinfra.get_host(f"docker://{host.ansible.get_variables()['vtip_agent_container']}")


def login_on(agent, host, ip: str) -> tuple:
    """An sshd login from `ip` written to the agent's auth.log; returns (the manager's alert of
    it, the enrichment of that alert)."""
    def log(line: str) -> None:
        agent.run_expect([0], f"echo {shlex.quote(line)} >> /var/log/auth.log")

    def alerts_with(text: str) -> list:
        return parse_alerts(host.run(f"grep -F -- {shlex.quote(text)} {ALERTS_JSON}").stdout)
    return login_and_enrichment(log, alerts_with, ip, 90)


def dropped(agent) -> str:
    return agent.run("iptables -S").stdout


def test_a_malicious_login_on_the_agent_is_dropped_by_that_agent_until_the_timeout(host):
    agent = agent_of(host)
    trigger, unknown = login_on(agent, host, UNKNOWN)
    assert (trigger["rule"]["id"], trigger["agent"]["id"], trigger["agent"]["name"]) == ("5715", "001", "web01")
    assert (unknown["rule"]["id"], unknown["agent"]["id"], unknown["data"]["srcip"]) == ("199903", "001", UNKNOWN)

    _, malicious = login_on(agent, host, MALICIOUS)
    assert (malicious["rule"]["id"], malicious["agent"]["id"], malicious["data"]["srcip"]) == ("199901", "001",
                                                                                              MALICIOUS)
    poll(lambda: True if f"-s {MALICIOUS}/32 -j DROP" in dropped(agent) else None, 30,
         f"a DROP rule for {MALICIOUS} from the agent's firewall-drop")
    # execd runs responses in order: the unknown verdict, alerted first, would be there by now
    assert UNKNOWN not in dropped(agent)
    assert MALICIOUS in agent.file(AR_LOG).content_string
    assert not host.file(AR_LOG).exists or MALICIOUS not in host.file(AR_LOG).content_string
    poll(lambda: True if MALICIOUS not in dropped(agent) else None, TIMEOUT + 30,
         f"the DROP rule for {MALICIOUS} lifted at the timeout")
