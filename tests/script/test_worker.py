"""The lookup worker (lookup_mode worker, the default): a cache miss never holds
wazuh-integratord's call. The run queues the alert and starts a detached worker, which looks
the address up and sends the verdict; a killed worker loses nothing (--drain sends its alerts).

VirusTotal "hangs" here until the test releases it (vt_server.py), so every "the run ended
before VirusTotal answered" is an order of events, not a measured time.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from harness import API_KEY, WazuhHome, sample_alert, script_package, split_message


def alert(ip: str, alert_id: str) -> dict:
    return sample_alert(ip, id=alert_id)


def sent(home) -> list:
    """The `virustotal_ip` objects on analysisd's queue socket since the last look."""
    return [split_message(raw)[1]["virustotal_ip"] for raw in home.drain_queue()]


def test_a_miss_ends_the_run_before_virustotal_answers_and_the_worker_sends_the_verdict(home, vt):
    vt.fail(hang=True)
    r = home.run(wait=False)
    assert (r.rc, r.messages) == (0, [])        # ended, with VirusTotal not yet asked or answering
    vt.wait_requests(1)
    assert home.worker_pids() and home.sql("SELECT ip, deferred FROM pending") == [("64.62.197.132", 0)]
    vt.behaviour.clear()
    vt.release()
    home.wait_workers()
    [e] = sent(home)
    assert (e["verdict"], e["cached"], "deferred" in e, e["source"]["alert_id"]) == (
        "malicious", False, False, "1753101678.8211")
    assert len(home.waiting()) == 0
    assert vt.paths() == ["/api/v3/ip_addresses/64.62.197.132"]


def test_the_worker_is_detached_from_the_run_and_holds_no_key_in_argv_or_environment(home, vt):
    vt.fail(hang=True)
    home.run(wait=False)
    vt.wait_requests(1)
    [pid] = home.worker_pids()
    proc = Path(f"/proc/{pid}")
    stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[3]) == pid                  # its own session (setsid), not integratord's
    fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    assert [fds[0], fds[1], fds[2]] == ["/dev/null"] * 3
    assert fds[3].endswith("/var/virustotal_ip/worker-0.lock")
    assert not [target for target in fds.values() if target.startswith("pipe:")], fds
    for name in ("cmdline", "environ"):
        assert API_KEY.encode() not in (proc / name).read_bytes(), name
    assert b"virustotal_ip-lookup-worker" in (proc / "cmdline").read_bytes()
    vt.behaviour.clear()
    vt.release()


def test_status_shows_the_running_worker(home, vt):
    vt.fail(hang=True)
    home.run(wait=False)
    vt.wait_requests(1)
    [pid] = home.worker_pids()
    r = home.cli("--status", wait=False)
    assert f"Lookups:           by lookup workers, at most 2 at once; running: slot 0: pid {pid}, since " in r.stdout
    vt.behaviour.clear()
    vt.release()
    home.wait_workers()
    assert "Lookups:           by lookup workers, at most 2 at once; none running" in home.cli("--status").stdout


def test_a_worker_killed_mid_lookup_loses_nothing_and_drain_sends_the_alert_once(home, vt):
    home.config({"api_url": vt.url, "api_key": API_KEY})      # as deployed: --drain reads the key there
    vt.fail(hang=True)
    home.run(wait=False)
    vt.wait_requests(1)
    [pid] = home.worker_pids()
    os.kill(pid, signal.SIGKILL)
    home.wait_workers()                         # its lock went with it
    assert home.sql("SELECT ip, slot FROM pending") == [("64.62.197.132", 0)]   # still claimed by the dead
    vt.behaviour.clear()
    vt.release()
    r = home.cli("--drain")
    assert [(e["source"]["alert_id"], e["verdict"]) for e in r.enrichments()] == [("1753101678.8211", "malicious")]
    assert len(home.waiting()) == 0
    assert home.cli("--drain").messages == []


def test_a_dead_workers_alerts_are_taken_over_by_a_worker_on_another_slot(home, vt):
    alert_ids = {"64.62.197.132": "2.0", "108.157.98.17": "2.1"}
    vt.fail(hang=True)
    for ip, alert_id in alert_ids.items():
        home.run(alert(ip, alert_id), wait=False)
    vt.wait_requests(2)
    pids = home.worker_pids()
    assert len(pids) == 2
    # Each worker claimed one alert; which one depends on which worker took the queue first (the
    # second run's worker may, under load): read the claims.
    claims = dict(home.sql("SELECT slot, ip FROM pending"))
    assert sorted(claims) == [0, 1]
    os.kill(pids[1], signal.SIGKILL)            # slot 1's worker, with its claim
    vt.behaviour.clear()
    vt.release()
    home.wait_workers()
    assert [e["source"]["alert_id"] for e in sent(home)] == [alert_ids[claims[0]]]
    assert home.sql("SELECT ip, slot FROM pending") == [(claims[1], 1)]
    home.run(alert("93.184.216.34", "2.2"), wait=False)   # its worker gets slot 0, reaps slot 1's claims
    home.wait_workers()
    assert sorted(e["source"]["alert_id"] for e in sent(home)) == sorted([alert_ids[claims[1]], "2.2"])
    assert len(home.waiting()) == 0


