"""Driving a Wazuh cluster of from-source managers (the cluster image, images/build.py's IMAGES
wazuh-src-cluster: wazuh-clusterd and wazuh-modulesd beside the manager's daemons): nodes on a
Docker network of their own, agents of a worker (manager_harness.Agent on that network), and
site.yml on masters and workers. Everything is Wazuh's own interfaces, as in manager_harness.py."""
from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from manager_harness import OSSEC, REPO, Container, Manager, run_playbook

CLUSTER_KEY = "c98b62a9b6169ac5f67dae55ae4a9088"      # clusterd's: 32 characters
RULES = f"{OSSEC}/etc/rules/virustotal_ip_rules.xml"


@contextmanager
def docker_network() -> Iterator[str]:
    """A user-defined Docker network of this test's (its containers reach each other by name),
    removed afterwards."""
    name = f"vtip-test-net-{uuid.uuid4().hex[:12]}"
    subprocess.run(["docker", "network", "create", "--label", "vtip-test=1", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)


def side_by_side(*makers: Callable[[], Container]) -> list:
    """The containers `makers` start (each running once made), made side by side; when one
    fails, the others are stopped and its error raised."""
    with ThreadPoolExecutor(len(makers)) as pool:
        futures = [pool.submit(make) for make in makers]
    made = [f.result() for f in futures if f.exception() is None]
    failures = [f.exception() for f in futures if f.exception() is not None]
    if failures:
        for container in made:
            container.stop()
        raise failures[0]
    return made


def cluster_block(node_type: str, node_name: str, master: str) -> str:
    """A <cluster> block as Wazuh's documentation has an administrator write it."""
    return (f"<cluster>\n    <name>wazuh</name>\n    <node_name>{node_name}</node_name>\n"
            f"    <node_type>{node_type}</node_type>\n    <key>{CLUSTER_KEY}</key>\n    <port>1516</port>\n"
            f"    <bind_addr>0.0.0.0</bind_addr>\n    <nodes>\n        <node>{master}</node>\n    </nodes>\n"
            f"    <hidden>no</hidden>\n    <disabled>no</disabled>\n  </cluster>")


class Node(Manager):
    """A manager container, on `network` if given (reachable there by its name, as are the agents
    started on it: Agent(node, name, network=node.network)), with `options` for docker run;
    running once constructed."""

    def __init__(self, image: str, network: str | None = None, *options: str) -> None:
        Container.__init__(self, image, *(["--network", network] if network else []), *options)
        self.network = network
        try:
            self.wait_running()
        except BaseException:
            self.stop()
            raise

    def wait_running(self, timeout: float = 90) -> None:
        """Manager's, with more time: wazuh-control tests every daemon's configuration before it
        starts any, and clusterd's test imports Wazuh's framework (seconds of CPU, a minute on a
        loaded machine), even when no <cluster> block enables it."""
        super().wait_running(timeout)

    def write_cluster_block(self, node_type: str, node_name: str, master: str) -> None:
        """ossec.conf's <cluster> block replaced by one for this node (read at the next start)."""
        conf = self.read(f"{OSSEC}/etc/ossec.conf")
        start, end = conf.index("<cluster>"), conf.index("</cluster>") + len("</cluster>")
        self.put(f"{OSSEC}/etc/ossec.conf", conf[:start] + cluster_block(node_type, node_name, master) + conf[end:],
                 mode="0660")

    def join(self, node_type: str, node_name: str, master: str) -> None:
        """The <cluster> block for this node, then wazuh-control restart (which starts
        wazuh-clusterd once the block enables it)."""
        self.write_cluster_block(node_type, node_name, master)
        self.restart()
        self.wait(lambda: "wazuh-clusterd is running..." in self.status(), 30, f"{node_name}'s wazuh-clusterd")

    def rules_sha256(self) -> str:
        r = self.exec("cat", RULES)
        return hashlib.sha256(r.stdout).hexdigest() if r.returncode == 0 else ""

    def wait_clusterd_log(self, text: str, timeout: float = 60) -> None:
        self.wait(lambda: text in self.read(f"{OSSEC}/logs/cluster.log"), timeout, f"{text!r} in cluster.log")


def site(workdir: Path, masters: list, workers: list, *args: str, api_key: str) -> subprocess.CompletedProcess:
    """The real `ansible-playbook site.yml` with `masters` in wazuh_master and `workers` in
    wazuh_workers (reached with `docker exec`)."""
    def hosts(nodes: list) -> dict:
        return {n.name: {"ansible_connection": "community.docker.docker", "ansible_become": False,
                         "virustotal_ip_api_key": api_key} for n in nodes}
    inventory = workdir / "inventory.json"
    inventory.write_text(json.dumps({"all": {"children": {"wazuh_managers": {"children": {
        "wazuh_master": {"hosts": hosts(masters)}, "wazuh_workers": {"hosts": hosts(workers)}}}}}}))
    return run_playbook(inventory, REPO / "site.yml", *args)
