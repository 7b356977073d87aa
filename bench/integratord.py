"""Throughput through Wazuh's own daemons: alerts per second that the real wazuh-integratord
gets through with custom-virustotal_ip on cache hits, against a no-op custom integration
(`#!/bin/sh` + `exit 0`) on the same trigger. Both on localhost/wazuh-manager-src (make
wazuh-image), one fresh manager per arm, in one run.

How an arm is timed: sshd logins go to analysisd's queue socket, which raises rule 5715 for
each; integratord runs the measured integration for each, one at a time. A last login that
fails (rule 5760) triggers only a sentinel integration configured after the measured one, so
its file appears once integratord has got through every alert before it. One process inside
the container sends the logins and waits for that file: the time is the alerts' whole trip
through analysisd and integratord, with no `docker exec` in it.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness import REPO
from manager_harness import OSSEC, Manager, manager_image

KEY = "bench-key"
IP = "64.62.197.132"               # malicious in the VT stand-in's fixtures: cached after the warm-up
NOOP = "#!/bin/sh\nexit 0\n"
SENTINEL = "#!/bin/sh\ntouch /tmp/bench-done\nchmod 0666 /tmp/bench-done\n"

SEND_AND_WAIT = """
import os, socket, sys, time
count, ip = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect('/var/ossec/queue/sockets/queue')
start = time.monotonic()
for n in range(count):
    s.send(f"1:/var/log/auth.log:Dec 10 01:02:02 host sshd[1234]: Accepted password for root from {ip} "
           f"port {10000 + n} ssh2".encode())
s.send(f"1:/var/log/auth.log:Dec 10 01:02:03 host sshd[1234]: Failed password for root from {ip} "
       f"port 9999 ssh2".encode())
while not os.path.exists('/tmp/bench-done'):
    if time.monotonic() - start > 600:
        sys.exit('the sentinel integration never ran')
    time.sleep(0.005)
print(time.monotonic() - start)
"""


def add_integration(m: Manager, name: str, script: str, trigger: str) -> None:
    m.put(f"{OSSEC}/integrations/{name}", script, mode="0750", owner="root:wazuh")
    block = (f"\n<ossec_config>\n  <integration>\n    <name>{name}</name>\n    {trigger}\n"
             f"    <alert_format>json</alert_format>\n  </integration>\n</ossec_config>\n")
    m.sh(f"printf '%s' '{block}' >> {OSSEC}/etc/ossec.conf", check=True)


def restart(m: Manager) -> None:
    r = m.control("restart")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    m.wait_running()


def timed_run(m: Manager, count: int) -> float:
    """Seconds for `count` cache-hit logins, then the sentinel, through the manager."""
    m.exec("rm", "-f", "/tmp/bench-done", check=True)
    r = m.exec(f"{OSSEC}/framework/python/bin/python3", "-c", SEND_AND_WAIT, str(count), IP, check=True)
    return float(r.stdout.decode().strip())


def noop_arm(image: str, count: int) -> float:
    m = Manager(image)
    try:
        add_integration(m, "custom-noop", NOOP, "<group>sshd</group>")
        add_integration(m, "custom-bench-done", SENTINEL, "<rule_id>5760</rule_id>")
        restart(m)
        timed_run(m, 1)                                     # warm-up: analysisd ready, files cached
        return timed_run(m, count)
    finally:
        m.stop()


def virustotal_ip_arm(image: str, count: int, files_dir: str | None = None) -> float:
    """Ours deployed by site.yml; `files_dir` deploys another version's files with today's role."""
    m = Manager(image)
    try:
        m.start_vt_server(KEY)
        with tempfile.TemporaryDirectory() as tmp:
            extra = {"virustotal_ip_files_dir": files_dir} if files_dir else {}
            r = m.site(Path(tmp), api_key=KEY, virustotal_ip_api_url="http://127.0.0.1:8090/api/v3", **extra)
            assert r.returncode == 0, r.stdout[-3000:]
        add_integration(m, "custom-bench-done", SENTINEL, "<rule_id>5760</rule_id>")   # after ours
        restart(m)
        timed_run(m, 1)                                     # warm-up: looks the IP up once, then cached
        m.wait_alert(lambda a: a["rule"]["id"] == "199901")
        return timed_run(m, count)
    finally:
        m.stop()


def files_before(files_at, baseline: str, into: Path) -> str | None:
    """The baseline's files/, plus today's package beside them: today's role checks it is there,
    and the baseline's wrapper never imports it (it runs its single-file script)."""
    old = files_at(baseline, into)
    if old is None:
        return None
    if not (old / "virustotal_ip").is_dir():
        shutil.copytree(REPO / "files" / "virustotal_ip", old / "virustotal_ip",
                        ignore=shutil.ignore_patterns("__pycache__"))
    return str(old)


def bench_integratord(count: int, files_at=None, baseline: str = "") -> list:
    """[(arm, alerts, seconds)] for the no-op integration, ours, and ours at `baseline`."""
    image = manager_image("wazuh-src", "the integratord benchmark")
    rows = [("no-op custom integration (sh: exit 0)", count, noop_arm(image, count)),
            ("custom-virustotal_ip, cache hits", count, virustotal_ip_arm(image, count))]
    with tempfile.TemporaryDirectory() as tmp:
        old = files_before(files_at, baseline, Path(tmp)) if files_at else None
        if old is not None:
            rows.append((f"the same at {baseline[:10]} (before)", count, virustotal_ip_arm(image, count, old)))
    return rows
