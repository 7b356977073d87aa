"""Benchmarks for the deployed script, each side by side with its baseline in one run.

1. Cache-hit cost: a cache-hit alert vs a bare `python3 -c pass` on the same interpreter
   (median of --runs interleaved runs), for the test venv's interpreter, the machine's
   python3, and Python 3.9/3.10 venvs like Wazuh's embedded ones where the machine has them;
   also the floor `import json, sqlite3, ipaddress, socket` every hit needs.
2. Request storm: --storm alerts from 20 IPs, run one after another as integratord does,
   with the cache and with the cache disabled (every TTL 0); VT requests counted by the
   local VT v3 server.
3. VT not answering at all: run time vs the bound timeout x (retries + 1) + 2 s.

Nothing here asserts a speed; it prints what it measured. Run: make bench
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import API_KEY, NO_DEBUG, WazuhHome, sample_alert, script_pythons
from vt_server import VTServer

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


def machine_python() -> str:
    """The machine's python3 itself (not a pyenv shim script)."""
    out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def bench_cache_hit(runs: int) -> list:
    vt = VTServer(API_KEY, {"64.62.197.132": {"engines": {"malicious": 11, "suspicious": 2}, "age_days": 1}}).start()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = WazuhHome(Path(tmp) / "ossec", vt)
        alert = home.write_alert(sample_alert())
        home.run_argv(home.integratord_argv(alert))                 # prime the cache
        script = str(home.root / "integrations" / "custom-virustotal_ip.py")
        args = [str(alert), API_KEY, "", "", "", "10", "3", NO_DEBUG]
        floor = "import json, sqlite3, ipaddress, socket"
        interpreters = [("test venv (framework/python)", str(home.root / "framework/python/bin/python3")),
                        ("machine python3", machine_python())]
        # Wazuh's embedded versions (3.9, 3.10 with their requests), where the machine has them
        interpreters += [(f"Wazuh-like {name} venv", python) for name, python in script_pythons()[1:]]
        for label, python in interpreters:
            arms = {
                "python3 -c pass": [python, "-c", "pass"],
                "floor: import json,sqlite3,ipaddress,socket": [python, "-c", floor],
                "cache-hit alert": [python, script, *args],
            }
            if label.startswith("test venv"):
                arms["cache-hit alert via wrapper"] = [str(home.root / "integrations/custom-virustotal_ip"), *args]
            samples = {name: [] for name in arms}
            for _ in range(runs):                                   # interleaved: drift hits every arm alike
                for name, argv in arms.items():
                    samples[name].append(timed(argv, home.root))
                home.drain_queue()
            base = statistics.median(samples["python3 -c pass"])
            for name, xs in samples.items():
                med = statistics.median(xs)
                rows.append((label, name, med * 1000, med / base))
        assert vt.paths() == ["/api/v3/ip_addresses/64.62.197.132"], "cache hits must make no request"
    vt.stop()
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
        paths = vt.paths()
        vt.stop()
        pivots = sum(p.endswith("/communicating_files") for p in paths)
        rows.append((label, alerts, len(paths) - pivots, pivots, elapsed))
    return rows


def bench_no_answer(timeout: int, retries: int, repeats: int) -> list:
    rows = []
    bound = timeout * (retries + 1) + 2
    for mode, spec in (("no answer (connection hangs)", {"hang": True}),
                       ("answer dribbled 1 byte / 0.5 s", {"drip": 0.5})):
        vt = VTServer(API_KEY, {}).start()
        vt.fail(**spec)
        with tempfile.TemporaryDirectory() as tmp:
            home = WazuhHome(Path(tmp) / "ossec", vt)
            times = [home.run(timeout=timeout, retries=retries).elapsed for _ in range(repeats)]
        vt.stop()
        rows.append((mode, timeout, retries, max(times), bound))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per arm for the cache-hit cost (>= 30)")
    parser.add_argument("--storm", type=int, default=1000, help="alerts in the request storm")
    parser.add_argument("--skip-storm", action="store_true")
    ns = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}\n")

    print(f"1. Cache-hit cost (median of {ns.runs} interleaved runs)")
    print(f"   {'interpreter':<30} {'arm':<46} {'ms':>7} {'x bare':>7}")
    for label, name, ms, ratio in bench_cache_hit(ns.runs):
        print(f"   {label:<30} {name:<46} {ms:7.1f} {ratio:7.2f}")

    if not ns.skip_storm:
        print(f"\n2. Request storm: {ns.storm} alerts from {len(STORM_IPS)} IPs, sequential like integratord")
        print(f"   {'arm':<26} {'alerts':>6} {'IP-object requests':>19} {'pivots':>7} {'wall s':>7}")
        rows = bench_storm(ns.storm)
        for label, alerts, ip_requests, pivots, elapsed in rows:
            print(f"   {label:<26} {alerts:>6} {ip_requests:>19} {pivots:>7} {elapsed:7.1f}")
        (_, _, cached_ip, cached_piv, cached_t), (_, _, raw_ip, raw_piv, raw_t) = rows
        print(f"   ratio cache on / off: IP-object requests {cached_ip / raw_ip:.3f}, "
              f"all requests {(cached_ip + cached_piv) / (raw_ip + raw_piv):.3f}, wall time {cached_t / raw_t:.2f}")

    print("\n3. VirusTotal not answering: worst of 3 runs vs the bound timeout x (retries + 1) + 2 s")
    print(f"   {'mode':<34} {'timeout':>7} {'retries':>7} {'worst s':>8} {'bound s':>8} {'ratio':>6}")
    for mode, timeout, retries, worst, bound in bench_no_answer(2, 1, 3):
        print(f"   {mode:<34} {timeout:>7} {retries:>7} {worst:8.2f} {bound:8.1f} {worst / bound:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
