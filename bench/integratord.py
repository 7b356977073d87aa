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

import json
import shutil
import tempfile
from pathlib import Path

from harness import REPO
from manager_harness import OSSEC, RECORDER_LOG, Manager, alert_time, manager_image

KEY = "bench-key"
IP = "64.62.197.132"               # malicious in the VT stand-in's fixtures: cached after the warm-up
NOOP = "#!/bin/sh\nexit 0\n"
SENTINEL = "#!/bin/sh\ntouch /tmp/bench-done\nchmod 0666 /tmp/bench-done\n"



def timed_run(m: Manager, count: int) -> float:
    """Seconds for `count` cache-hit logins, then the sentinel, through the manager."""
    m.exec("rm", "-f", "/tmp/bench-done", check=True)
    r = m.exec(f"{OSSEC}/framework/python/bin/python3", "-c", STORM, str(count), IP, check=True)
    return json.loads(r.stdout.decode())["seconds"]


def noop_arm(image: str, count: int) -> float:
    m = Manager(image)
    try:
        m.add_integration("custom-noop", NOOP, "<group>sshd</group>")
        m.add_integration("custom-bench-done", SENTINEL, "<rule_id>5760</rule_id>")
        m.restart()
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
        m.add_integration("custom-bench-done", SENTINEL, "<rule_id>5760</rule_id>")   # after ours
        m.restart()
        timed_run(m, 1)                                     # warm-up: looks the IP up once, then cached
        m.wait_alert(lambda a: a["rule"]["id"] == "199901")
        return timed_run(m, count)
    finally:
        m.stop()


def files_before(files_at, baseline: str, into: Path) -> str | None:
    """The baseline's files/, plus whatever of today's package it lacks: today's role checks
    that every module of its manifest is there, and the baseline's code never imports the ones
    it did not have (a single-file script imports none)."""
    old = files_at(baseline, into)
    if old is None:
        return None
    (old / "virustotal_ip").mkdir(exist_ok=True)
    for module in (REPO / "files" / "virustotal_ip").glob("*.py"):
        if not (old / "virustotal_ip" / module.name).exists():
            shutil.copy2(module, old / "virustotal_ip" / module.name)
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


# --------------------------------------------------------------------------- misses (issue 19)

VERDICT_RULES = ("199901", "199902", "199903")     # malicious, suspicious, unknown
# `count` sshd logins into analysisd's queue socket, from one address (argv[2]) or, with
# argv[3] "distinct", from as many addresses under the prefix argv[2]; then a failed login
# (rule 5760) for the sentinel integration, and wait until it ran: integratord is through.
STORM = """
import json, os, socket, sys, time
count, source, distinct = int(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["distinct"]
prefix = source if distinct else source.rsplit(".", 2)[0]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect('/var/ossec/queue/sockets/queue')
sent = {}
start, started_at = time.monotonic(), time.time()
for n in range(count):
    ip = f"{prefix}.{n // 200}.{n % 200 + 1}" if distinct else source
    sent[ip] = time.time()
    s.send(f"1:/var/log/auth.log:Dec 10 01:02:02 host sshd[1234]: Accepted password for root from {ip} "
           f"port {10000 + n} ssh2".encode())
s.send(f"1:/var/log/auth.log:Dec 10 01:02:03 host sshd[1234]: Failed password for root from "
       f"{prefix + '.250.250' if distinct else source} port 9999 ssh2".encode())
while not os.path.exists('/tmp/bench-done'):
    if time.monotonic() - start > 110:
        sys.exit('the sentinel integration never ran')
    time.sleep(0.005)
print(json.dumps({"seconds": time.monotonic() - start, "sent": sent, "started_at": started_at}))
"""
# Wait until no lookup worker holds its slot's lock (they are done).
WORKERS_DONE = """
import fcntl, glob, os
for path in glob.glob('/var/ossec/var/virustotal_ip/worker-*.lock'):
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.close(fd)
"""


class MissArm:
    """What one storm of alerts from new addresses did to integratord and to the verdicts:
    the recorder's first call after the first login (integratord reads alerts.json once a
    second when idle, so up to 1 s of that is its own), its longest gap between two calls,
    and each verdict's time after its login."""

    def __init__(self, label: str, alerts: int, seconds: float, first_call: float, longest_gap: float,
                 latencies: list) -> None:
        self.label, self.alerts, self.seconds = label, alerts, seconds
        self.first_call, self.longest_gap, self.latencies = first_call, longest_gap, latencies


def storm(m: Manager, label: str, count: int, prefix: str, verdicts: bool, distinct: bool = True) -> MissArm:
    """`count` logins from new addresses (not `distinct`: all from the address `prefix`) through
    analysisd and integratord, timed until the sentinel integration ran; the recorder's longest
    gap; each verdict's delay after its login."""
    m.exec("rm", "-f", "/tmp/bench-done", RECORDER_LOG, check=True)
    r = m.exec(f"{OSSEC}/framework/python/bin/python3", "-c", STORM, str(count), prefix,
               *(["distinct"] if distinct else []), check=True)
    result = json.loads(r.stdout.decode())
    latencies = []
    if verdicts:
        def verdict_alerts() -> list:
            return [a for a in m.alerts() if a["rule"]["id"] in VERDICT_RULES
                    and a["data"]["virustotal_ip"]["source"]["ip"].startswith(prefix + ".")]
        m.wait(lambda: len(verdict_alerts()) >= count, 300, f"{count} verdicts")
        latencies = sorted(alert_time(a) - result["sent"][a["data"]["virustotal_ip"]["source"]["ip"]]
                           for a in verdict_alerts() if a["data"]["virustotal_ip"]["source"]["ip"] in result["sent"])
    calls = m.recorder_calls()
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    return MissArm(label, count, result["seconds"], calls[0] - result["started_at"], max(gaps), latencies)


