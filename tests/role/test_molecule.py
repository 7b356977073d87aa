"""Molecule, as `make test` runs it: every scenario against Wazuh's own daemons built from
source (localhost/wazuh-manager-src at the current and the oldest version sources.lock pins,
localhost/wazuh-agent-src at the current one, make wazuh-image; and for the cluster scenario
localhost/wazuh-manager-src:<current>-cluster, build.sh --cluster).

The same scenarios run unchanged against the official image with
`WAZUH_MANAGER_IMAGE=wazuh/wazuh-manager:4.14.0 molecule test --all` where a registry is
reachable. Skipped without Docker, except on CI (CI=true), where that is a failure.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from harness import REPO
from manager_harness import WAZUH_AGENT_IMAGE, WAZUH_OLDEST_VERSION, WAZUH_VERSION, manager_image

MOLECULE_KEY = "molecule-test-key"


# The oldest version: what differs there is the manager (its integratord, its Python 3.9), so
# the deployment and the end-to-end verify run on it; idempotence and the side effects are the
# role's own behaviour, proven on the current version (check mode: test_role_dry_run.py).
@pytest.mark.parametrize("scenario,flavour,steps", [
    ("default", "wazuh-src", ["test"]),
    ("failure", "wazuh-src-cluster", ["test"]),                # a master and a worker: wazuh-clusterd
    ("agent", "wazuh-src", ["test"]),                          # with the agent built beside the manager
    ("default", "wazuh-src-oldest", ["converge", "verify"]),   # integratord without <timeout>/<retries>
], ids=[f"default-{WAZUH_VERSION}", f"failure-{WAZUH_VERSION}", f"agent-{WAZUH_VERSION}",
        f"default-{WAZUH_OLDEST_VERSION}"])
def test_molecule_scenario_passes_on_wazuhs_own_daemons(scenario, flavour, steps, tmp_path):
    image = manager_image(flavour, "molecule")
    bindir = Path(sys.executable).parent
    # Scenarios run in parallel, `default` twice: each its own instance names and its own
    # ephemeral directory (molecule's default is one per scenario name, under ~/.ansible/tmp).
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", WAZUH_MANAGER_IMAGE=image,
               WAZUH_AGENT_IMAGE=WAZUH_AGENT_IMAGE,
               MOLECULE_RUN_ID=uuid.uuid4().hex[:10], MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "molecule"),
               ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")

    def molecule(step: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bindir / "molecule"), step, "-s", scenario], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=1200, check=False)
    output = ""
    try:
        for step in steps:
            r = molecule(step)
            output += r.stdout + r.stderr
            assert r.returncode == 0, output[-6000:]
    finally:
        if steps != ["test"]:                  # `molecule test` destroys on its own
            output += molecule("destroy").stdout
    assert MOLECULE_KEY not in output, "the API key showed in molecule's output (a task without no_log?)"
