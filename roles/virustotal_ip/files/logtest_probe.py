# SPDX-License-Identifier: MIT
"""Asks the running wazuh-analysisd which rule one event raises at each of several locations,
through its logtest socket.

    logtest_probe.py SOCKET EVENT_JSON WAIT_SECONDS LOCATION [LOCATION ...]

Speaks the protocol wazuh-logtest speaks (framework/scripts/wazuh_logtest.py): a 4-byte
little-endian length, then a JSON request `log_processing`. A logtest session loads the
ruleset from disk, so new rules are judged before any restart; one session serves every
location. A location of the agent-routed form `[<id>] (<name>) <ip>-><location>` is read as
analysisd reads an agent's event. Prints one JSON line: {"rules": [{"id", "level",
"description", "location"}, ...]}, one per location in order, for the rule that fired (id "" when none),
or {"error": "..."}; exits 0 when analysisd answered, 1 otherwise. Standard library only: it
runs under the manager's own Python, with a bounded wait for a (re)starting analysisd.
"""
from __future__ import annotations

import json
import socket
import struct
import sys
import time


def ask(path: str, request: dict, wait: float) -> dict:
    deadline = time.monotonic() + wait
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(max(deadline - time.monotonic(), 1.0))
                conn.connect(path)
                payload = json.dumps(request).encode()
                conn.sendall(struct.pack("<I", len(payload)) + payload)
                size = struct.unpack("<I", conn.recv(4, socket.MSG_WAITALL))[0]
                return json.loads(conn.recv(size, socket.MSG_WAITALL))
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)          # analysisd binds the socket ~15-20 s after it starts


def main(argv: list) -> int:
    path, event, wait, locations = argv[1], argv[2], float(argv[3]), argv[4:]
    origin = {"name": "virustotal_ip role", "module": "ansible"}
    fired, token = [], None
    try:
        for location in locations:
            parameters = {"event": event, "log_format": "json", "location": location}
            if token:
                parameters["token"] = token
            reply = ask(path, {"version": 1, "origin": origin, "command": "log_processing",
                               "parameters": parameters}, wait)
            if reply.get("error"):
                print(json.dumps({"error": f"logtest refused the request: {reply.get('message', reply)}"}))
                return 1
            data = reply.get("data", {})
            token = data.get("token") or token
            rule = data.get("output", {}).get("rule", {})
            fired.append({"location": location, "id": str(rule.get("id", "")), "level": rule.get("level"),
                          "description": rule.get("description", "")})
    except (OSError, ValueError, struct.error) as exc:
        print(json.dumps({"error": f"no answer from wazuh-analysisd on {path} within {wait:.0f} s "
                                   f"({type(exc).__name__}: {exc}); is the manager running?"}))
        return 1
    finally:
        if token:                    # free the session analysisd kept for us
            try:
                ask(path, {"version": 1, "origin": origin, "command": "remove_session",
                           "parameters": {"token": token}}, 5)
            except (OSError, ValueError, struct.error):
                pass
    print(json.dumps({"rules": fired}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
