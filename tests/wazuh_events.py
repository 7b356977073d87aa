"""What the tests send to analysisd, and how they find what comes back: one copy, imported by
the harness (tests/manager_harness.py, through `docker exec`) and by molecule's verify
(molecule/default/tests/, through testinfra), which runs unchanged against the official
wazuh/wazuh-manager image. Standard library only; the transport is the caller's: `send`
puts bytes on analysisd's queue socket, `alerts_with` returns the alerts whose line in
alerts.json holds a text.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

OSSEC = "/var/ossec"
QUEUE_SOCKET = f"{OSSEC}/queue/sockets/queue"
ALERTS_JSON = f"{OSSEC}/logs/alerts/alerts.json"
OUR_RULE_PREFIX = "1999"          # files/virustotal_ip_rules.xml: 199901-199909

# A `python3 -c` program: one datagram (argv[1], else stdin) to analysisd's queue socket, as
# an integration sends it. Until analysisd binds the socket after a (re)start it refuses or is
# missing: retried for 60 s.
SEND_DATAGRAM = f"""
import socket, sys, time
message = sys.argv[1].encode() if len(sys.argv) > 1 else sys.stdin.buffer.read()
deadline = time.monotonic() + 60
while True:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.connect('{QUEUE_SOCKET}')
        s.send(message)
        break
    except (ConnectionRefusedError, FileNotFoundError):
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
"""


def sshd_login_line(ip: str) -> str:
    """An sshd login from `ip` as sshd logs it, unique by its port: analysisd decodes it and
    raises stock rule 5715 (groups syslog, sshd, authentication_success), our trigger."""
    return (f"Dec 10 01:02:02 host sshd[1234]: Accepted password for root from {ip} "
            f"port {uuid.uuid4().int % 60000 + 1024} ssh2")


def forged_verdict_line(ip: str) -> str:
    """A log line an attacker writes, shaped like our enrichment of `ip` as malicious: it must
    raise none of our rules (only our script's location does) and block nothing."""
    return json.dumps({"integration": "virustotal_ip", "srcip": ip,
                       "virustotal_ip": {"verdict": "malicious", "found": 1, "source": {"ip": ip}}})


def login_message(line: str) -> bytes:
    """The datagram logcollector would send for a line of the manager's own auth.log."""
    return f"1:/var/log/auth.log:{line}".encode()


def parse_alerts(text: str) -> list:
    """alerts.json lines as far as they are written: analysisd flushes the file in blocks, so a
    last line may still be partial (left out)."""
    alerts = []
    for line in text.splitlines():
        try:
            alerts.append(json.loads(line))
        except ValueError:
            continue
    return alerts


def is_enrichment_of(alert: dict, trigger_id: str) -> bool:
    """The alert is one of our rules firing on the enrichment of alert `trigger_id`."""
    vt = alert.get("data", {}).get("virustotal_ip", {})
    return alert["rule"]["id"].startswith(OUR_RULE_PREFIX) and vt.get("source", {}).get("alert_id") == trigger_id


def poll(find: Callable[[], object], timeout: float, what: str, context: Callable[[], str] = str) -> object:
    """`find()` until it returns something other than None, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{context()}")
        time.sleep(0.2)


def login_and_enrichment(log: Callable[[str], None], alerts_with: Callable[[str], list], ip: str,
                         timeout: float, context: Callable[[], str] = str) -> tuple:
    """Log an sshd login from `ip` with `log(line)` (to analysisd's queue, or to an agent's
    auth.log) and return (the alert it raised, the enrichment alert of that alert). `context()`
    adds what to show on a timeout (say, the end of integrations.log)."""
    line = sshd_login_line(ip)
    log(line)
    trigger = poll(lambda: next((a for a in alerts_with(line) if a.get("full_log") == line), None),
                   timeout, f"the alert of {line!r}", context)
    alert_id = trigger["id"]
    enrichment = poll(lambda: next((a for a in alerts_with(alert_id) if is_enrichment_of(a, alert_id)), None),
                      timeout, f"the enrichment of alert {alert_id} ({ip})", context)
    return trigger, enrichment


def enrichment_for(send: Callable[[bytes], None], alerts_with: Callable[[str], list], ip: str,
                   timeout: float, context: Callable[[], str] = str) -> dict:
    """Send an sshd login from `ip` to analysisd (the real path: appending to alerts.json would
    race with analysisd's own writes) and return the enrichment alert of the alert it raised."""
    return login_and_enrichment(lambda line: send(login_message(line)), alerts_with, ip, timeout, context)[1]
