"""Driving a Wazuh cluster of from-source managers: the cluster image (build.sh --cluster),
nodes on a Docker network of their own, an agent of a worker, and site.yml on masters and
workers. Everything is Wazuh's own interfaces, as in manager_harness.py."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from manager_harness import (
    ENROLLMENT_DELAY,
    IMAGES_DIR,
    KEEP_ALIVE,
    OSSEC,
    REPO,
    WAZUH_AGENT_IMAGE,
    WAZUH_SRC_IMAGE,
    WAZUH_VERSION,
    Agent,
    Container,
    Manager,
    docker_available,
    on_ci,
)

CLUSTER_KEY = "c98b62a9b6169ac5f67dae55ae4a9088"      # clusterd's: 32 characters
CLUSTER_IMAGE = f"{WAZUH_SRC_IMAGE}-cluster"
RULES = f"{OSSEC}/etc/rules/virustotal_ip_rules.xml"


def cluster_image(what: str) -> str:
    """The cluster image (build.sh --cluster: the manager's build, cached, plus clusterd); skips
    without Docker, except on CI."""
    import pytest
    why = docker_available()
    if why:
        if on_ci():
            pytest.fail(f"CI=true but {why}: {what} cannot be skipped on CI")
        pytest.skip(f"{what} needs Docker: {why}")
    build = [str(IMAGES_DIR / "wazuh-src" / "build.sh"), "--cluster", WAZUH_VERSION]
    r = subprocess.run(build, capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"{' '.join(build)} failed:\n{r.stderr[-3000:]}"
    return CLUSTER_IMAGE


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


def cluster_block(node_type: str, node_name: str, master: str) -> str:
    """A <cluster> block as Wazuh's documentation has an administrator write it."""
    return (f"<cluster>\n    <name>wazuh</name>\n    <node_name>{node_name}</node_name>\n"
            f"    <node_type>{node_type}</node_type>\n    <key>{CLUSTER_KEY}</key>\n    <port>1516</port>\n"
            f"    <bind_addr>0.0.0.0</bind_addr>\n    <nodes>\n        <node>{master}</node>\n    </nodes>\n"
            f"    <hidden>no</hidden>\n    <disabled>no</disabled>\n  </cluster>")


class Node(Manager):
    """A manager container, on `network` if given (reachable there by its name); running once
    constructed."""

    def __init__(self, image: str, network: str | None = None) -> None:
        Container.__init__(self, image, *(["--network", network] if network else []))
        self.wait_running()

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


class WorkerAgent(Agent):
    """An agent beside a worker, in its network namespace: it enrols through the worker's authd,
    which hands the enrolment to the master through clusterd; the key comes back to the worker
    with clusterd's next sync of client.keys, and then the worker's remoted takes the agent.
    Connected, with the worker's shared configuration, once constructed.

    Not waited for, unlike Agent: the agent in the worker's wazuh-db. On a worker, modulesd's
    database module copies client.keys into wazuh-db, and modulesd is not built (the image's
    NOT-BUILT), so the worker's wazuh-db never lists it."""

    def __init__(self, worker: Manager, name: str) -> None:
        Container.__init__(self, WAZUH_AGENT_IMAGE, "--network", f"container:{worker.name}",
                           "-e", f"WAZUH_AGENT_NAME={name}", "-e", f"ENROLLMENT_DELAY={ENROLLMENT_DELAY}",
                           "-e", f"WAZUH_KEEP_ALIVE_INTERVAL={KEEP_ALIVE}")
        self.agent_name = name
        self.wait(self.reloaded, 120, f"agent {name} connected to the worker, with its shared configuration")
        keys = [line.split() for line in worker.read(f"{OSSEC}/etc/client.keys").splitlines()]
        self.id = next(fields[0] for fields in keys if fields[1:2] == [name])


def site(workdir: Path, masters: list, workers: list, *args: str, api_key: str) -> subprocess.CompletedProcess:
    """The real `ansible-playbook site.yml` with `masters` in wazuh_master and `workers` in
    wazuh_workers (reached with `docker exec`)."""
    def hosts(nodes: list) -> dict:
        return {n.name: {"ansible_connection": "community.docker.docker", "ansible_become": False,
                         "virustotal_ip_api_key": api_key} for n in nodes}
    inventory = workdir / "inventory.json"
    inventory.write_text(json.dumps({"all": {"children": {"wazuh_managers": {"children": {
        "wazuh_master": {"hosts": hosts(masters)}, "wazuh_workers": {"hosts": hosts(workers)}}}}}}))
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([str(bindir / "ansible-playbook"), "-i", str(inventory), str(REPO / "site.yml"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)
