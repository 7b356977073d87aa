"""pytest fixtures: a VT v3 server (vt_server.py) and a throwaway Wazuh home (harness.py)."""
from __future__ import annotations

import os
import uuid

import pytest
from harness import API_KEY, FIXTURES, WazuhHome, script_pythons
from manager_harness import remove_run_images
from no_egress import EgressCatcher
from vt_server import VTServer


# Wazuh's interfaces are checked on the image when it is built (tests/images/wazuh-src/build.sh:
# a cached image is a verified one); the suite runs them only when build.sh asks.
collect_ignore = [] if os.environ.get("VTIP_VERIFYING_IMAGE") else ["images/test_manager_interfaces.py"]


def pytest_configure(config):
    """One id for this test run, inherited by pytest-xdist's workers (manager_harness.run_id)."""
    if not hasattr(config, "workerinput"):
        os.environ.setdefault("VTIP_RUN_ID", uuid.uuid4().hex[:12])


def pytest_sessionfinish(session):
    """The controller, once every worker is done: remove the images the run committed."""
    if not hasattr(session.config, "workerinput"):
        remove_run_images()


def pytest_collection_modifyitems(items):
    """Longest first, for `--dist load --maxschedchunk 1` (pyproject.toml), which gives each
    worker two tests to start with, then one more each time it finishes one: the molecule
    scenarios (minutes each; `failure` the longest), then the tests that start a manager
    container, then the script's tests (seconds), which fill the gaps at the end. Each scenario
    is followed by one script test, so no worker starts with two scenarios to run in a row.
    (worksteal, the default, hands out contiguous slices: every scenario went to one worker.)"""
    def weight(item) -> tuple:
        if item.path.name == "test_molecule.py":
            return (0, "failure" not in item.name)
        return (2 if item.path.parent.name == "script" else 1, False)
    items.sort(key=weight)
    scenarios = [item for item in items if item.path.name == "test_molecule.py"]
    fillers = [item for item in items if item.path.parent.name == "script"][:len(scenarios)]
    head = []
    for n, scenario in enumerate(scenarios):
        head += [scenario, *fillers[n:n + 1]]
    items[:] = head + [item for item in items if item not in head]


@pytest.fixture(scope="session")
def _egress_catcher():
    catcher = EgressCatcher()
    os.environ["VTIP_EGRESS_PROXY"] = catcher.url
    yield catcher
    catcher.stop()


@pytest.fixture(autouse=True)
def egress(_egress_catcher):
    """Fails the test if anything it ran sent a request off this machine (no_egress.py), unless
    the test took the record with egress.take()."""
    _egress_catcher.take()
    yield _egress_catcher
    left = _egress_catcher.take()
    assert not left, f"a request would have left this machine (refused by the egress catcher): {left}"


@pytest.fixture
def vt():
    server = VTServer(API_KEY, FIXTURES["ips"]).start()
    yield server
    server.stop()


SCRIPT_PYTHONS = script_pythons()


@pytest.fixture(params=[python for _, python in SCRIPT_PYTHONS], ids=[name for name, _ in SCRIPT_PYTHONS])
def home(tmp_path, vt, request):
    """A throwaway Wazuh home whose framework/python is each interpreter in turn."""
    h = WazuhHome(tmp_path / "ossec", vt, python=request.param)
    yield h
    if h.sock is not None:
        h.sock.close()
