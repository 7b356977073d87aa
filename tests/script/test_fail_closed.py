"""Fail closed (issue 32): where a limit cannot be checked, what it guards does not happen; one
bad alert or one failing address costs only itself.

- The budget: a request is made only once it is counted in the state; one that cannot be
  counted is not made, and without a usable state none is (the alert gets an error event).
- The worker cap: never more lookup processes than lookup_parallel, even when nothing can be
  queued (the alert is looked up in the run, within its time bound).
- A row that cannot be handled is set aside (logged once, counted in --status); the worker
  goes on with the next.
- An address VirusTotal fails for gets one error event and a backoff; the others are looked
  up meanwhile.

Every figure is read from what reached the VirusTotal stand-in, analysisd's queue socket and
/proc, after the runs and every lookup worker they started have ended.
"""
from __future__ import annotations

import re
import select
import subprocess
import time
from pathlib import Path

import pytest
from harness import API_KEY, sample_alert, script_env, split_message

WORKER_TAG = b"virustotal_ip-lookup-worker"      # in every lookup worker's argv (ps, pgrep)
SET_ASIDE = re.compile(r"set\w* aside", re.IGNORECASE)


def alert(ip: str, alert_id: str, **extra: object) -> dict:
    return sample_alert(ip, id=alert_id, **extra)


def configure(home, **values) -> None:
    home.config({"api_url": home.vt.url, "api_key": API_KEY, **values})


def make_state(home) -> Path:
    """The state as a manager has it before the alerts of a test come: made by --status."""
    assert home.cli("--status").rc == 0
    assert home.db_path.is_file()
    return home.db_path.parent


def lookup_workers(home) -> dict:
    """{pid: slot} of this home's lookup workers running now, from /proc: every process whose
    argv names this home's integrations directory and the worker tag (zombies have no argv).
    The slot is the argument before the tag (None if it is not a number)."""
    integrations = str((home.root / "integrations").resolve()).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if WORKER_TAG in argv and any(arg.rstrip(b"/") == integrations for arg in argv):
            before = argv[argv.index(WORKER_TAG) - 1]
            found[int(entry.name)] = int(before) if before.lstrip(b"-").isdigit() else None
    return found


def start_runs(home, alerts: list, prefix: tuple = (), retries: int = 3) -> list:
    """integratord's runs for `alerts`, all started at once and not waited for."""
    return [subprocess.Popen([*prefix, *home.integratord_argv(home.write_alert(a), retries=retries)],
                             cwd=home.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, env=script_env())
            for a in alerts]


def settle(home, runs: list, timeout: float = 90) -> tuple:
    """Until every run has ended and none of the lookup workers (slotted or not) runs, reading
    analysisd's socket meanwhile as analysisd does (a sender blocks once 10 datagrams wait);
    what was read stays for home.drain_queue(). (the most workers seen at once, their slots)."""
    most, slots = 0, set()
    deadline = time.monotonic() + timeout
    while True:
        runs_done = all(run.poll() is not None for run in runs)   # before the scan: a run ended
        workers = lookup_workers(home)                            # has started its worker by now
        most, slots = max(most, len(workers)), slots | set(workers.values())
        if runs_done and not workers:
            break
        assert time.monotonic() < deadline, f"still running after {timeout} s: runs " \
            f"{[run.pid for run in runs if run.poll() is None]}, workers {workers}"
        ready, _, _ = select.select([home.sock], [], [], 0.02)
        if ready:
            home.received.append(home.sock.recv(1 << 17))
    home.wait_workers()
    return most, slots


def events(raws: list) -> list:
    """(location, `virustotal_ip` object) of each datagram."""
    return [(location, message["virustotal_ip"]) for location, message in map(split_message, raws)]


def outcomes(raws: list) -> dict:
    """{alert_id: ["verdict" | "error", ...]} of the datagrams, in the order they came."""
    out: dict = {}
    for _location, e in events(raws):
        out.setdefault(e["source"]["alert_id"], []).append("error" if "error" in e else "verdict")
    return out


def requests_for(vt, ip: str) -> int:
    return sum(1 for path in vt.paths() if path.startswith(f"/api/v3/ip_addresses/{ip}"))