def one_by_one(m: Manager, count: int, prefix: str) -> list:
    """[(login -> verdict, recorder's call -> verdict)] for `count` logins sent one at a time,
    each after the last verdict. The recorder runs right after ours: with the lookup worker,
    when ours has queued the alert; inline, when ours has sent the verdict."""
    import time
    delays = []
    m.exec("rm", "-f", RECORDER_LOG, check=True)
    for n in range(count):
        ip = f"{prefix}.0.{n + 1}"
        sent = time.time()
        m.send(f"1:/var/log/auth.log:Dec 10 01:02:02 host sshd[1234]: Accepted password for root from {ip} "
               f"port 2222 ssh2".encode())
        found = m.wait_alert(lambda a, ip=ip: a["rule"]["id"] in VERDICT_RULES
                             and a["data"]["virustotal_ip"]["source"]["ip"] == ip)
        m.wait(lambda n=n: len(m.recorder_calls()) > n, 30, "the recorder's call")
        delays.append((alert_time(found) - sent, alert_time(found) - m.recorder_calls()[n]))
    return delays


def reset_state(m: Manager) -> None:
    """No worker running, no cache, no pending alert, no open breaker: the next arm starts clean."""
    m.exec(f"{OSSEC}/framework/python/bin/python3", "-c", WORKERS_DONE, check=True)
    m.sh(f"rm -rf {OSSEC}/var/virustotal_ip/*", check=True)


def restart_vt(m: Manager, behaviour: dict) -> None:
    m.sh("pkill -f /opt/vtip-test/vt_server.py; true")
    m.start_vt_server(KEY, behaviour=behaviour)


def bench_misses(count: int, single: int = 10) -> tuple:
    """([MissArm], {label: [alert -> verdict seconds]}): a storm of `count` alerts from new
    addresses through the no-op integration, and through ours with the lookup worker and
    inline, with VirusTotal answering after 300 ms, then not at all; beside them, on the same
    manager, `count` cache hits (arms[1])."""
    image = manager_image("wazuh-src", "the integratord benchmark")
    arms, singles = [], {}
    m = Manager(image)
    try:
        m.add_integration("custom-noop", NOOP, "<group>sshd</group>")
        m.add_recorder()
        m.add_integration("custom-bench-done", SENTINEL, "<rule_id>5760</rule_id>")
        m.restart()
        storm(m, "warm-up", 1, "45.10", verdicts=False)
        arms.append(storm(m, "no-op custom integration (sh: exit 0)", count, "45.11", verdicts=False))
    finally:
        m.stop()
    m = Manager(image)
    try:
        restart_vt(m, {"*": {"delay": 0.3}})
        with tempfile.TemporaryDirectory() as tmp:
            r = m.site(Path(tmp), api_key=KEY, virustotal_ip_api_url="http://127.0.0.1:8090/api/v3",
                       virustotal_ip_key_requests_per_minute=0, virustotal_ip_key_requests_per_day=0)
            assert r.returncode == 0, r.stdout[-3000:]
        m.add_recorder()                                                                # after ours
        m.add_integration("custom-bench-done", SENTINEL, "<rule_id>5760</rule_id>")
        m.restart()
        storm(m, "warm-up", 1, "45.20", verdicts=True)                 # 45.20.0.1 is cached
        arms.append(storm(m, "ours, cache hits (one address, cached)", count, "45.20.0.1", verdicts=False,
                          distinct=False))
        reset_state(m)
        arms.append(storm(m, "ours, lookup worker, VT answers in 0.3 s", count, "45.21", verdicts=True))
        reset_state(m)
        singles["lookup worker"] = one_by_one(m, single, "45.22")
        reset_state(m)
        m.configure_script(lookup_mode="inline")
        arms.append(storm(m, "ours, inline, VT answers in 0.3 s", count, "45.23", verdicts=True))
        reset_state(m)
        singles["inline"] = one_by_one(m, single, "45.24")
        reset_state(m)
        restart_vt(m, {"*": {"hang": True}})
        m.configure_script(lookup_mode="worker")
        arms.append(storm(m, "ours, lookup worker, VT never answers", count, "45.25", verdicts=False))
        restart_vt(m, {})                      # the hanging requests end; so do the workers
        reset_state(m)
        restart_vt(m, {"*": {"hang": True}})
        m.configure_script(lookup_mode="inline")
        arms.append(storm(m, "ours, inline, VT never answers", count, "45.26", verdicts=False))
    finally:
        m.stop()
    return arms, singles
