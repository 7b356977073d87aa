"""A Wazuh cluster on Wazuh's own daemons: site.yml on a master and a worker, the rules synced by
wazuh-clusterd, and an agent's login enriched on the worker it reports to and blocked on that
agent.

localhost/wazuh-manager-src:<version>-cluster is the from-source manager plus wazuh-modulesd and
wazuh-clusterd (Wazuh's framework and API; build.sh --cluster). A master and a worker run it on a
Docker network of their own, joined by their ossec.conf <cluster> blocks as an administrator (or
wazuh-ansible) writes them. site.yml deploys the master first: the rules go there only; clusterd
copies them to the worker, whose role run waits for them and restarts the worker to load them
(its analysisd loads synced rules only at a restart). Agents, each a host of its own on that
network, enrol through the worker's authd (which hands the enrolment to the master through
clusterd; clusterd brings the key back to the worker, and the worker's modulesd copies it into
its wazuh-db) and report to the worker's remoted. An sshd login on one of them is enriched on
the worker as that agent, and the worker's analysisd sends the Active Response to that agent
only (analysisd sends it only to agents its wazuh-db knows): host-deny and firewall-drop run
there, and nowhere else: not on the worker, the master or the worker's other agent.
"""
from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cluster_harness import Node, docker_network, side_by_side, site
from manager_harness import OSSEC, WAZUH_SRC_IMAGE, Agent, Container, manager_image
from wazuh_events import login_and_enrichment


KEY = "cluster-test-key"
MALICIOUS = "64.62.197.132"
VT_URL = "virustotal_ip_api_url=http://127.0.0.1:8090/api/v3"
AR_TIMEOUT = 600        # the block's: it stays while the test looks (lifted at the timeout: test_agent_chain.py)


@pytest.fixture
def cluster(request):
    """(master, worker): two nodes of one cluster, the worker connected to the master. With
    NET_ADMIN, as the agents of the firewall-drop test: a DROP rule would take on a node too, and
    its iptables can be read."""
    image = manager_image("wazuh-src-cluster", request.node.nodeid)
    with docker_network() as network, ThreadPoolExecutor(2) as pool:
        nodes = side_by_side(*[lambda: Node(image, network, "--cap-add", "NET_ADMIN")] * 2)
        try:
            master, worker = nodes
            list(pool.map(lambda args: args[0].join(*args[1:]), [(master, "master", "master-node", master.name),
                                                                 (worker, "worker", "worker-1", master.name)]))
            worker.wait_clusterd_log("Successfully connected to master")
            yield master, worker
        finally:
            for n in nodes:
                n.stop()


def deploy(master: Node, worker: Node, tmp_path, *args: str) -> None:
    """site.yml on the master, then the worker, with the VirusTotal stand-in the worker runs."""
    r = site(tmp_path, [master], [worker], "-e", VT_URL, *args, api_key=KEY)
    assert r.returncode == 0, r.stdout[-4000:]


def active_response(command: str) -> list:
    return ["-e", "virustotal_ip_active_response_enabled=true",
            "-e", f"virustotal_ip_active_response_command={command}",
            "-e", f"virustotal_ip_active_response_timeout={AR_TIMEOUT}"]


def worker_agents(worker: Node, *names: str, options: tuple = ()) -> list:
    """Agents of `worker`, each a host of its own on the cluster's network, enrolled and known to
    the worker's wazuh-db (its modulesd copied their keys there) with their version, and running
    with the worker's shared configuration; started side by side."""
    return side_by_side(*[functools.partial(Agent, worker, name, *options, network=worker.network) for name in names])


def login_on(agent: Agent, worker: Node) -> tuple:
    """An sshd login from MALICIOUS on `agent`; returns (the alert it raised on the worker, its
    enrichment), both asserted to be that agent's."""
    def context() -> str:
        return f"; the worker's integrations.log ends:\n{worker.read_tail(f'{OSSEC}/logs/integrations.log')}"
    trigger, malicious = login_and_enrichment(agent.log, worker.alerts_with, MALICIOUS, 60, context)
    assert (trigger["rule"]["id"], trigger["agent"]["id"], trigger["agent"]["name"]) == ("5715", agent.id,
                                                                                      agent.agent_name)
    assert (malicious["rule"]["id"], malicious["agent"]["id"], malicious["agent"]["name"]) == (
        "199901", agent.id, agent.agent_name)
    return trigger, malicious


def responded(host: Container) -> str:
    """What execd's Active Response programs logged on `host` (empty when none ran)."""
    r = host.exec("cat", f"{OSSEC}/logs/active-responses.log")
    return r.stdout.decode() if r.returncode == 0 else ""