def test_a_virustotal_that_does_not_answer_opens_the_breaker_after_one_timeout(home, vt):
    vt.fail(hang=True)
    r = home.run(alert("64.62.197.132", "3.1"), timeout=1, retries=0)
    [e] = r.enrichments()
    assert e["error"] == "Timeout"
    r = home.run(alert("108.157.98.17", "3.2"), timeout=1, retries=0)
    assert r.messages == [] and "VirusTotal did not answer" in r.log   # not asked again: no 1 s wait
    assert len(vt.requests) == 1
    assert [(ip, deferred) for ip, deferred, _ in home.waiting()] == [("64.62.197.132", 1), ("108.157.98.17", 1)]
    [(until,)] = home.sql("SELECT value FROM state WHERE key = 'quota_until'")
    assert 55 < float(until) - time.time() <= 60
    vt.behaviour.clear()
    vt.release()


def test_the_worker_ends_within_the_time_bound_of_each_lookup(home, vt):
    vt.fail(hang=True)
    started = time.monotonic()
    home.run(timeout=1, retries=1)
    assert time.monotonic() - started <= 1 * (1 + 1) + 2
    vt.behaviour.clear()
    vt.release()


def test_runs_racing_for_new_addresses_send_each_alert_once_with_at_most_lookup_parallel_requests(home, vt):
    vt.fail(delay=0.2)
    ips = [f"8.8.{i}.{i}" for i in range(1, 13)]
    procs = [subprocess.Popen(home.integratord_argv(home.write_alert(alert(ip, f"4.{n}"))), cwd=home.root,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n, ip in enumerate(ips + ips)]   # each address twice
    assert home.wait_runs(procs) == [0] * len(procs)
    home.wait_workers()
    events = sent(home)
    assert sorted(e["source"]["alert_id"] for e in events) == sorted(f"4.{n}" for n in range(len(procs)))
    assert sorted(vt.paths()) == sorted(f"/api/v3/ip_addresses/{ip}" for ip in ips)   # one request each
    assert vt.most_in_flight <= 2
    assert len(home.waiting()) == 0


def test_a_per_minute_budget_below_lookup_parallel_bounds_the_workers(home, vt):
    home.config({"api_url": vt.url, "rate_limit_per_minute": 1, "lookup_parallel": 4})
    vt.fail(hang=True)
    for n, ip in enumerate(["64.62.197.132", "108.157.98.17"]):
        assert home.run(alert(ip, f"5.{n}"), wait=False).rc == 0
    vt.wait_requests(1)
    assert len(home.worker_pids()) == 1
    vt.behaviour.clear()
    vt.release()
    home.wait_workers()
    assert len(vt.requests) == 1                 # the second waits for the next minute's budget
    assert [(ip, deferred) for ip, deferred, _ in home.waiting()] == [("108.157.98.17", 1)]


def test_busy_worker_slots_never_hold_the_run_and_the_alert_waits_for_drain(home, vt):
    home.config({"api_url": vt.url, "api_key": API_KEY})
    home.run(alert("108.157.98.17", "6.0"))                # makes the state directory
    fds = [os.open(home.root / f"var/virustotal_ip/worker-{slot}.lock", os.O_RDWR | os.O_CREAT) for slot in (0, 1)]
    try:
        for fd in fds:
            fcntl.flock(fd, fcntl.LOCK_EX)
        r = home.run(wait=False)
        assert (r.rc, r.messages) == (0, [])
        assert [ip for ip, _, _ in home.waiting()] == ["64.62.197.132"]
    finally:
        for fd in fds:
            os.close(fd)
    assert [e["source"]["alert_id"] for e in home.cli("--drain").enrichments()] == ["1753101678.8211"]


@pytest.mark.parametrize("mode", ["inline", "worker"])
def test_lookup_mode_inline_sends_the_verdict_before_the_run_ends_and_starts_no_worker(home, vt, mode):
    home.config({"api_url": vt.url, "lookup_mode": mode})
    vt.fail(hang=True)
    r = home.run(timeout=1, retries=0, wait=False)
    started_a_worker = bool(home.worker_pids())
    assert (len(r.messages), started_a_worker) == ((1, False) if mode == "inline" else (0, True))
    vt.behaviour.clear()
    vt.release()
    home.wait_workers()


@pytest.fixture
def full_state_disk(home):
    """The state directory on a tmpfs of its own, filled up once the cache exists."""
    state = home.root / "var" / "virustotal_ip"
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0770", "vtip-test-state", str(state)], check=True)
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=True)


