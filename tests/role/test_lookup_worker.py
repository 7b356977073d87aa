"""The lookup worker on Wazuh's own analysisd and integratord: a VirusTotal that never answers
holds no other integration, and a verdict still comes from the worker once it answers.

A second integration after ours on the same alerts (a recorder: one line per call) is what
every other integration on a manager would see. Inline, the first alert from a new address
would hold integratord for timeout x (retries + 1) = 40 s with integratord's defaults; the
waits below are far shorter than that.
"""
from __future__ import annotations

import re

from harness import REPO
from manager_harness import OSSEC, alert_time

KEY = "worker-test-key"
ADDRESSES = [f"45.33.{n}.{n + 1}" for n in range(6)]        # new to the cache: every one a miss


def login(manager, ip: str) -> None:
    """An sshd login from `ip` (stock rule 5715, group sshd: ours and the recorder run)."""
    manager.send(f"1:/var/log/auth.log:Dec 10 01:02:02 host sshd[1234]: Accepted password for root from {ip} "
                 "port 2222 ssh2".encode())


def test_a_virustotal_that_never_answers_holds_no_other_integration(deployed):
    manager = deployed
    manager.start_vt_server(KEY, behaviour={"*": {"hang": True}})
    manager.configure_script(api_url="http://127.0.0.1:8090/api/v3", api_key=KEY)
    manager.add_recorder()                                                        # after ours
    manager.restart()
    for ip in ADDRESSES:
        login(manager, ip)
    manager.wait(lambda: len(manager.recorder_calls()) == len(ADDRESSES), 15, "the recorder integration's calls")
    status = manager.exec(f"{OSSEC}/framework/python/bin/python3",
                          f"{OSSEC}/integrations/custom-virustotal_ip.py", "--status", check=True).stdout.decode()
    assert f"Pending lookups:   {len(ADDRESSES)}" in status, status
    assert "Lookups:           by lookup workers, at most 2 at once; running: slot 0: pid" in status, status


def test_the_worker_sends_the_verdict_that_integratord_did_not_wait_for(deployed):
    """VirusTotal answers after 2 s: the recorder after ours is called at once, the verdict
    comes 2 s later (inline, ours would have returned only with the verdict sent)."""
    manager = deployed
    manager.start_vt_server(KEY, behaviour={"*": {"delay": 2}})
    manager.configure_script(api_url="http://127.0.0.1:8090/api/v3", api_key=KEY)
    manager.add_recorder()
    manager.restart()
    verdict = manager.enrichment_for("64.62.197.132")
    assert (verdict["rule"]["id"], verdict["data"]["virustotal_ip"]["cached"]) == ("199901", "false")   # as text
    assert "deferred" not in verdict["data"]["virustotal_ip"]
    [called] = manager.recorder_calls()
    assert called + 1 < alert_time(verdict), (called, alert_time(verdict))


def test_the_uninstall_stops_the_lookup_workers_and_leaves_no_state(deployed, tmp_path):
    """A worker waiting on VirusTotal when the uninstall runs: stopped (it would send its
    verdict after the uninstall and write to the state the uninstall removed)."""
    manager = deployed
    manager.start_vt_server(KEY, behaviour={"*": {"hang": True}})
    manager.configure_script(api_url="http://127.0.0.1:8090/api/v3", api_key=KEY)
    # Each request waits for its <timeout>: long enough that the worker still waits when the
    # uninstall reaches it, however long the playbook's earlier tasks take on a loaded machine.
    manager.sh(f"sed -i 's|<timeout>10</timeout>|<timeout>600</timeout>|' {OSSEC}/etc/ossec.conf", check=True)
    manager.restart()
    login(manager, ADDRESSES[0])
    manager.wait(lambda: workers(manager), 15, "a lookup worker")
    r = manager.site(tmp_path, playbook=REPO / "playbooks" / "uninstall.yml")
    assert r.returncode == 0, r.stdout[-3000:]
    assert re.search(r"TASK \[virustotal_ip : Stop the lookup workers\] \**\nchanged: ", r.stdout), r.stdout[-3000:]
    assert workers(manager) == ""
    assert manager.exec("test", "-e", f"{OSSEC}/var/virustotal_ip").returncode == 1


def workers(manager) -> str:
    """The lookup workers' command lines in the manager (the tag is in their argv)."""
    return manager.sh("pgrep -af 'virustotal_ip-lookup-worke[r]' || true").stdout.decode()   # (not this sh)
