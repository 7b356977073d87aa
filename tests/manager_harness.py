"""Driving a manager container through Wazuh's own interfaces only.

The image is Wazuh's own daemons built from Wazuh's source (make wazuh-image) at the versions
tests/images/wazuh-src/sources.lock pins: the first (current) one, and the last (the Python 3.9
line) for the end-to-end run; tests/images/build.py names and builds them. Everything here is
`docker exec` of the real command paths, datagrams to the queue socket, and reading alerts.json
and ossec.log, so it works the same against wazuh/wazuh-manager.
Waiting is always for a condition (a line in a file, a daemon running), with a time limit.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# The images, and their building: images/build.py (the tests import these names from here too).
from images.build import (WAZUH_AGENT_IMAGE, WAZUH_OLDEST_VERSION, WAZUH_SRC_IMAGE,  # noqa: F401
                          WAZUH_VERSION, docker_available, manager_image, on_ci)
from wazuh_events import ALERTS_JSON, OSSEC, SEND_DATAGRAM, enrichment_for, parse_alerts

REPO = Path(__file__).resolve().parent.parent
PID_FILES = f"ls {OSSEC}/var/run | grep '[.]pid$'"
# Wazuh's own analysisd processes events 2-5 s after a start (17 s before the images had
# wazuh-db, which analysisd waits for).
ALERT_TIMEOUT = 60
RECORDER_LOG = "/tmp/recorder.log"    # Manager.add_recorder's
# A `python3 -c` program: one query to wazuh-db's socket (argv[1]; 4-byte little-endian length,
# then the text, both ways), its answer printed.
WDB_QUERY = f"""
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect('{OSSEC}/queue/db/wdb')
query = sys.argv[1].encode()
s.sendall(struct.pack('<I', len(query)) + query)
size = struct.unpack('<I', s.recv(4))[0]
answer = b''
while len(answer) < size:
    answer += s.recv(size - len(answer))
print(answer.decode())
"""


def run_id() -> str:
    """This test run's id: conftest.py sets it in the controller, whose workers inherit it."""
    return os.environ.get("VTIP_RUN_ID") or f"p{os.getpid()}"


