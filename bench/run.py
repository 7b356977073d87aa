"""Benchmarks for the deployed script, each side by side with its baseline in one run.

1. Cache-hit cost: a cache-hit alert, run by the wrapper as integratord runs it (bytecode
   compiled as the role does), vs a bare `python3 -c pass` and the interpreter's own floor
   `python3 -I -S -c pass` on the same interpreter (median of --runs interleaved runs). Also:
   the same alert through an earlier version (--baseline, by default the last single-file
   script, before the split into a package), side by side in the same run; the Python process
   alone (the wrapper's exec line, without the shell before it); the .py run as a plain script
   (no bytecode, site-packages loaded: the old way); and start-up without site plus the C
   modules a hit needs.
   For the test venv's interpreter and Python 3.9/3.10 venvs like Wazuh's embedded ones
   where the machine has them. Then the run for a miss queued for the lookup worker, beside
   a cache hit: one that starts a worker, and one while every worker slot is busy.
2. Request storm: --storm alerts from 20 IPs, run one after another as integratord does,
   with the cache and with the cache disabled (every TTL 0); VT requests counted by the
   local VT v3 server.
3. VT not answering at all: run time vs the bound timeout x (retries + 1) + 2 s.
4. Through Wazuh's own daemons (bench/integratord.py): alerts per second integratord gets
   through with our script on cache hits vs a no-op custom integration, and vs the
   --baseline version deployed by the same role.
5. Misses through Wazuh's own daemons: a storm of alerts from new addresses, with
   VirusTotal answering in 0.3 s and not at all, through a no-op integration and through
   ours with the lookup worker and inline; how long one run held integratord, and how long
   each verdict took after its login.

Nothing here asserts a speed; it prints what it measured. Run: make bench
"""
from __future__ import annotations

import argparse
import fcntl
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import API_KEY, NO_DEBUG, WazuhHome, interpreter, sample_alert, script_pythons
from vt_server import VTServer

from integratord import bench_integratord, bench_misses

# The last commit with the script as one file (before issue 12 split it into a package).
BASELINE = "cd24674be7ac5f7ba5b7cf5c506cb648ad49d86f"
STORM_IPS = [f"45.95.{i // 8}.{10 + i}" for i in range(20)]


def storm_fixtures() -> dict:
    """20 IPs: every fourth one clean (so it pivots), the rest with a few engine hits."""
    fixtures = {}
    for i, ip in enumerate(STORM_IPS):
        hits = {"malicious": i % 5, "suspicious": i % 3} if i % 4 else {}
        fixtures[ip] = {"engines": {**hits, "harmless": 60, "undetected": 20}, "age_days": i * 7,
                        "attributes": {"reputation": -(i % 3), "as_owner": f"AS{i}", "country": "NL",
                                       "network": f"45.95.{i // 8}.0/24"},
                        "communicating_files": [i % 7, 9, 1]}
    return fixtures


def timed(argv: list, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def wrapper_python_args() -> list:
    """The interpreter options and -c program the wrapper passes to Python, read from it."""
    text = (Path(__file__).resolve().parent.parent / "files" / "custom-virustotal_ip").read_text()
    found = re.search(r'python3" (-I -S) -c \'(.*?)\' "\$dir_name"', text, re.S)
    assert found, "the wrapper's exec line changed: update the bench"
    return [*found.group(1).split(), "-c", found.group(2)]


def compile_like_the_role(home: WazuhHome) -> None:
    """The package compiled as the role compiles it (roles/virustotal_ip/tasks/present.yml), and
    the entry point too, as the role compiled it for the older releases the bench compares."""
    package = home.root / "integrations/virustotal_ip"
    subprocess.run([str(home.root / "framework/python/bin/python3"), "-I", "-m", "compileall", "-q",
                    str(home.root / "integrations/custom-virustotal_ip.py"),
                    *([str(package)] if package.is_dir() else [])], check=True)


def files_at(rev: str, into: Path) -> Path | None:
    """files/ as it was at a git revision, or None where git or the revision is missing."""
    archive = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent.parent), "archive", rev, "files"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "files"