def test_a_full_disk_under_the_state_makes_no_request_and_the_alert_gets_an_error_event(home, vt, full_state_disk):
    """Nothing can be queued or kept, so no request could be counted: none is made (a worker
    outside the slots carried the alert before), and the alert's error event says why."""
    assert home.run().event()["virustotal_ip"]["cached"] is False        # the cache, on the small disk
    fill(full_state_disk)
    r = home.run(alert("108.157.98.17", "7.1"))
    assert r.rc == 3 and home.worker_pids() == []
    e = r.event()["virustotal_ip"]
    assert (e["error"], e["source"]["alert_id"]) == ("Undelivered", "7.1")
    assert "the pending store cannot keep it" in e["description"] and "not looked up" in e["description"]
    assert [p for p in vt.paths() if "108.157.98.17" in p] == []
    assert home.run().event()["virustotal_ip"]["cached"] is True           # reads still work


def fill(directory) -> None:
    with contextlib.suppress(OSError), open(directory / "filler", "wb", buffering=0) as fh:   # until ENOSPC
        while True:
            fh.write(b"\0" * 4096)


def test_an_alert_the_full_disk_cannot_remove_from_the_store_is_not_sent_until_it_can_then_once(home, vt,
                                                                                               full_state_disk):
    home.config({"api_url": vt.url, "api_key": API_KEY})
    vt.fail(hang=True)
    home.run(wait=False)                        # queued while the disk had room
    vt.wait_requests(1)
    fill(full_state_disk)
    vt.behaviour.clear()
    vt.release()                                # the worker gets its answer, on a full disk
    home.wait_workers()
    assert sent(home) == []
    assert [ip for ip, _, _ in home.waiting()] == ["64.62.197.132"]
    (full_state_disk / "filler").unlink()
    assert [e["source"]["alert_id"] for e in home.cli("--drain").enrichments()] == ["1753101678.8211"]
    assert home.cli("--drain").messages == [] and len(home.waiting()) == 0


def test_while_the_budget_is_spent_a_miss_is_deferred_by_the_run_and_starts_no_worker(home, vt):
    home.config({"api_url": vt.url, "rate_limit_per_minute": 1})
    home.run(alert("64.62.197.132", "8.1"))                   # the minute's one request
    r = home.run(alert("108.157.98.17", "8.2"))
    assert r.messages == [] and len(vt.requests) == 1
    assert "deferred lookup of 108.157.98.17 for alert \"8.2\": rate_limit_per_minute=1 reached" in r.log
    assert "lookup worker" not in r.log                        # none started, so none stopped
    assert home.waiting() == [("108.157.98.17", 1, None)]