def deployed_image(base: str = WAZUH_SRC_IMAGE) -> str:
    """`base` after a plain `site.yml` (the harness's inventory, no extra variables), committed as
    an image once per test run: the first worker to ask deploys on a fresh manager, stops it
    cleanly (no stale pid files) and commits it; the others wait on a lock and reuse it. A
    container of it starts as a deployed manager (its /init starts Wazuh). Removed at the end of
    the run (conftest.py: remove_run_images)."""
    image = f"localhost/vtip-deployed:{run_id()}"
    with open(f"/tmp/vtip-deployed-{run_id()}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode == 0:
            return image
        m = Manager(base)
        try:
            with tempfile.TemporaryDirectory() as workdir:
                r = m.site(Path(workdir))
            assert r.returncode == 0, f"site.yml failed on a fresh manager:\n{r.stdout[-3000:]}"
            subprocess.run(["docker", "stop", "-t", "60", m.name], check=True, capture_output=True)
            subprocess.run(["docker", "commit", "--change", f"LABEL vtip-run={run_id()}", m.name, image],
                           check=True, capture_output=True)
        finally:
            m.stop()
    return image


def remove_run_images() -> None:
    """The images this test run committed (deployed_image)."""
    if docker_available():
        return
    listed = subprocess.run(["docker", "images", "-q", "--filter", f"label=vtip-run={run_id()}"],
                            capture_output=True, text=True, check=False).stdout.split()
    if listed:
        subprocess.run(["docker", "rmi", "-f", *sorted(set(listed))], capture_output=True, check=False)
    Path(f"/tmp/vtip-deployed-{run_id()}.lock").unlink(missing_ok=True)


class Container:
    """One container of ours, driven with `docker exec`, removed by stop()."""

    def __init__(self, image: str, *options: str, command: list | None = None) -> None:
        self.image = image
        self.name = f"vtip-test-{uuid.uuid4().hex[:12]}"
        subprocess.run(["docker", "run", "-d", "--name", self.name, "--label", "vtip-test=1", *options, image,
                        *(command or [])], check=True, capture_output=True)

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

    def hosts_deny(self) -> str:
        """/etc/hosts.deny (host-deny's blocks), empty when there is none."""
        r = self.exec("cat", "/etc/hosts.deny")
        return r.stdout.decode() if r.returncode == 0 else ""

    def wait(self, condition, timeout: float = 30, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def read_tail(self, path: str, lines: int = 5) -> str:
        return self.exec("tail", f"-{lines}", path).stdout.decode("utf-8", "replace")

    def wait_file(self, path: str, timeout: float = 30) -> None:
        self.wait(lambda: self.exec("test", "-f", path).returncode == 0, timeout, f"{path} to appear")

    def control(self, action: str) -> subprocess.CompletedProcess:
        return self.exec(f"{OSSEC}/bin/wazuh-control", action)

    def status(self) -> str:
        return self.control("status").stdout.decode()

    def ossec_log(self) -> str:
        return self.read(f"{OSSEC}/logs/ossec.log")

    def wait_log(self, text: str, timeout: float = ALERT_TIMEOUT) -> None:
        self.wait(lambda: text in self.ossec_log(), timeout, f"{text!r} in ossec.log")


class Manager(Container):
    """One manager container, running once constructed."""

    def __init__(self, image: str = WAZUH_SRC_IMAGE, command: list | None = None) -> None:
        super().__init__(image, command=command)
        self.wait_running()

    def role_block(self) -> str:
        """ossec.conf from the role's BEGIN marker on; fails when the role wrote no block."""
        conf = self.read(f"{OSSEC}/etc/ossec.conf")
        assert "<!-- BEGIN custom-virustotal_ip" in conf, "ossec.conf has no block of the role's"
        return conf[conf.index("<!-- BEGIN custom-virustotal_ip"):]

    def snapshot(self) -> list:
        """Everything the role may change, at the strongest strength, for "nothing changed":
        each file, directory and link under etc/ and integrations/ and in /etc/cron.d and
        /etc/systemd/system with its owner, group and mode, the SHA-256 of each file (but
        bytecode, which Python rewrites from its source and checks itself), and the daemons'
        pid files (a restart changes them)."""
        where = f"{OSSEC}/etc {OSSEC}/integrations /etc/cron.d /etc/systemd/system"
        out = self.sh(f"find {where} -printf '%p %u:%g %m %y\\n' 2>/dev/null | sort; "
                      f"find {where} -type f ! -name '*.pyc' -exec sha256sum {{}} + 2>/dev/null | sort; "
                      f"{PID_FILES}").stdout.decode()
        return out.splitlines()

    def pid_files(self) -> str:
        """The daemons' pid files: a restart changes them (not analysisd's .state file, which
        it writes there seconds after a start)."""
        return self.sh(PID_FILES).stdout.decode()

    def add_integration(self, name: str, script: str, trigger: str) -> None:
        """integrations/<name> (a script, root:wazuh 0750) and its <integration> block at the end
        of ossec.conf: integratord runs it after those before it. Restart to load it."""
        self.put(f"{OSSEC}/integrations/{name}", script, mode="0750", owner="root:wazuh")
        block = (f"\n<ossec_config>\n  <integration>\n    <name>{name}</name>\n    {trigger}\n"
                 f"    <alert_format>json</alert_format>\n  </integration>\n</ossec_config>\n")
        self.sh(f"printf '%s' '{block}' >> {OSSEC}/etc/ossec.conf", check=True)

    def add_recorder(self) -> None:
        """A second integration after those configured (ours), on the sshd alerts, that writes
        the time of each call to RECORDER_LOG: what any other integration would see."""
        self.add_integration("custom-recorder", f"#!/bin/sh\ndate +%s.%N >> {RECORDER_LOG}\n", "<group>sshd</group>")

    def recorder_calls(self) -> list:
        """The recorder's calls so far, as epoch times."""
        r = self.exec("cat", RECORDER_LOG)
        return [float(t) for t in r.stdout.split()] if r.returncode == 0 else []

    def configure_script(self, **values) -> None:
        """Settings in the script's config file the role wrote, read by every run (no restart)."""
        path = f"{OSSEC}/etc/custom-virustotal_ip.json"
        self.put(path, json.dumps({**json.loads(self.read(path)), **values}), mode="0640", owner="root:wazuh")

    def restart(self) -> None:
        """wazuh-control restart, then wait until it runs."""
        r = self.control("restart")
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        self.wait_running()

    def wait_running(self, timeout: float = 30) -> None:
        """analysisd running, and integratord if an <integration> is configured (without one
        it logs a clean exit)."""
        integrations = "<integration>" in self.read(f"{OSSEC}/etc/ossec.conf")

        def running() -> bool:
            out = self.status()
            return "wazuh-analysisd is running..." in out and (
                not integrations or "wazuh-integratord is running..." in out)
        self.wait(running, timeout, "manager running")

    def alerts(self) -> list:
        """alerts.json as far as it is written (analysisd creates it at its first start)."""
        return parse_alerts(self.exec("cat", ALERTS_JSON).stdout.decode("utf-8", "replace"))

    def alerts_with(self, text: str) -> list:
        """The alerts whose line in alerts.json holds `text`."""
        return parse_alerts(self.exec("grep", "-F", "--", text, ALERTS_JSON).stdout.decode("utf-8", "replace"))

    def send(self, message: bytes) -> None:
        """One datagram to analysisd's queue socket, as an integration sends it. Until analysisd
        binds it after a (re)start the socket refuses (or is missing): retried for 60 s."""
        self.exec("python3", "-c", SEND_DATAGRAM, stdin=message, check=True)

    def site(self, workdir: Path, *args: str, api_key: str = "tag-test-key", playbook: Path = REPO / "site.yml",
             other_hosts: dict | None = None, **host_vars) -> subprocess.CompletedProcess:
        """The real `ansible-playbook site.yml` (or `playbook`) on this manager, as a standalone
        manager reached with `docker exec` (an inventory written in `workdir`), with `args` added.
        `other_hosts` (name -> vars) adds more managers to the inventory."""
        extra = "".join(f"              {name}: {json.dumps(value)}\n" for name, value in host_vars.items())
        for host, variables in (other_hosts or {}).items():
            extra += f"            {host}:\n" + "".join(f"              {name}: {json.dumps(value)}\n"
                                                      for name, value in variables.items())
        inventory = workdir / "inventory.yml"
        inventory.write_text(f"""all:
  children:
    wazuh_managers:
      children:
        wazuh_master:
          hosts:
            {self.name}:
              ansible_connection: community.docker.docker
              ansible_become: false
              virustotal_ip_api_key: {api_key}
{extra}""")
        return run_playbook(inventory, playbook, *args)

    def start_vt_server(self, api_key: str, port: int = 8090, behaviour: dict | None = None) -> None:
        """tests/vt_server.py (VirusTotal v3 as its fixtures say) inside the container, on
        127.0.0.1:port, run by the manager's Python; returns once it accepts connections.
        `behaviour`: ip or "*" -> failure spec (VTServer.fail), e.g. {"*": {"delay": 0.3}}."""
        self.exec("mkdir", "-p", "/opt/vtip-test", check=True)
        for src in ("tests/vt_server.py", "tests/fixtures/vt_ip_objects.json"):
            subprocess.run(["docker", "cp", str(REPO / src), f"{self.name}:/opt/vtip-test/"], check=True,
                           capture_output=True)
        if behaviour:
            fixtures = json.loads((REPO / "tests/fixtures/vt_ip_objects.json").read_text())
            self.put("/opt/vtip-test/vt_ip_objects.json", json.dumps({**fixtures, "behaviour": behaviour}),
                     mode="0644", owner="root:root")
        self.sh(f"setsid nohup {OSSEC}/framework/python/bin/python3 /opt/vtip-test/vt_server.py --port {port} "
                f"--api-key {api_key} --fixtures /opt/vtip-test/vt_ip_objects.json > /opt/vtip-test/vt.log 2>&1 "
                "< /dev/null &", check=True)
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"
        self.wait(lambda: self.exec(f"{OSSEC}/framework/python/bin/python3", "-c", probe).returncode == 0, 20,
                  "the VirusTotal stand-in")

    def wait_alert(self, predicate, timeout: float = ALERT_TIMEOUT) -> dict:
        found: list = []

        def seen() -> bool:
            found[:] = [a for a in self.alerts() if predicate(a)]
            return bool(found)
        self.wait(seen, timeout, "an alert")
        return found[0]

    def agents(self) -> list:
        """The agents wazuh-db knows (its `global get-all-agents` and `get-agent-info` queries)."""
        listed = self.exec("python3", "-c", WDB_QUERY, "global get-all-agents last_id 0").stdout.decode()
        agents = []
        for row in json.loads(listed.partition(" ")[2] or "[]"):
            info = self.exec("python3", "-c", WDB_QUERY, f"global get-agent-info {row['id']}").stdout.decode()
            agents += json.loads(info.partition(" ")[2] or "[]")
        return agents

    def wait_agent(self, name: str, timeout: float = 90) -> str:
        """Waits until wazuh-db has agent `name` active with its version; returns its id ("001")."""
        found: list = []

        def known() -> bool:
            found[:] = [a for a in self.agents() if a["name"] == name and a.get("connection_status") == "active"
                        and a.get("version")]
            return bool(found)
        self.wait(known, timeout, f"agent {name} active with its version in wazuh-db")
        return f"{found[0]['id']:03d}"

    def enrichment_for(self, ip: str, timeout: float = 2 * ALERT_TIMEOUT) -> dict:
        """Send an sshd login from `ip` to analysisd (stock rule 5715, group sshd, fires) and
        return the enrichment alert of the alert it raised (wazuh_events.enrichment_for)."""
        def context() -> str:
            return f"; integrations.log ends:\n{self.read_tail(f'{OSSEC}/logs/integrations.log')}"
        return enrichment_for(self.send, self.alerts_with, ip, timeout, context)

def run_playbook(inventory: Path, playbook: Path, *args: str) -> subprocess.CompletedProcess:
    """The real `ansible-playbook` of this venv, with this checkout's ansible.cfg, on `inventory`."""
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0")
    return subprocess.run([str(bindir / "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)


def alert_time(alert: dict) -> float:
    """An alert's timestamp (analysisd's, to the millisecond) as epoch seconds."""
    import datetime
    return datetime.datetime.strptime(alert["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


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


# agentd waits this long after enrolling before it connects (20 s by default): enough for
# remoted to read the new key, which it does within ~5 s here (a connection before that is
# refused as an invalid ID, and retried 10 s later).
ENROLLMENT_DELAY = 6
# The agent's keepalive interval (<notify_time>, 20 s by default): the manager records the
# agent's version and sends its shared configuration in answer to keepalives.
KEEP_ALIVE = 2


class Agent(Container):
    """A Wazuh agent (WAZUH_AGENT_IMAGE) beside `manager`, in its network namespace: it enrols
    with the manager's authd and connects to its remoted over 127.0.0.1, as an agent host would
    over the network. With `network`, a host of its own on that Docker network instead (its own
    network namespace: an iptables rule of its firewall-drop is its alone), reaching the manager
    by its container name. Connected once constructed (removed if it does not get there)."""

    def __init__(self, manager: Manager, name: str = "web01", *options: str, network: str | None = None) -> None:
        # Beside the manager, the agent shares its hostname: authd refuses an agent named as the
        # manager, so it gets a name of its own. ENROLLMENT_DELAY and KEEP_ALIVE: above.
        where = (["--network", network, "--hostname", name, "-e", f"WAZUH_MANAGER={manager.name}"] if network
                 else ["--network", f"container:{manager.name}"])
        super().__init__(WAZUH_AGENT_IMAGE, *where,
                         "-e", f"WAZUH_AGENT_NAME={name}", "-e", f"ENROLLMENT_DELAY={ENROLLMENT_DELAY}",
                         "-e", f"WAZUH_KEEP_ALIVE_INTERVAL={KEEP_ALIVE}", *options)
        self.agent_name = name
        try:
            self.id = self.wait_known(manager)
            self.wait(self.reloaded, 60, f"agent {name} running with the manager's shared configuration")
        except BaseException:
            self.stop()
            raise

    def wait_known(self, manager: Manager) -> str:
        """Waits until the manager knows this agent; returns its id. Ready when the manager
        knows the agent's version (from a keepalive): until then analysisd skips every Active
        Response to it, logging nothing above debug level."""
        return manager.wait_agent(self.agent_name)

    def reloaded(self) -> bool:
        """The agent got the manager's shared configuration: agentd restarted its modules and then
        reloaded itself. Lines written to a log before logcollector's restart are lost (it reads
        a file from its end), so nothing is written before this."""
        log = self.ossec_log()
        after = log[log.rfind("wazuh-logcollector: INFO: (1225): SIGNAL"):]
        return "Reload agentd." in log and "wazuh-logcollector: INFO: Started" in after

    def log(self, line: str) -> None:
        """A line appended to the agent's /var/log/auth.log, as sshd's syslog writes it."""
        self.exec("sh", "-c", "cat >> /var/log/auth.log", stdin=f"{line}\n".encode(), check=True)
