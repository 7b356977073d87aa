"""A Wazuh cluster on Wazuh's own daemons: site.yml on a master and a worker, the rules synced by
wazuh-clusterd, and an agent's login enriched on the worker it reports to.

localhost/wazuh-manager-src:<version>-cluster is the from-source manager plus wazuh-clusterd
(Wazuh's framework and API; build.sh --cluster). A master and a worker run it on a Docker network
of their own, joined by their ossec.conf <cluster> blocks as an administrator (or wazuh-ansible)
writes them. site.yml deploys the master first: the rules go there only; clusterd copies them to
the worker, whose role run waits for them and restarts the worker to load them (its analysisd
loads synced rules only at a restart). An agent enrols through the worker's authd (which hands
the enrolment to the master through clusterd) and reports to the worker's remoted; its sshd
login is enriched on the worker, as that agent.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from cluster_harness import Node, WorkerAgent, docker_network, site
from manager_harness import OSSEC, WAZUH_SRC_IMAGE, manager_image
from wazuh_events import login_and_enrichment


KEY = "cluster-test-key"
MALICIOUS = "64.62.197.132"
VT_URL = "virustotal_ip_api_url=http://127.0.0.1:8090/api/v3"


@pytest.fixture
def cluster(request):
    """(master, worker): two nodes of one cluster, the worker connected to the master."""
    image = manager_image("wazuh-src-cluster", request.node.nodeid)
    with docker_network() as network, ThreadPoolExecutor(2) as pool:
        nodes = list(pool.map(lambda _: Node(image, network), range(2)))
        try:
            master, worker = nodes
            list(pool.map(lambda args: args[0].join(*args[1:]), [(master, "master", "master-node", master.name),
                                                                 (worker, "worker", "worker-1", master.name)]))
            worker.wait_clusterd_log("Successfully connected to master")
            yield master, worker
        finally:
            for n in nodes:
                n.stop()


def test_the_masters_rules_reach_the_worker_and_an_agents_login_there_is_enriched_and_relevelled(cluster, tmp_path):
    master, worker = cluster
    worker.start_vt_server(KEY)
    r = site(tmp_path, [master], [worker], "-e", VT_URL, api_key=KEY)
    assert r.returncode == 0, r.stdout[-4000:]
    # the rules went to the master only; the worker has them from clusterd, byte for byte
    assert master.rules_sha256() and worker.rules_sha256() == master.rules_sha256()
    assert "<!-- BEGIN custom-virustotal_ip" in worker.read(f"{OSSEC}/etc/ossec.conf")

    # an agent of the worker: enrolled through the worker's authd, reporting to its remoted
    agent = WorkerAgent(worker, "web01")
    try:
        def context() -> str:
            return f"; the worker's integrations.log ends:\n{worker.read_tail(f'{OSSEC}/logs/integrations.log')}"
        trigger, malicious = login_and_enrichment(agent.log, worker.alerts_with, MALICIOUS, 60, context)
        assert (trigger["rule"]["id"], trigger["agent"]["name"]) == ("5715", "web01")
        assert (malicious["rule"]["id"], malicious["agent"]["id"], malicious["agent"]["name"]) == (
            "199901", agent.id, "web01")
        assert malicious["rule"]["level"] == 12
    finally:
        agent.stop()

    # A change of the rules only (a level, deployed with the rules phase's tag): the worker's
    # ossec.conf and code stay as they are, yet its analysisd must load the master's new rules.
    # Before the role restarted workers for synced rules, the worker went on raising level 12.
    r = site(tmp_path, [master], [worker], "--tags", "virustotal_ip_rules", "-e", VT_URL,
             "-e", "virustotal_ip_rules_level_malicious=14", api_key=KEY)
    assert r.returncode == 0, r.stdout[-4000:]
    assert worker.rules_sha256() == master.rules_sha256()
    relevelled = worker.enrichment_for(MALICIOUS)
    assert (relevelled["rule"]["id"], relevelled["rule"]["level"]) == ("199901", 14)


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