# --------------------------------------------------------------------------- the budget

def test_a_request_that_cannot_be_counted_is_not_made_so_a_full_disk_never_overruns_the_budget(home, vt):
    """Every file write fails (RLIMIT_FSIZE 0, as on a full disk) for the runs and the workers
    they start: 15 misses from 15 addresses, with 4 requests a minute and 10 a day allowed
    (issue 32 saw twice as many requests as misses). No request can be counted, so none is
    made, and never more than the budget."""
    configure(home, rate_limit_per_minute=4, daily_quota=10)
    make_state(home)
    ips = [f"8.8.{n}.{n}" for n in range(1, 16)]
    runs = start_runs(home, [alert(ip, f"1.{n}") for n, ip in enumerate(ips)], prefix=("prlimit", "--fsize=0", "--"))
    settle(home, runs)
    made = len(vt.requests)
    assert made <= 10, f"{made} VirusTotal requests with a budget of 10 a day (4 a minute)"
    assert made == 0, f"{made} VirusTotal requests, none of which could be counted in the state"


@pytest.mark.parametrize("unusable", ["state directory is a file", "cache.db is a directory"])
def test_without_a_usable_state_nothing_is_looked_up_and_the_alert_gets_an_error_naming_the_cause(
        home, vt, unusable):
    state = home.db_path.parent
    if unusable == "state directory is a file":
        state.write_text("not a directory\n")
    else:
        (state / "cache.db").mkdir(parents=True)
    r = home.run(alert("64.62.197.132", "2.1"))
    settle(home, [])
    raws = r.messages + home.drain_queue()
    assert vt.paths() == [], f"{len(vt.requests)} VirusTotal request(s) made with no state to count them in"
    [(_location, e)] = events(raws)
    assert "error" in e and e["source"]["alert_id"] == "2.1", e
    assert re.search(r"state|cache|virustotal_ip", e["description"], re.IGNORECASE), e["description"]


# --------------------------------------------------------------------------- the worker cap

def test_with_nothing_queueable_never_more_lookup_processes_than_lookup_parallel_and_each_alert_answered(
        home, vt):
    """queue/ cannot be written (a file where the directory is; root ignores permissions):
    five misses at once, VirusTotal answering each in 0.3 s, lookup_parallel 2 (issue 32:
    40 misses ran 40 lookup processes at once)."""
    configure(home, lookup_parallel=2)
    (make_state(home) / "queue").write_text("not a directory\n")
    vt.fail(delay=0.3)
    ids = [f"3.{n}" for n in range(5)]
    runs = start_runs(home, [alert(f"8.8.{n}.{n}", alert_id) for n, alert_id in enumerate(ids, 1)])
    most, slots = settle(home, runs)
    assert most <= 2, f"{most} lookup worker processes at once with lookup_parallel 2 (slots seen: {slots})"
    assert -1 not in slots and None not in slots, f"lookup workers outside the slots: {slots}"
    assert vt.most_in_flight <= 2, f"{vt.most_in_flight} VirusTotal requests at once with lookup_parallel 2"
    raws = home.drain_queue() + home.cli("--drain").messages
    assert outcomes(raws) == {alert_id: ["verdict"] for alert_id in ids}


# --------------------------------------------------------------------------- one bad row

def test_an_alert_with_a_lone_surrogate_in_its_agent_name_does_not_hold_the_alerts_behind_it(home, vt):
    """The agent name reaches the script as the JSON escape \\ud800 (a lone surrogate, which
    cannot be encoded); a routed agent, so the name is in the message's location."""
    configure(home)
    surrogate = home.run(alert("64.62.197.132", "4.0", agent={"id": "001", "name": "ag\ud800", "ip": "10.0.0.5"}))
    normal = [home.run(alert(ip, f"4.{n}")) for n, ip in enumerate(["108.157.98.17", "64.62.197.133",
                                                                    "93.184.216.34"], 1)]
    drain = home.cli("--drain")
    raws = surrogate.messages + [raw for r in normal for raw in r.messages] + drain.messages
    got = outcomes(raws)
    seen = f"events per alert {got}; --drain exited {drain.rc}"
    assert {alert_id: got.get(alert_id) for alert_id in ("4.1", "4.2", "4.3")} == {
        "4.1": ["verdict"], "4.2": ["verdict"], "4.3": ["verdict"]}, seen
    assert drain.rc == 0, f"{seen}: {drain.log}"
    # its verdict, the surrogate replaced; or set aside, with a line saying so
    delivered = [location for location, e in events(raws) if e["source"]["alert_id"] == "4.0"]
    log = home.log_path.read_text(errors="replace")
    assert [location.startswith("[001] (ag") for location in delivered] == [True] or SET_ASIDE.search(log), \
        (delivered, log)