def bench_cache_hit(runs: int, baseline: str) -> list:
    vt = VTServer(API_KEY, {"64.62.197.132": {"engines": {"malicious": 11, "suspicious": 2}, "age_days": 1}}).start()
    rows = []
    for label, python in script_pythons():
        with tempfile.TemporaryDirectory() as tmp:
            home = WazuhHome(Path(tmp) / "ossec", vt, python)
            alert = home.write_alert(sample_alert())
            home.run_argv(home.integratord_argv(alert))                 # prime the cache
            compile_like_the_role(home)
            old_files = files_at(baseline, Path(tmp))
            old = WazuhHome(Path(tmp) / "ossec-before", vt, python, files=old_files) if old_files else None
            if old is not None:
                old_alert = old.write_alert(sample_alert())
                old.run_argv(old.integratord_argv(old_alert))
                compile_like_the_role(old)
            fw_python = str(home.root / "framework/python/bin/python3")
            args = [str(alert), API_KEY, "", "", "", "10", "3", NO_DEBUG]
            integrations = home.root / "integrations"
            arms = {
                "python3 -c pass": [fw_python, "-c", "pass"],
                "floor: python3 -I -S -c pass": [fw_python, "-I", "-S", "-c", "pass"],
                "cache-hit alert (wrapper, as integratord)": [str(integrations / "custom-virustotal_ip"), *args],
                "cache-hit alert (the Python the wrapper execs)": [fw_python, *wrapper_python_args(),
                                                                    str(integrations), "custom-virustotal_ip", *args],
                "cache-hit alert (.py as a plain script)": [fw_python,
                                                            str(home.root / "integrations/custom-virustotal_ip.py"),
                                                            *args],
                "floor: -I -S, import _json,_sqlite3,_socket": [fw_python, "-I", "-S", "-c",
                                                                    "import _json, _sqlite3, _socket"],
            }
            if old is not None:
                arms[f"before: {baseline[:10]} (wrapper, as integratord)"] = [
                    str(old.root / "integrations/custom-virustotal_ip"), str(old_alert), *args[1:]]
            samples = {name: [] for name in arms}
            for _ in range(runs):                                   # interleaved: drift hits every arm alike
                for name, argv in arms.items():
                    samples[name].append(timed(argv, home.root))
                home.drain_queue()
                if old is not None:
                    old.drain_queue()
            base = statistics.median(samples["python3 -c pass"])
            floor = statistics.median(samples["floor: python3 -I -S -c pass"])
            for name, xs in samples.items():
                med = statistics.median(xs)
                rows.append((f"{label} ({interpreter(python)[1]})", name, med * 1000, med / base, med / floor))
            if old is not None:
                now_ms = statistics.median(samples["cache-hit alert (wrapper, as integratord)"])
                then_ms = statistics.median(samples[f"before: {baseline[:10]} (wrapper, as integratord)"])
                rows.append((f"{label} ({interpreter(python)[1]})", "now / before (ms: the difference)",
                             (now_ms - then_ms) * 1000, now_ms / then_ms, None))
    hits = 2 * len(script_pythons())
    assert len(vt.paths()) <= hits and set(vt.paths()) == {"/api/v3/ip_addresses/64.62.197.132"}, \
        "cache hits must make no request"
    vt.stop()
    return rows


