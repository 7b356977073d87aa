"""The Ansible collection as users install it: `ansible-galaxy collection build` of this
checkout, `ansible-galaxy collection install` of the tarball into a fresh path, and the
playbooks run by their fully qualified names from outside the checkout (no ansible.cfg, no
roles path), on Wazuh's own daemons.
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible_output import warnings
from ansible.release import __version__ as ansible_core_version
from harness import REPO
from manager_harness import OSSEC, Manager, manager_image, on_ci

GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
BIN = Path(sys.executable).parent
KEY = "collection-test-key"
# Ansible's own notice about a setup without ansible.cfg's interpreter_python (this test runs
# with no configuration, as a new user does): not the collection's to silence.
USERS_SETUP = ("is using the discovered Python interpreter at",)


# The ansible-core versions the collection supports (meta/runtime.yml): the oldest is
# requirements.txt's, this venv's; the newer ones have a venv each (tests/ansible-cores/).
OLDEST_CORE = ".".join(ansible_core_version.split(".")[:2])
CORES = {OLDEST_CORE: BIN, **{p.stem: REPO / f".venv-core-{p.stem}" / "bin"
                              for p in sorted((REPO / "tests" / "ansible-cores").glob("*.txt"))}}


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


SHIPPED = {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.md", "roles", "playbooks", "plugins",
           "files", "meta", "templates", "docs", "inventory.example", "changelogs"}


def test_the_tarball_ships_what_users_run_and_nothing_of_the_development_kit(installed):
    tarball, _, _ = installed
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    for wanted in ("MANIFEST.json", "meta/runtime.yml", "LICENSE", "CHANGELOG.md", "roles/virustotal_ip/README.md",
                   "roles/virustotal_ip/tasks/main.yml", "files/custom-virustotal_ip.py", "files/custom-virustotal_ip",
                   "files/virustotal_ip/cli.py", "files/virustotal_ip/verdict.py", "inventory.example/hosts.yml",
                   "playbooks/site.yml", "playbooks/check_ip.yml", "playbooks/uninstall.yml",
                   "plugins/filter/ossec_conf.py", "plugins/modules/config_diff.py", "plugins/modules/install_files.py",
                   "plugins/action/install_files.py", "docs/deploying.md"):
        assert wanted in names, wanted
    assert {n.split("/")[0] for n in names} <= SHIPPED, {n.split("/")[0] for n in names} - SHIPPED
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_every_link_in_the_tarballs_documents_resolves_inside_it(installed):
    tarball, _, _ = installed
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        documents = {n: tar.extractfile(n).read().decode() for n in names if n.endswith(".md")}
    broken = []
    for name, text in documents.items():
        for link in re.findall(r"\]\(([^)#\s]+)", text):
            if "://" in link or link.startswith("mailto:"):
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
            if target not in names and not any(n.startswith(target + "/") for n in names):
                broken.append(f"{name}: {link}")
    assert not broken, broken


def test_requires_ansible_is_the_oldest_core_tested_here():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == f">={OLDEST_CORE}.0", runtime["requires_ansible"]


@pytest.mark.parametrize("core", CORES)
def test_the_installed_collection_deploys_checks_and_uninstalls_by_fully_qualified_names(installed, tmp_path, core):
    """On the oldest and the newest ansible-core the collection supports: installed with that
    version's ansible-galaxy, its playbooks syntax-checked and run by that ansible-playbook."""
    tarball, env, _ = installed
    bindir = CORES[core]
    if not (bindir / "ansible-playbook").exists():
        why = f"no venv for ansible-core {core} (tests/ansible-cores/make-venvs.sh needs Python 3.12+)"
        if on_ci():
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    if bindir != BIN:            # its own install; the docker connection from requirements.txt's ansible
        collections = tmp_path / "collections"
        # --force: the fixture's install (the oldest core's) is on the configured path, and
        # ansible-galaxy would otherwise say it is installed already and install nothing
        r = run([str(bindir / "ansible-galaxy"), "collection", "install", "--force", str(tarball), "-p",
                 str(collections)], tmp_path, env)
        assert r.returncode == 0, r.stdout + r.stderr
        ours = next(Path(BIN.parent / "lib").glob("python3*/site-packages"))
        env = dict(env, PATH=f"{bindir}:{env['PATH']}", ANSIBLE_COLLECTIONS_PATH=f"{collections}:{ours}")
    version = run([str(bindir / "ansible-playbook"), "--version"], tmp_path, env).stdout
    assert f"core {core}." in version, version
    m = Manager(manager_image("wazuh-src", "deploying from the installed collection"))
    try:
        m.start_vt_server(KEY)
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"wazuh_managers": {"children": {"wazuh_master": {
            "hosts": {m.name: {"ansible_connection": "community.docker.docker", "ansible_become": False,
                               "virustotal_ip_api_key": KEY,
                               "virustotal_ip_api_url": "http://127.0.0.1:8090/api/v3"}}}}}}}}))
        playbook = [str(bindir / "ansible-playbook"), "-i", str(inventory)]
        for name in ("site", "check_ip", "uninstall"):
            r = run(playbook + ["--syntax-check", f"{FQCN}.{name}"], tmp_path, env)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]

        r = run(playbook + [f"{FQCN}.site"], tmp_path, env)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        # a first install, as a user runs it: no warning
        printed = warnings(r.stdout, r.stderr, about_the_users_setup=USERS_SETUP)
        assert not printed, printed
        deployed = m.exec("cat", f"{OSSEC}/integrations/custom-virustotal_ip.py", check=True).stdout
        assert deployed == (REPO / "files" / "custom-virustotal_ip.py").read_bytes()
        deployed = m.exec("cat", f"{OSSEC}/integrations/virustotal_ip/verdict.py", check=True).stdout
        assert deployed == (REPO / "files" / "virustotal_ip" / "verdict.py").read_bytes()
        assert "<name>custom-virustotal_ip</name>" in m.read(f"{OSSEC}/etc/ossec.conf")

        r = run(playbook + [f"{FQCN}.check_ip", "-e", "ip=64.62.197.132"], tmp_path, env)
        assert r.returncode == 0 and "Verdict:     malicious" in r.stdout, r.stdout[-3000:]

        r = run(playbook + [f"{FQCN}.uninstall"], tmp_path, env)
        assert r.returncode == 0, r.stdout[-3000:]
        printed = warnings(r.stdout, r.stderr, about_the_users_setup=USERS_SETUP)
        assert not printed, printed
        assert m.exec("test", "-e", f"{OSSEC}/integrations/custom-virustotal_ip.py").returncode != 0
        assert m.exec("test", "-e", f"{OSSEC}/integrations/virustotal_ip").returncode != 0
        assert "custom-virustotal_ip" not in m.read(f"{OSSEC}/etc/ossec.conf")
    finally:
        m.stop()


