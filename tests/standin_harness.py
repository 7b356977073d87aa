"""Driving a manager container through Wazuh's own interfaces only.

`docker exec` of the real command paths, appending to logs/alerts/alerts.json, sending to the
queue socket, reading alerts.json and ossec.log: what works against the stand-in image works
the same against wazuh/wazuh-manager:4.14 where they touch shared behaviour.
Waiting is always for a condition (a line in a file, a daemon running), with a time limit.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STANDIN_IMAGE = "localhost/wazuh-manager-standin:4.14"
OSSEC = "/var/ossec"


def docker_available() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine answers"
    return None


def build_standin() -> None:
    subprocess.run([str(REPO / "tests" / "standin" / "build.sh")], check=True)


def standin_image(what: str) -> str:
    """The built stand-in image for a test module; skips without Docker, except on CI."""
    import pytest
    why = docker_available()
    if why:
        if on_ci():
            pytest.fail(f"CI=true but {why}: {what} cannot be skipped on CI")
        pytest.skip(f"{what} needs Docker: {why}")
    build_standin()
    return STANDIN_IMAGE


class Manager:
    """One manager container, removed by stop()."""

    def __init__(self, image: str = STANDIN_IMAGE, command: list | None = None) -> None:
        self.name = f"vtip-test-{uuid.uuid4().hex[:12]}"
        subprocess.run(["docker", "run", "-d", "--name", self.name, "--label", "vtip-test=1", image,
                        *(command or [])], check=True, capture_output=True)
        self.wait_running()

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)

    def exec(self, *argv: str, user: str | None = None, stdin: bytes | None = None,
             check: bool = False) -> subprocess.CompletedProcess:
        cmd = ["docker", "exec", "-i"] + (["--user", user] if user else []) + [self.name, *argv]
        return subprocess.run(cmd, input=stdin, capture_output=True, check=check, timeout=120)

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return self.exec("sh", "-c", script, **kw)

    def put(self, path: str, content: str | bytes, mode: str = "0640", owner: str = "root:wazuh") -> None:
        data = content.encode() if isinstance(content, str) else content
        self.exec("sh", "-c", f"cat > '{path}' && chown {owner} '{path}' && chmod {mode} '{path}'",
                  stdin=data, check=True)

    def read(self, path: str) -> str:
        return self.exec("cat", path, check=True).stdout.decode("utf-8", "replace")

    def control(self, action: str) -> subprocess.CompletedProcess:
        return self.exec(f"{OSSEC}/bin/wazuh-control", action)

    def status(self) -> str:
        return self.control("status").stdout.decode()

    def wait_running(self, timeout: float = 30) -> None:
        def running() -> bool:
            out = self.status()
            return "wazuh-analysisd is running..." in out and "wazuh-integratord is running..." in out
        self.wait(running, timeout, "manager running")

    def wait(self, condition, timeout: float = 30, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def alerts(self) -> list:
        return [json.loads(line) for line in self.read(f"{OSSEC}/logs/alerts/alerts.json").splitlines() if line]

    def ossec_log(self) -> str:
        return self.read(f"{OSSEC}/logs/ossec.log")

    def append_alert(self, alert: dict) -> None:
        """What analysisd would have written: integratord's input (contract section 1)."""
        line = json.dumps(alert, separators=(",", ":")) + "\n"
        self.exec("sh", "-c", f"cat >> {OSSEC}/logs/alerts/alerts.json", stdin=line.encode(), check=True)

    def send(self, message: bytes) -> None:
        """One datagram to analysisd's queue socket, as an integration sends it."""
        code = ("import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
                f"s.connect('{OSSEC}/queue/sockets/queue'); s.send(sys.stdin.buffer.read())")
        self.exec("python3", "-c", code, stdin=message, check=True)

    def wait_alert(self, predicate, timeout: float = 30) -> dict:
        found: list = []

        def seen() -> bool:
            found[:] = [a for a in self.alerts() if predicate(a)]
            return bool(found)
        self.wait(seen, timeout, "an alert")
        return found[0]

    def wait_file(self, path: str, timeout: float = 30) -> None:
        self.wait(lambda: self.exec("test", "-f", path).returncode == 0, timeout, f"{path} to appear")

    def wait_log(self, text: str, timeout: float = 30) -> None:
        self.wait(lambda: text in self.ossec_log(), timeout, f"{text!r} in ossec.log")


def sentinel_rule_xml(rule_id: int = 100199) -> str:
    """A rule that marks a point in analysisd's (ordered) input: when its alert is there,
    every datagram sent before it has been processed."""
    return (f'<group name="test,">\n  <rule id="{rule_id}" level="3">\n    <decoded_as>json</decoded_as>\n'
            f'    <field name="sentinel">^\\d+$</field>\n    <description>sentinel $(sentinel)</description>\n'
            f'  </rule>\n</group>\n')


def sentinel(manager: Manager) -> None:
    """Send a sentinel event and wait until analysisd has alerted on it."""
    token = str(time.monotonic_ns())
    manager.send(f'1:test:{{"sentinel": "{token}"}}'.encode())
    manager.wait_alert(lambda a: a.get("data", {}).get("sentinel") == token)


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
