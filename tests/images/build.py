"""The manager images the tests run, and their building: the flavours of
localhost/wazuh-manager-src, each built (or found cached and verified) by wazuh-src/build.sh at
a version tests/images/wazuh-src/sources.lock pins. Running containers of them is
manager_harness.py's part; this module builds and runs nothing else.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

IMAGES_DIR = Path(__file__).resolve().parent
BUILD_SH = IMAGES_DIR / "wazuh-src" / "build.sh"


def pinned_wazuh_versions() -> list:
    """The Wazuh versions sources.lock pins, in its order (the first is the current one)."""
    lines = (IMAGES_DIR / "wazuh-src" / "sources.lock").read_text().splitlines()
    return [line.split()[1] for line in lines if line.split()[:1] == ["wazuh"]]


WAZUH_VERSION, *_, WAZUH_OLDEST_VERSION = pinned_wazuh_versions()
# flavour -> (image, build command)
IMAGES = {
    "wazuh-src": (f"localhost/wazuh-manager-src:{WAZUH_VERSION}", [str(BUILD_SH), WAZUH_VERSION]),
    "wazuh-src-oldest": (f"localhost/wazuh-manager-src:{WAZUH_OLDEST_VERSION}", [str(BUILD_SH), WAZUH_OLDEST_VERSION]),
    # the manager plus wazuh-modulesd and wazuh-clusterd (the cluster tests)
    "wazuh-src-cluster": (f"localhost/wazuh-manager-src:{WAZUH_VERSION}-cluster",
                          [str(BUILD_SH), "--cluster", WAZUH_VERSION]),
}
WAZUH_SRC_IMAGE = IMAGES["wazuh-src"][0]
# Built with the current version's manager (build.sh), from the same sources.
WAZUH_AGENT_IMAGE = f"localhost/wazuh-agent-src:{WAZUH_VERSION}"


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def docker_available() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine answers"
    return None


def build(flavour: str) -> str:
    """The image of a flavour, built by build.sh unless cached (a cached one is verified)."""
    image, command = IMAGES[flavour]
    r = subprocess.run(command, capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"{' '.join(command)} failed:\n{r.stderr[-3000:]}"
    return image


def manager_image(flavour: str, what: str) -> str:
    """The built image of a flavour for a test module; skips without Docker, except on CI."""
    import pytest
    why = docker_available()
    if why:
        if on_ci():
            pytest.fail(f"CI=true but {why}: {what} cannot be skipped on CI")
        pytest.skip(f"{what} needs Docker: {why}")
    if os.environ.get("VTIP_VERIFYING_IMAGE"):       # build.sh verifying the image runs us
        return IMAGES[flavour][0]
    return build(flavour)
