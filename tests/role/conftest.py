"""Fixtures shared by the role's tests on Wazuh's own daemons."""
from __future__ import annotations

import pytest
from manager_harness import Manager, deployed_image, manager_image


@pytest.fixture
def deployed(request):
    """A manager as a plain `site.yml` left it: a container of the run's deployed image
    (manager_harness.deployed_image: site.yml runs once per test run), removed after the test."""
    manager_image("wazuh-src", request.node.nodeid)
    m = Manager(deployed_image())
    yield m
    m.stop()