def test_a_pending_alert_whose_delivery_raises_is_set_aside_once_and_the_others_are_sent(home, vt):
    """A pending row (cache.db, as a run or an older version left it) whose source cannot make
    a message: no rule nor agent, a full_log that is not text. It is the oldest."""
    configure(home)
    make_state(home)
    bad = '{"ip": "64.62.197.132", "alert_id": "5.0", "full_log": ["not", "text"]}'
    home.sql("INSERT INTO pending(ip, source, queued_at, alert_key, deferred) VALUES (?, ?, ?, ?, 1)",
             ("64.62.197.132", bad, time.time() - 10, "64.62.197.132|5.0"))
    runs = [home.run(alert(ip, f"5.{n}")) for n, ip in enumerate(["108.157.98.17", "64.62.197.133",
                                                                  "93.184.216.34"], 1)]
    drains = [home.cli("--drain") for _ in range(2)]
    raws = [raw for r in runs + drains for raw in r.messages]
    got = outcomes(raws)
    log = home.log_path.read_text(errors="replace")
    set_aside = [line for line in log.splitlines()
                 if SET_ASIDE.search(line) and ("5.0" in line or "64.62.197.132" in line)]
    status = home.cli("--status").stdout
    seen = (f"events per alert {got}; --drain exited {[r.rc for r in drains]}; "
            f"{len(set_aside)} log line(s) setting alert 5.0 aside")
    assert {alert_id: got.get(alert_id) for alert_id in ("5.1", "5.2", "5.3")} == {
        "5.1": ["verdict"], "5.2": ["verdict"], "5.3": ["verdict"]}, seen
    assert 1 not in [r.rc for r in drains], seen
    assert len(set_aside) == 1, f"{seen}\n{log}"
    assert [line for line in status.splitlines() if SET_ASIDE.search(line) and re.search(r"\b1\b", line)], status


# --------------------------------------------------------------------------- one failing address

def test_an_address_virustotal_fails_for_gets_one_error_event_and_a_backoff_and_the_next_address_is_looked_up(
        home, vt):
    configure(home)
    vt.fail("64.62.197.132", status=500, code="InternalError", message="internal error")
    failing = home.run(alert("64.62.197.132", "6.1"), retries=1)
    answered = home.run(alert("108.157.98.17", "6.2"), retries=1)
    drains = [home.cli("--drain", "--retries", "1") for _ in range(4)]
    got = outcomes(failing.messages + answered.messages + [raw for r in drains for raw in r.messages])
    asked = requests_for(vt, "64.62.197.132")
    seen = (f"events per alert {got} (the second run's: {outcomes(answered.messages)}); "
            f"{asked} requests for 64.62.197.132 after 2 runs and 4 --drain")
    assert outcomes(answered.messages).get("6.2") == ["verdict"], seen    # not held behind 6.1
    assert got.get("6.1", []).count("error") == 1, seen                   # one event, not one per retry
    # the first attempt (1 + retries requests), and within the backoff at most one more
    assert asked <= 2 * (1 + 1), seen


# --------------------------------------------------------------------------- found in review