def hold_worker_slots(home: WazuhHome, slots: int = 2) -> list:
    """Take every lookup worker slot's lock, as running workers hold them: a run that misses
    then queues its alert and starts none (a storm's case). Returns the descriptors."""
    state = home.root / "var" / "virustotal_ip"
    fds = [os.open(state / f"worker-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o660) for slot in range(slots)]
    for fd in fds:
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fds


def bench_miss_run(runs: int) -> list:
    """[(interpreter, hit ms, miss ms, miss ms with the workers busy)]: the run alone, through
    the wrapper, for a cache hit, for a miss queued for the lookup worker that starts one
    (VirusTotal answering at once; the worker's own work is not in the figure), and for a miss
    while every worker slot is busy (it starts none); interleaved, median of `runs`."""
    rows = []
    for label, python in script_pythons():
        vt = VTServer(API_KEY, {"64.62.197.132": {"engines": {"malicious": 11}}}).start()
        with tempfile.TemporaryDirectory() as tmp:
            home = WazuhHome(Path(tmp) / "ossec", vt, python)
            home.config({"api_url": vt.url, "api_key": API_KEY})       # --drain reads the key there
            compile_like_the_role(home)
            home.run(sample_alert("64.62.197.132"))                      # the hit's address, cached
            samples = {"hit": [], "miss": [], "busy": []}
            for n in range(runs):
                for kind, ip in (("hit", "64.62.197.132"), ("miss", f"45.97.{n // 200}.{n % 200 + 1}"),
                                 ("busy", f"45.98.{n // 200}.{n % 200 + 1}")):
                    alert = home.write_alert(sample_alert(ip, id=f"9.{n}"))
                    held = hold_worker_slots(home) if kind == "busy" else []
                    samples[kind].append(timed(home.integratord_argv(alert), home.root))
                    for fd in held:
                        os.close(fd)
                    if held:
                        home.cli("--drain")             # what the busy workers would have done
                    home.wait_workers()
                    home.drain_queue()
        vt.stop()
        rows.append((f"{label} ({interpreter(python)[1]})",
                     *(statistics.median(samples[kind]) * 1000 for kind in ("hit", "miss", "busy"))))
    return rows


def bench_storm(alerts: int) -> list:
    rows = []
    for label, ttl in (("cache on (default TTLs)", None), ("cache disabled (TTL 0)", 0)):
        vt = VTServer(API_KEY, storm_fixtures()).start()
        with tempfile.TemporaryDirectory() as tmp:
            home = WazuhHome(Path(tmp) / "ossec", vt)
            if ttl is not None:
                home.config({"api_url": vt.url, "cache_ttl_hours": dict.fromkeys(
                    ("malicious", "suspicious", "unknown", "not_found"), ttl)})
            started = time.perf_counter()
            for n in range(alerts):
                ip = STORM_IPS[n % len(STORM_IPS)]
                a = sample_alert(ip)
                a["id"] = f"1800000000.{n}"
                path = home.write_alert(a)
                subprocess.run(home.integratord_argv(path), cwd=home.root, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                path.unlink()
                home.drain_queue()
            elapsed = time.perf_counter() - started
            home.wait_workers()       # the lookups the runs queued (lookup_mode worker) are done
        paths = vt.paths()
        vt.stop()
        pivots = sum(p.endswith("/communicating_files") for p in paths)
        rows.append((label, alerts, len(paths) - pivots, pivots, elapsed))
    return rows


def bench_no_answer(timeout: int, retries: int, repeats: int) -> list:
    """The run's time with VirusTotal not answering: inline (the watchdog's bound), and with the
    lookup worker (the run does not wait; the worker's lookup has the same bound)."""
    rows = []
    bound = timeout * (retries + 1) + 2
    for mode, spec in (("no answer (connection hangs)", {"hang": True}),
                       ("answer dribbled 1 byte / 0.5 s", {"drip": 0.5})):
        for lookup_mode in ("inline", "worker"):
            vt = VTServer(API_KEY, {}).start()
            vt.fail(**spec)
            with tempfile.TemporaryDirectory() as tmp:
                home = WazuhHome(Path(tmp) / "ossec", vt)
                home.config({"api_url": vt.url, "lookup_mode": lookup_mode})
                times = []
                for n in range(repeats):
                    if n:
                        home.sql("DELETE FROM state")      # the breaker the last timeout opened
                    times.append(home.run(sample_alert(f"45.96.0.{n + 1}"), timeout=timeout,
                                          retries=retries).elapsed)
            vt.stop()
            rows.append((f"{mode}, {lookup_mode}", timeout, retries, max(times), bound))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per arm for the cache-hit cost (>= 30)")
    parser.add_argument("--baseline", default=BASELINE, help="git revision compared with in the cache-hit cost")
    parser.add_argument("--storm", type=int, default=1000, help="alerts in the request storm")
    parser.add_argument("--skip-storm", action="store_true")
    parser.add_argument("--integratord", type=int, default=200, help="alerts per arm through Wazuh's daemons")
    parser.add_argument("--skip-integratord", action="store_true")
    ns = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}\n")

    print(f"1. Cache-hit cost (median of {ns.runs} interleaved runs)")
    print(f"   {'interpreter':<16} {'arm':<48} {'ms':>7} {'x bare':>7} {'x floor':>7}")
    for label, name, ms, ratio, to_floor in bench_cache_hit(ns.runs, ns.baseline):
        floor_text = "" if to_floor is None else f"{to_floor:7.2f}"
        print(f"   {label:<16} {name:<48} {ms:7.1f} {ratio:7.2f} {floor_text}")

    print(f"\n   The run for a miss queued for the lookup worker vs a cache hit (median of {ns.runs}, interleaved)")
    print(f"   {'interpreter':<16} {'hit ms':>7} {'miss, starts a worker':>22} {'x hit':>6}"
          f" {'miss, workers busy':>19} {'x hit':>6}")
    for label, hit_ms, miss_ms, busy_ms in bench_miss_run(ns.runs):
        print(f"   {label:<16} {hit_ms:7.1f} {miss_ms:22.1f} {miss_ms / hit_ms:6.2f}"
              f" {busy_ms:19.1f} {busy_ms / hit_ms:6.2f}")
    print("   (a miss queues the alert as a file, no SQLite write; the first also starts a worker process)")

    if not ns.skip_storm:
        print(f"\n2. Request storm: {ns.storm} alerts from {len(STORM_IPS)} IPs, sequential like integratord")
        print(f"   {'arm':<26} {'alerts':>6} {'IP-object requests':>19} {'pivots':>7} {'wall s':>7}")
        rows = bench_storm(ns.storm)
        for label, alerts, ip_requests, pivots, elapsed in rows:
            print(f"   {label:<26} {alerts:>6} {ip_requests:>19} {pivots:>7} {elapsed:7.1f}")
        (_, _, cached_ip, cached_piv, cached_t), (_, _, raw_ip, raw_piv, raw_t) = rows
        print(f"   ratio cache on / off: IP-object requests {cached_ip / raw_ip:.3f}, "
              f"all requests {(cached_ip + cached_piv) / (raw_ip + raw_piv):.3f}, wall time {cached_t / raw_t:.2f}")

    print("\n3. VirusTotal not answering: the run's worst of 3 vs the bound timeout x (retries + 1) + 2 s")
    print(f"   {'mode':<42} {'timeout':>7} {'retries':>7} {'worst s':>8} {'bound s':>8} {'ratio':>6}")
    for mode, timeout, retries, worst, bound in bench_no_answer(2, 1, 3):
        print(f"   {mode:<42} {timeout:>7} {retries:>7} {worst:8.2f} {bound:8.1f} {worst / bound:6.2f}")

    if not ns.skip_integratord:
        print(f"\n4. Through Wazuh's own analysisd + integratord (localhost/wazuh-manager-src): {ns.integratord} "
              "sshd logins per arm")
        print(f"   {'arm':<40} {'alerts':>6} {'s':>7} {'alerts/s':>9}")
        rows = bench_integratord(ns.integratord, files_at, ns.baseline)
        for arm, alerts, seconds in rows:
            print(f"   {arm:<40} {alerts:>6} {seconds:7.2f} {alerts / seconds:9.1f}")
        (_, _, noop_s), (_, _, ours_s), *before = rows
        print(f"   ratio ours / no-op: alerts per second {noop_s / ours_s:.2f}")
        if before:
            print(f"   ratio now / before: alerts per second {before[0][2] / ours_s:.2f}")

        print(f"\n5. Misses through Wazuh's own daemons: {ns.integratord} sshd logins from {ns.integratord} new "
              "addresses per arm (budget unlimited), a recorder integration after ours on the same alerts")
        print(f"   {'arm':<44} {'alerts/s':>9} {'x hits':>7} {'1st call s':>11} {'longest gap s':>14} "
              f"{'verdict s: median':>18} {'max':>6}")
        arms, singles = bench_misses(ns.integratord)
        hits_per_s = arms[1].alerts / arms[1].seconds          # the cache hits, on the same manager
        for arm in arms:
            verdict = (f"{statistics.median(arm.latencies):18.2f} {max(arm.latencies):6.2f}" if arm.latencies
                       else f"{'-':>18} {'-':>6}")
            rate = arm.alerts / arm.seconds
            print(f"   {arm.label:<44} {rate:9.1f} {rate / hits_per_s:7.2f} {arm.first_call:11.2f} "
                  f"{arm.longest_gap:14.2f} {verdict}")
        print("   1st call: the recorder's first call after the first login (integratord polls alerts.json once a "
              "second when idle);\n   longest gap: between two of its calls (ours ran between them); verdict: after "
              "its login;\n   x hits: against the cache hits on the same manager")
        for label, delays in singles.items():
            after_login, after_ours = [d[0] for d in delays], [d[1] for d in delays]
            print(f"   one alert at a time, {label}: login -> verdict median {statistics.median(after_login):.2f} s, "
                  f"max {max(after_login):.2f} s; integratord done with ours -> verdict median "
                  f"{statistics.median(after_ours):.2f} s (VirusTotal answers in 0.3 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
