"""An sshd login on an agent of the cluster's worker, enriched on the worker as that agent and
dropped on that agent by the role's default Active Response command, firewall-drop; on neither
manager.

`host` is the worker; the agent is the container agent.yml started on the scenario's network
(its own network namespace, with NET_ADMIN). Only Wazuh's interfaces: the agent's auth.log, the
worker's alerts.json, the agent's iptables, each one's active-responses.log.
"""
import shlex
import sys
from pathlib import Path

import testinfra

# The helpers the harness uses too (tests/wazuh_events.py: standard library only).
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tests"))
from wazuh_events import ALERTS_JSON, OSSEC, login_and_enrichment, parse_alerts, poll

testinfra_hosts = ["wazuh_workers"]
MALICIOUS = "64.62.197.132"            # the original design's malicious address
AR_LOG = f"{OSSEC}/logs/active-responses.log"


def container(name: str):
    return testinfra.get_host(f"docker://{name}")


def responded(host) -> str:
    """What execd's Active Response programs logged on `host` (empty when none ran)."""
    return host.file(AR_LOG).content_string if host.file(AR_LOG).exists else ""


def test_a_malicious_login_on_the_workers_agent_is_dropped_by_that_agent_only(host):
    variables = host.ansible.get_variables()
    agent = container(variables["vtip_agent_container"])
    master = container(variables["groups"]["wazuh_master"][0])

    def log(line: str) -> None:
        agent.run_expect([0], f"echo {shlex.quote(line)} >> /var/log/auth.log")

    def alerts_with(text: str) -> list:
        return parse_alerts(host.run(f"grep -F -- {shlex.quote(text)} {ALERTS_JSON}").stdout)

    trigger, malicious = login_and_enrichment(log, alerts_with, MALICIOUS, 90)
    assert (trigger["rule"]["id"], trigger["agent"]["name"]) == ("5715", "web01")
    assert (malicious["rule"]["id"], malicious["agent"]["id"], malicious["agent"]["name"]) == (
        "199901", trigger["agent"]["id"], "web01")
    poll(lambda: True if f"-s {MALICIOUS}/32 -j DROP" in agent.run("iptables -S").stdout else None, 30,
         f"a DROP rule for {MALICIOUS} from the agent's firewall-drop")
    assert MALICIOUS in responded(agent)
    # execd runs a response as it arrives: one sent to a manager would be there by now
    assert MALICIOUS not in responded(host) and MALICIOUS not in responded(master)