def test_addresses_virustotal_keeps_failing_for_never_starve_an_address_it_answers(home, vt):
    """Three addresses answered 500 every time, older than a good one: the third failure in a
    row opens the breaker for a minute, and each failing address backs off, so once the minute
    is over the good address is looked up (it waited behind them for ever before)."""
    configure(home)
    bad = ["64.62.197.132", "64.62.197.133", "93.184.216.34"]
    for ip in bad:
        vt.fail(ip, status=500, code="InternalError", message="boom")
    runs = [home.run(alert(ip, f"1.{n}"), retries=0) for n, ip in enumerate(bad)]
    runs.append(home.run(alert("108.157.98.17", "1.9"), retries=0))
    drains = []
    for _ in range(3):
        home.sql("UPDATE state SET value = '0' WHERE key = 'quota_until'")     # the outage's minute is over
        drains.append(home.cli("--drain", "--retries", "0"))
    got = outcomes([m for r in runs + drains for m in r.messages])
    assert got["1.9"] == ["verdict"]
    assert all(got[f"1.{n}"] == ["error"] for n in range(3)), got
    assert max(requests_for(vt, ip) for ip in bad) == 1          # backed off: asked once each


def test_a_directory_in_the_queue_is_passed_over_and_the_alerts_are_sent(home, vt):
    configure(home)
    state = make_state(home)
    (state / "queue").mkdir(exist_ok=True)
    (state / "queue" / "00000000000000000001-1.json").mkdir()
    r = home.run(alert("108.157.98.17", "2.1"))
    drains = [home.cli("--drain") for _ in range(2)]
    assert [d.rc for d in drains] == [0, 0]
    assert outcomes(r.messages + [m for d in drains for m in d.messages]) == {"2.1": ["verdict"]}


def test_one_bad_alert_of_an_address_virustotal_fails_for_sets_aside_only_itself(home, vt):
    configure(home)
    make_state(home)
    vt.fail("64.62.197.132", status=500, code="InternalError", message="boom")
    bad = '{"ip": "64.62.197.132", "alert_id": "8.0", "full_log": "x"}'    # no rule, no agent
    home.sql("INSERT INTO pending(ip, source, queued_at, alert_key, deferred) VALUES (?, ?, ?, ?, 1)",
             ("64.62.197.132", bad, time.time() - 10, "64.62.197.132|8.0"))
    r = home.run(alert("64.62.197.132", "8.1"), retries=0)
    vt.behaviour.clear()                                         # VirusTotal answers again
    home.sql("UPDATE pending SET not_before = NULL")             # the backoff is over
    d = home.cli("--drain")
    assert outcomes(r.messages + d.messages) == {"8.1": ["error", "verdict"]}
    assert home.sql("SELECT json_extract(source, '$.alert_id') FROM pending WHERE set_aside IS NOT NULL") == [("8.0",)]


def test_an_alert_too_large_to_send_is_set_aside_and_the_alerts_behind_it_are_sent(home, vt):
    import json
    configure(home)
    make_state(home)
    source = {"alert_id": "9.0", "rule": "1", "ip": "64.62.197.132", "agent_id": "001",
              "agent_name": "A" * 70000, "agent_ip": "10.0.0.1", "full_log": "x"}
    home.sql("INSERT INTO pending(ip, source, queued_at, alert_key, deferred) VALUES (?, ?, ?, ?, 1)",
             ("64.62.197.132", json.dumps(source), time.time() - 10, "64.62.197.132|9.0"))
    runs = [home.run(alert(ip, f"9.{n}")) for n, ip in enumerate(["108.157.98.17", "64.62.197.133"], 1)]
    drains = [home.cli("--drain") for _ in range(2)]
    assert [d.rc for d in drains] == [0, 0]
    assert outcomes([m for r in runs + drains for m in r.messages]) == {"9.1": ["verdict"], "9.2": ["verdict"]}
    assert home.sql("SELECT json_extract(source, '$.alert_id') FROM pending WHERE set_aside IS NOT NULL") == [("9.0",)]


def test_new_alerts_for_an_address_in_its_backoff_wait_behind_it(home, vt):
    """A noisy address VirusTotal fails for is asked once, not once per alert."""
    configure(home)
    make_state(home)
    vt.fail("64.62.197.132", status=500, code="InternalError", message="boom")
    runs = [home.run(alert("64.62.197.132", f"10.{n}"), retries=0) for n in range(4)]
    assert requests_for(vt, "64.62.197.132") == 1
    assert outcomes([m for r in runs for m in r.messages]) == {"10.0": ["error"]}
