"""`make demo`: the whole product working, on the embedded default.

One manager container (Wazuh's own daemons built from source, localhost/wazuh-manager-src,
built if needed, or WAZUH_MANAGER_IMAGE), a VirusTotal v3 stand-in inside it (or the real
VirusTotal when VT_API_KEY is set), the real `ansible-playbook site.yml` through a generated
inventory, then sshd logins from the two addresses of docs/verdict.md's worked examples and a
private one sent to analysisd's queue socket as a log collector would, and the enrichments as
they arrive.
A second run reuses the container and is quick; `make demo-clean` removes it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from manager_harness import WAZUH_VERSION  # noqa: E402  (what the tests use)
from wazuh_events import ALERTS_JSON, SEND_DATAGRAM, login_message, parse_alerts, sshd_login_line  # noqa: E402
BUILD = REPO / "build" / "demo"
CONTAINER = "vtip-demo-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
WAZUH_SRC = f"localhost/wazuh-manager-src:{WAZUH_VERSION}"
OSSEC = "/var/ossec"
DEMO_KEY = "demo-key-not-a-real-virustotal-key"
ALERTS = [("64.62.197.132", "worked example 1"), ("108.157.98.17", "worked example 2"),
          ("192.168.1.20", "a private address")]


class DemoError(Exception):
    """A step failed: what, and how to fix it."""


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def run(argv: list, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if check and r.returncode != 0:
        raise DemoError(f"{' '.join(argv[:3])} ... failed:\n{(r.stderr or r.stdout)[-2000:]}")
    return r


def dexec(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return run(["docker", "exec", "-i", CONTAINER, *argv], input=stdin, check=check)


def need_docker() -> None:
    if shutil.which("docker") is None:
        raise DemoError("Docker is not installed. On Debian: sudo apt-get install docker.io, then start it "
                        "(sudo systemctl start docker, or dockerd &).")
    if run(["docker", "info"], check=False).returncode != 0:
        raise DemoError("No Docker engine answers. Start it (sudo systemctl start docker, or dockerd &), "
                        "or add your user to the docker group.")


def container_state() -> str:
    r = run(["docker", "inspect", "-f", "{{.State.Status}}", CONTAINER], check=False)
    return r.stdout.strip() if r.returncode == 0 else "absent"


def wait_for(what: str, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    print(f"    waiting for {what} ", end="", flush=True)
    while time.monotonic() < deadline:
        if condition():
            print(" ok", flush=True)
            return
        print(".", end="", flush=True)
        time.sleep(0.5)
    print(" timed out", flush=True)
    raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")


def manager_running() -> bool:
    out = dexec(f"{OSSEC}/bin/wazuh-control", "status", check=False).stdout
    # integratord runs only once an <integration> is configured: the deployment waits for it
    return "wazuh-analysisd is running..." in out


def start_manager(image: str) -> bool:
    """The manager container; True when this run created it."""
    state = container_state()
    if state == "running":
        step(f"Reusing the manager container {CONTAINER}")
        return False
    if state != "absent":
        run(["docker", "rm", "-f", CONTAINER])
    if image == WAZUH_SRC:
        step("Building Wazuh's manager daemons from source (once, ~2-3 min; then reused when nothing changed)")
        r = subprocess.run([str(REPO / "tests/images/wazuh-src/build.sh"), WAZUH_VERSION], check=False)
        if r.returncode != 0:
            raise DemoError("building the from-source Wazuh image failed (see above)")
    step(f"Starting the manager container {CONTAINER} ({image})")
    run(["docker", "run", "-d", "--name", CONTAINER, "--label", "vtip-demo=1", image])
    return True


def start_vt_standin() -> None:
    alive = 'kill -0 "$(cat /opt/vtip-demo/vt.pid 2>/dev/null)" 2>/dev/null'
    if dexec("sh", "-c", alive, check=False).returncode == 0:
        return
    step("Starting the local VirusTotal v3 stand-in inside the container (127.0.0.1:8090)")
    dexec("mkdir", "-p", "/opt/vtip-demo")
    for src in ("tests/vt_server.py", "tests/fixtures/vt_ip_objects.json"):
        run(["docker", "cp", str(REPO / src), f"{CONTAINER}:/opt/vtip-demo/"])
    dexec("sh", "-c", f"setsid nohup {OSSEC}/framework/python/bin/python3 /opt/vtip-demo/vt_server.py "
          f"--port 8090 --api-key {DEMO_KEY} --fixtures /opt/vtip-demo/vt_ip_objects.json "
          "> /opt/vtip-demo/vt.log 2>&1 < /dev/null & echo $! > /opt/vtip-demo/vt.pid")
    probe = ("import socket; socket.create_connection(('127.0.0.1', 8090), 1).close()")
    wait_for("the VirusTotal stand-in",
             lambda: dexec(f"{OSSEC}/framework/python/bin/python3", "-c", probe, check=False).returncode == 0, 20)


def deploy(real_key: str) -> None:
    BUILD.mkdir(parents=True, exist_ok=True)
    inventory = BUILD / "inventory.yml"
    template = (REPO / "demo" / "inventory.template.yml").read_text()
    inventory.write_text(template.format(
        container=CONTAINER, per_minute=4 if real_key else 0, per_day=500 if real_key else 0,
        api_url="https://www.virustotal.com/api/v3" if real_key else "http://127.0.0.1:8090/api/v3"))
    step("Deploying with the real `ansible-playbook site.yml` (log: build/demo/ansible.log)")
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", VTIP_DEMO_KEY=real_key or DEMO_KEY,
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    with open(BUILD / "ansible.log", "w") as log:
        proc = subprocess.Popen([str(bindir / "ansible-playbook"), "-i", str(inventory), str(REPO / "site.yml")],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        task = ""
        print("    ", end="", flush=True)
        for line in proc.stdout:
            log.write(line)
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line.split("[", 1)[1].split("]", 1)[0].replace("virustotal_ip : ", "")
                print(".", end="", flush=True)
            elif line.startswith(("changed:", "fatal:", "failed:")):
                print(f"\n    {line.split(':', 1)[0]}: {task}\n    ", end="", flush=True)
            elif " ok=" in line and "changed=" in line:
                print(f"\n    {' '.join(line.split())}", flush=True)
        if proc.wait() != 0:
            raise DemoError("ansible-playbook site.yml failed; see build/demo/ansible.log")


def feed_and_collect() -> list:
    step("Sending three sshd logins to analysisd (it raises rule 5715, which triggers the integration)")
    lines = {}
    for ip, what in ALERTS:
        line = sshd_login_line(ip)                   # unique by its port
        lines[line] = (ip, what)
        dexec(f"{OSSEC}/framework/python/bin/python3", "-c", SEND_DATAGRAM, stdin=login_message(line).decode())
    ids: dict = {}                                   # alert id of each login's alert -> its line
    rows: dict = {}

    def arrived() -> bool:
        for a in parse_alerts(dexec("cat", ALERTS_JSON, check=False).stdout):
            if a.get("full_log") in lines:
                ids[a["id"]] = a["full_log"]
            src = a.get("data", {}).get("virustotal_ip", {}).get("source", {})
            if src.get("alert_id") in ids:
                rows[ids[src["alert_id"]]] = a
        log = dexec("cat", f"{OSSEC}/logs/integrations.log", check=False).stdout
        for alert_id, line in ids.items():
            ip = lines[line][0]
            if line not in rows and f'alert "{alert_id}": data.srcip {ip} is not a global address' in log:
                rows[line] = None
        return len(rows) == len(lines)
    wait_for("the enrichments", arrived, 120)
    return [(lines[k][0], lines[k][1], rows[k]) for k in lines]


def print_table(results: list) -> None:
    print()
    print(f"{'IP':<15} {'verdict':<10} {'reasons':<24} {'rule':<7} {'level':<5} description")
    print("-" * 100)
    for ip, _what, alert in results:
        if alert is None:
            print(f"{ip:<15} {'-':<10} {'not looked up':<24} {'-':<7} {'-':<5} private address: no request, no event")
            continue
        vt = alert["data"]["virustotal_ip"]
        reasons = vt.get("reasons", vt.get("description", ""))
        if isinstance(reasons, list):
            reasons = ",".join(reasons)
        print(f"{ip:<15} {vt.get('verdict', 'error'):<10} {reasons[:24]:<24} {alert['rule']['id']:<7} "
              f"{alert['rule']['level']:<5} {alert['rule']['description']}")
    print()
    print("Where to look:")
    print(f"  docker exec {CONTAINER} tail -n 5 {OSSEC}/logs/alerts/alerts.json")
    print(f"  docker exec {CONTAINER} tail {OSSEC}/logs/integrations.log")
    print(f"  docker exec {CONTAINER} {OSSEC}/framework/python/bin/python3 "
          f"{OSSEC}/integrations/custom-virustotal_ip.py --status")
    print("Remove it: make demo-clean")


def clean() -> int:
    if shutil.which("docker") and run(["docker", "info"], check=False).returncode == 0:
        run(["docker", "rm", "-f", CONTAINER], check=False)
    shutil.rmtree(BUILD, ignore_errors=True)
    print(f"Removed the demo container {CONTAINER} and build/demo.")
    return 0


def main() -> int:
    if sys.argv[1:] == ["clean"]:
        return clean()
    real_key = os.environ.get("VT_API_KEY", "")
    image = os.environ.get("WAZUH_MANAGER_IMAGE", WAZUH_SRC)
    created = False
    try:
        need_docker()
        created = start_manager(image)
        wait_for("the manager (wazuh-analysisd)", manager_running, 60)
        if real_key:
            step("VT_API_KEY is set: asking the real VirusTotal")
        else:
            start_vt_standin()
        deploy(real_key)
        print_table(feed_and_collect())
        return 0
    except DemoError as exc:
        print(f"\nmake demo failed: {exc}", file=sys.stderr)
        if created:
            run(["docker", "rm", "-f", CONTAINER], check=False)
            print(f"(removed the container {CONTAINER} this run had created)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
