"""`make demo` (local form): the integration end to end on this machine, no Docker needed.

Starts the VT v3 stand-in (or uses the real VirusTotal when VT_API_KEY is set), builds a
throwaway Wazuh home, runs the seed's two sshd alerts plus one from a private address through
the wrapper exactly as wazuh-integratord would, and prints what reached analysisd's queue.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import API_KEY, FIXTURES, WazuhHome, sample_alert
from vt_server import VTServer

ALERTS = [("64.62.197.132", "seed Test 1"), ("108.157.98.17", "seed Test 2"),
          ("192.168.1.20", "private address")]


def main() -> int:
    real_key = os.environ.get("VT_API_KEY", "")
    vt = VTServer(API_KEY, FIXTURES["ips"]).start()
    root = Path(tempfile.mkdtemp(prefix="vtip-demo-"))
    try:
        home = WazuhHome(root / "ossec", vt)
        key = API_KEY
        if real_key:
            home.config({})   # default api_url: the real VirusTotal
            key = real_key
        print(f"VirusTotal: {'the real API (VT_API_KEY)' if real_key else 'local VT v3 stand-in at ' + vt.url}")
        print(f"Wazuh home: {home.root} (throwaway; removed at the end)\n")
        print(f"{'IP':<16} {'verdict':<11} {'reasons':<28} {'exit':<5} what reached analysisd")
        for ip, what in ALERTS:
            r = home.run(sample_alert(ip), api_key=key)
            if r.messages:
                location, msg = r.events()[0]
                e = msg["virustotal_ip"]
                verdict = e.get("verdict", "error: " + e.get("error", "?"))
                reasons = ",".join(e.get("reasons", [])) or e.get("description", "")[:28]
                sent = f"1:{location}:... ({len(r.messages[0])} bytes)"
            else:
                verdict, reasons, sent = "-", "-", "nothing (" + r.log.strip().split(": ", 2)[-1] + ")"
            print(f"{ip:<16} {verdict:<11} {reasons:<28} {r.rc:<5} {sent}   [{what}]")
        print("\nintegrations.log:")
        print(home.log_path.read_text().rstrip())
        print("\nThe rules in files/virustotal_ip_rules.xml turn these into alerts 199901 (malicious, level 12),"
              "\n199902 (suspicious), 199903 (unknown) and 199904 (errors) on a Wazuh manager.")
        return 0
    finally:
        vt.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