def test_make_collection_refuses_without_a_repository_url_saying_why():
    r = subprocess.run([sys.executable, str(REPO / "tools" / "build_collection.py"), "--repository", ""],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "Galaxy requires the collection's repository URL" in r.stderr, r.stderr


def test_make_collection_writes_the_urls_it_is_given_into_the_built_collection_only(tmp_path):
    urls = {"repository": "https://git.example.invalid/vtip", "issues": "https://git.example.invalid/vtip/issues"}
    r = subprocess.run([sys.executable, str(REPO / "tools" / "build_collection.py"), "--out", str(tmp_path),
                        *[arg for field, value in urls.items() for arg in (f"--{field}", value)]],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    [tarball] = tmp_path.glob("*.tar.gz")
    with tarfile.open(tarball) as tar:
        info = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert {field: info[field] for field in urls} == urls
    assert "repository" not in yaml.safe_load((REPO / "galaxy.yml").read_text())    # the checkout keeps none


# What a fresh clone holds: the checkout without its local state (venvs, builds, caches).
CLONE = shutil.ignore_patterns(".git", ".venv*", "build", ".pytest_cache", ".ruff_cache", ".cache", "__pycache__",
                               "*.pyc", "*.tar.gz")


def readme_install_commands() -> list:
    """The build and install commands of the README's "Deploying" section, as written there."""
    section = (REPO / "README.md").read_text().split("\n## Deploying\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line for line in block.splitlines() if line.startswith("ansible-galaxy collection ")]


def test_the_readmes_install_commands_leave_the_collection_found_from_any_directory(tmp_path):
    """Run as written in a fresh copy of the checkout (whose ansible.cfg puts the checkout itself
    on the collections path, through .collections/), with a new user's home: the collection
    lands in ~/.ansible/collections, and from another directory its playbooks are found by their
    fully qualified names."""
    commands = readme_install_commands()
    assert [command.split()[2] for command in commands] == ["build", "install"], commands
    checkout, home, elsewhere = tmp_path / "clone", tmp_path / "home", tmp_path / "elsewhere"
    shutil.copytree(REPO, checkout, symlinks=True, ignore=CLONE)
    home.mkdir()
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", HOME=str(home), ANSIBLE_FORCE_COLOR="0")
    for command in commands:                      # in a shell, as typed: `~` is the new home
        r = run(["bash", "-c", command], checkout, env)
        assert r.returncode == 0, f"{command}\n{r.stdout}{r.stderr}"
        assert "Nothing to do" not in r.stdout and "[WARNING]" not in r.stdout + r.stderr, r.stdout + r.stderr
    installed = home / ".ansible" / "collections" / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert json.loads((installed / "MANIFEST.json").read_text())["collection_info"]["version"] == GALAXY["version"]
    r = run([str(BIN / "ansible-playbook"), "--syntax-check", f"{FQCN}.site"], elsewhere, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"playbook: {installed / 'playbooks' / 'site.yml'}" in r.stdout, r.stdout
