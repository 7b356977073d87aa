"""The Ansible collection as users install it: `ansible-galaxy collection build` of this
checkout, `ansible-galaxy collection install` of the tarball into a fresh path, and the
playbooks run by their fully qualified names from outside the checkout (no ansible.cfg, no
roles path), on Wazuh's own daemons.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from harness import REPO
from manager_harness import OSSEC, Manager, manager_image

GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
BIN = Path(sys.executable).parent
KEY = "collection-test-key"


def run(argv: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the tarball, the environment of a shell that has only the installed collection)."""
    work = tmp_path_factory.mktemp("collection")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", HOME=str(work), ANSIBLE_COLLECTIONS_PATH=str(work / "collections"),
               ANSIBLE_ROLES_PATH=str(work / "no-roles"), ANSIBLE_FORCE_COLOR="0")
    r = run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(work / "dist")],
            work, env)
    assert r.returncode == 0, r.stdout + r.stderr
    [tarball] = (work / "dist").glob("*.tar.gz")
    r = run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(work / "collections")],
            work, env)
    assert r.returncode == 0, r.stdout + r.stderr
    return tarball, env, work


def test_the_tarball_holds_the_role_its_files_and_playbooks_and_no_local_state(installed):
    tarball, _, _ = installed
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    for wanted in ("MANIFEST.json", "meta/runtime.yml", "LICENSE", "CHANGELOG.md",
                   "roles/virustotal_ip/tasks/main.yml", "files/custom-virustotal_ip.py", "files/custom-virustotal_ip",
                   "files/virustotal_ip/cli.py", "files/virustotal_ip/verdict.py",
                   "playbooks/site.yml", "playbooks/check_ip.yml", "playbooks/uninstall.yml",
                   "plugins/filter/ossec_conf.py"):
        assert wanted in names, wanted
    assert not [n for n in names if n.split("/")[0] in (".venv", "build", ".git", ".pytest_cache", ".ruff_cache",
                                                         ".collections")
                or "__pycache__" in n or n.startswith(".venv-")]


def test_the_installed_collection_deploys_checks_and_uninstalls_by_fully_qualified_names(installed, tmp_path):
    _, env, _ = installed
    m = Manager(manager_image("wazuh-src", "deploying from the installed collection"))
    try:
        m.start_vt_server(KEY)
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"wazuh_managers": {"children": {"wazuh_master": {
            "hosts": {m.name: {"ansible_connection": "community.docker.docker", "ansible_become": False,
                               "virustotal_ip_api_key": KEY,
                               "virustotal_ip_api_url": "http://127.0.0.1:8090/api/v3"}}}}}}}}))
        playbook = [str(BIN / "ansible-playbook"), "-i", str(inventory)]

        r = run(playbook + [f"{FQCN}.site"], tmp_path, env)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        deployed = m.exec("cat", f"{OSSEC}/integrations/custom-virustotal_ip.py", check=True).stdout
        assert deployed == (REPO / "files" / "custom-virustotal_ip.py").read_bytes()
        deployed = m.exec("cat", f"{OSSEC}/integrations/virustotal_ip/verdict.py", check=True).stdout
        assert deployed == (REPO / "files" / "virustotal_ip" / "verdict.py").read_bytes()
        assert "<name>custom-virustotal_ip</name>" in m.read(f"{OSSEC}/etc/ossec.conf")

        r = run(playbook + [f"{FQCN}.check_ip", "-e", "ip=64.62.197.132"], tmp_path, env)
        assert r.returncode == 0 and "Verdict:     malicious" in r.stdout, r.stdout[-3000:]

        r = run(playbook + [f"{FQCN}.uninstall"], tmp_path, env)
        assert r.returncode == 0, r.stdout[-3000:]
        assert m.exec("test", "-e", f"{OSSEC}/integrations/custom-virustotal_ip.py").returncode != 0
        assert m.exec("test", "-e", f"{OSSEC}/integrations/virustotal_ip").returncode != 0
        assert "custom-virustotal_ip" not in m.read(f"{OSSEC}/etc/ossec.conf")
    finally:
        m.stop()