def test_a_miss_writes_no_sqlite_so_a_writer_holding_the_store_never_holds_the_run(home, vt):
    """The run queues its alert as a file (state.enqueue): a SQLite commit would wait for the
    disk's fsyncs and for any other writer, here a transaction that stays open."""
    home.config({"api_url": vt.url, "api_key": API_KEY})
    home.run(alert("64.62.197.132", "11.1"))
    sent(home)
    with contextlib.closing(sqlite3.connect(home.db_path, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")            # the store's write lock, held
        r = home.run(alert("108.157.98.17", "11.2"), wait=False)
        assert (r.rc, r.messages) == (0, [])
        assert "cannot" not in r.log and "locked" not in r.log, r.log
        assert home.waiting() == [("108.157.98.17", 0, None)]     # queued, as a file
        db.execute("COMMIT")
    home.wait_workers()
    # The worker may have waited out the lock or given up on it: the alert is sent once either way.
    verdicts = [e["source"]["alert_id"] for e in sent(home)] + [
        e["source"]["alert_id"] for e in home.cli("--drain").enrichments()]
    assert verdicts == ["11.2"] and home.waiting() == []


def quota_out_with_one_queued(home, vt) -> Path:
    """VirusTotal's quota out for a minute; alert 12.2 from a new address queued meanwhile (a
    file, deferred). That file."""
    home.config({"api_url": vt.url, "api_key": API_KEY})
    home.run(alert("108.157.98.17", "12.1"))
    sent(home)
    home.sql("INSERT OR REPLACE INTO state(key, value) VALUES ('quota_until', ?)", (str(time.time() + 60),))
    home.run(alert("64.62.197.132", "12.2"))
    [queued] = (home.db_path.parent / "queue").glob("*.json")
    return queued


def quota_back(home) -> None:
    home.sql("UPDATE state SET value = ? WHERE key = 'quota_until'", (str(time.time() - 1),))


def test_a_queue_file_left_behind_after_it_was_taken_is_removed_not_sent_twice(home, vt):
    queued = quota_out_with_one_queued(home, vt)
    kept = queued.read_bytes()
    quota_back(home)
    assert [e["source"]["alert_id"] for e in home.cli("--drain").enrichments()] == ["12.2"]
    assert not queued.exists()
    queued.write_bytes(kept)      # as if the reader that took it had been killed before removing it
    r = home.cli("--drain")
    assert (r.rc, r.messages) == (0, [])
    assert not queued.exists() and home.waiting() == []


def test_an_unreadable_queue_file_is_reported_and_removed_and_the_others_are_sent(home, vt):
    queued = quota_out_with_one_queued(home, vt)
    broken = queued.with_name(f"{queued.name[:20]}-1.json")
    broken.write_bytes(b'{"source": {"ip": "93.184.216.34", "full_l')
    forged = queued.with_name(f"{queued.name[:20]}-2.json")       # an address that is a URL path
    record = json.loads(queued.read_text())
    record["source"].update(ip="../../files/x", alert_id="12.3")
    forged.write_text(json.dumps(record))
    quota_back(home)
    r = home.cli("--drain")
    assert [e["source"]["alert_id"] for e in r.enrichments()] == ["12.2"]
    assert f"queue file {broken.name} is unreadable (JSONDecodeError); removed" in r.log
    assert f"queue file {forged.name} is unreadable (ValueError); removed" in r.log
    assert not broken.exists() and not forged.exists() and home.waiting() == []
    assert [path for path in vt.paths() if "files/x" in path or "93.184" in path] == []     # never asked


def test_a_queue_file_a_killed_run_left_half_written_is_removed_after_an_hour_and_never_sent(home, vt):
    queued = quota_out_with_one_queued(home, vt)
    hour_ago = f"{time.time_ns() - 3601 * 10**9:020d}"
    old = queued.with_name(f".{hour_ago}-1.json")            # hidden: never renamed into the queue
    recent = queued.with_name(f".{queued.name}")              # a run still writing it
    for path in (old, recent):
        path.write_bytes(b'{"source": {"ip": "93.184.216.34", "full_l')
    quota_back(home)
    r = home.cli("--drain")
    assert [e["source"]["alert_id"] for e in r.enrichments()] == ["12.2"] and "unreadable" not in r.log
    assert not old.exists() and recent.exists()


def test_stop_workers_stops_this_installations_workers_only_and_waits_for_them(home, vt, tmp_path):
    """The uninstall's step (roles/virustotal_ip/tasks/absent.yml): a worker left running would
    send verdicts after it. Another installation's worker (another Wazuh home) is not touched."""
    other = WazuhHome(tmp_path / "other", vt)
    vt.fail(hang=True)
    home.run(alert("64.62.197.132", "13.1"), wait=False)
    home.run(alert("108.157.98.17", "13.2"), wait=False)
    other.run(alert("93.184.216.34", "13.3"), wait=False)
    vt.wait_requests(3)
    assert len(home.worker_pids()) == 2 and len(other.worker_pids()) == 1
    r = home.cli("--stop-workers", wait=False)
    assert (r.rc, r.stdout) == (0, "stopped 2 lookup worker(s)\n")
    assert home.worker_pids() == [] and len(other.worker_pids()) == 1
    assert home.cli("--stop-workers", wait=False).stdout == "stopped 0 lookup worker(s)\n"
    vt.behaviour.clear()
    vt.release()
    other.wait_workers()
    assert [e["source"]["alert_id"] for e in sent(other)] == ["13.3"]


def test_a_worker_that_starts_after_the_uninstall_removed_the_state_ends_without_making_it_again(home, vt):
    """A run queued an alert and started a worker just as the uninstall removed the state: the
    worker finds no state and ends, rather than make var/virustotal_ip again (open_state would)."""
    [worker] = script_package("worker")
    home.run(alert("64.62.197.132", "14.1"))                  # the state exists, as on a manager
    sent(home)
    state = home.db_path.parent
    shutil.rmtree(state)
    python = home.root / "framework" / "python" / "bin" / "python3"
    job = json.dumps({"api_key": API_KEY, "options": None, "timeout": 10, "retries": 3, "debug": False})
    r = subprocess.run([str(python), "-I", "-S", "-c", worker.BOOT, str(home.root / "integrations"), "0",
                        worker.WORKER_TAG], input=job.encode(), capture_output=True, timeout=60, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")
    assert not state.exists() and sent(home) == []