def test_the_masters_rules_reach_the_worker_where_an_agents_login_is_enriched_blocked_on_that_agent_and_relevelled(
        cluster, tmp_path):
    master, worker = cluster
    worker.start_vt_server(KEY)
    deploy(master, worker, tmp_path, *active_response("host-deny"))
    # the rules went to the master only; the worker has them from clusterd, byte for byte
    assert master.rules_sha256() and worker.rules_sha256() == master.rules_sha256()
    assert "<!-- BEGIN custom-virustotal_ip" in worker.read(f"{OSSEC}/etc/ossec.conf")

    # two agents of the worker: enrolled through the worker's authd, reporting to its remoted
    agent, other = worker_agents(worker, "web01", "web02")
    try:
        start = time.monotonic()
        _, malicious = login_on(agent, worker)
        assert malicious["rule"]["level"] == 12
        agent.wait(lambda: f"ALL:{MALICIOUS}" in agent.hosts_deny(), 30, f"{MALICIOUS} in web01's /etc/hosts.deny")
        print(f"\ncluster: from the login on the worker's agent to host-deny's block there: "
              f"{time.monotonic() - start:.1f} s")
        assert "host-deny" in responded(agent) and MALICIOUS in responded(agent)
        # execd runs a response as it arrives: one sent anywhere else would be there by now
        for host in (worker, master, other):
            assert MALICIOUS not in host.hosts_deny() and MALICIOUS not in responded(host), host.name
    finally:
        for a in (agent, other):
            a.stop()

    # A change of the rules only (a level, deployed with the rules phase's tag): the worker's
    # ossec.conf and code stay as they are, yet its analysisd must load the master's new rules.
    # Before the role restarted workers for synced rules, the worker went on raising level 12.
    r = site(tmp_path, [master], [worker], "--tags", "virustotal_ip_rules", "-e", VT_URL,
             "-e", "virustotal_ip_rules_level_malicious=14", *active_response("host-deny"), api_key=KEY)
    assert r.returncode == 0, r.stdout[-4000:]
    assert worker.rules_sha256() == master.rules_sha256()
    relevelled = worker.enrichment_for(MALICIOUS)
    assert (relevelled["rule"]["id"], relevelled["rule"]["level"]) == ("199901", 14)


def dropped(host: Container) -> str:
    """iptables' rules on `host` (every container here has NET_ADMIN to read them)."""
    r = host.exec("iptables", "-S")
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_firewall_drop_drops_a_malicious_login_on_the_worker_agent_that_saw_it_and_nowhere_else(cluster, tmp_path):
    master, worker = cluster
    worker.start_vt_server(KEY)
    deploy(master, worker, tmp_path, *active_response("firewall-drop"))
    # each agent its own network namespace, with NET_ADMIN for firewall-drop's iptables
    agent, other = worker_agents(worker, "db01", "db02", options=("--cap-add", "NET_ADMIN"))
    try:
        start = time.monotonic()
        login_on(agent, worker)
        agent.wait(lambda: f"-s {MALICIOUS}/32 -j DROP" in dropped(agent), 30, f"a DROP rule for {MALICIOUS} on db01")
        print(f"\ncluster: from the login on the worker's agent to firewall-drop's DROP rule there: "
              f"{time.monotonic() - start:.1f} s")
        assert "firewall-drop" in responded(agent) and MALICIOUS in responded(agent)
        for host in (worker, master, other):
            assert MALICIOUS not in dropped(host) and MALICIOUS not in responded(host), host.name
    finally:
        for a in (agent, other):
            a.stop()


def test_a_worker_the_rules_never_reach_is_rolled_back_saying_why(tmp_path, request):
    """A worker whose master never sends the rules (here: no master at all, and no clusterd: the
    role reads the <cluster> block) waits virustotal_ip_cluster_sync_timeout, then every change
    is rolled back and the message says what to check; ossec.conf is byte-identical and nothing
    of ours is left. A dry run there waits for nothing and says so."""
    manager_image("wazuh-src", request.node.nodeid)
    worker = Node(WAZUH_SRC_IMAGE)
    try:
        worker.write_cluster_block("worker", "worker-1", "nowhere.invalid")
        before = worker.snapshot()
        r = site(tmp_path, [], [worker], "--check", "--diff", "-e", VT_URL, api_key=KEY)
        assert r.returncode == 0, r.stdout[-4000:]
        assert "Check mode: this cluster worker gets the rules from its master." in r.stdout
        assert worker.snapshot() == before

        r = site(tmp_path, [], [worker], "-e", VT_URL, "-e", "virustotal_ip_cluster_sync_timeout=2", api_key=KEY)
        assert r.returncode != 0
        said = "The rules did not reach this cluster worker from its master within 2 s"
        assert said in r.stdout and "is missing" in r.stdout, r.stdout[-4000:]
        assert "cluster_control -l" in r.stdout
        assert "The change was rolled back" in r.stdout
        assert worker.snapshot() == before
    finally:
        worker.stop()
