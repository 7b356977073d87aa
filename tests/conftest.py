"""pytest fixtures: a VT v3 server (vt_server.py) and a throwaway Wazuh home (harness.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness import API_KEY, FIXTURES, WazuhHome
from vt_server import VTServer


@pytest.fixture
def vt():
    server = VTServer(API_KEY, FIXTURES["ips"]).start()
    yield server
    server.stop()


@pytest.fixture
def home(tmp_path, vt):
    h = WazuhHome(tmp_path / "ossec", vt)
    yield h
    if h.sock is not None:
        h.sock.close()
