#!/usr/bin/env python3
"""A local HTTP server that answers like VirusTotal API v3 - for tests, benchmarks and the demo.

It follows docs/virustotal-api.md: `GET /api/v3/ip_addresses/{ip}` and
`GET /api/v3/ip_addresses/{ip}/communicating_files?limit=N`, the `x-apikey` check (401
AuthenticationRequiredError / WrongCredentialsError), 404 NotFoundError for IPs it has no
object for, 400 InvalidArgumentError for anything that is not an IP, and error bodies
`{"error": {"code": ..., "message": ...}}`. Per IP (or for every IP, key "*") a fixture may
replace the answer: an error status and code, a raw body (HTML, empty), a delay, a body
dribbled slowly, or no answer at all - the ways a real service fails.

Standard library only, so it also runs inside a manager container:
    python3 vt_server.py --port 8090 --api-key KEY --fixtures vt_ip_objects.json
"""
from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ENGINE_CATEGORIES = ("malicious", "suspicious", "harmless", "undetected", "timeout")


def build_ip_object(ip: str, spec: dict, now: float) -> dict:
    """A VT IP object from a compact fixture: `engines` counts become per-engine results and
    consistent stats; `age_days` becomes last_analysis_date relative to now."""
    attrs = copy.deepcopy(spec.get("attributes", {}))
    if "engines" in spec:
        results, stats, n = {}, dict.fromkeys(ENGINE_CATEGORIES, 0), 0
        for category in ENGINE_CATEGORIES:
            for _ in range(spec["engines"].get(category, 0)):
                n += 1
                name = f"Engine{n:02d}"
                results[name] = {"category": category, "engine_name": name, "method": "blacklist",
                                 "result": {"malicious": "malware", "suspicious": "suspicious"}
                                 .get(category, "clean" if category == "harmless" else "unrated")}
                stats[category] += 1
        for name, category in spec.get("named_engines", {}).items():
            results[name] = {"category": category, "engine_name": name, "method": "blacklist",
                             "result": category}
            stats[category] += 1
        attrs.setdefault("last_analysis_results", results)
        attrs.setdefault("last_analysis_stats", stats)
    if "age_days" in spec:
        attrs["last_analysis_date"] = int(now - spec["age_days"] * 86400)
    return {"data": {"type": "ip_address", "id": ip,
                     "links": {"self": f"https://www.virustotal.com/api/v3/ip_addresses/{ip}"},
                     "attributes": attrs}}


def build_file_object(index: int, malicious: int) -> dict:
    sha = f"{index:064x}"
    return {"type": "file", "id": sha,
            "links": {"self": f"https://www.virustotal.com/api/v3/files/{sha}"},
            "attributes": {"last_analysis_stats": {"malicious": malicious, "suspicious": 0,
                                                   "undetected": 60 - malicious, "harmless": 0,
                                                   "timeout": 0},
                           "meaningful_name": f"sample{index}.exe", "size": 1024 * index}}


class VTServer:
    """The server and its recorded requests; usable in-process (tests) or standalone."""

    def __init__(self, api_key: str, fixtures: dict | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.api_key = api_key
        self.fixtures: dict = copy.deepcopy(fixtures or {})
        self.behaviour: dict = {}        # ip or "*" -> failure spec, overrides fixtures
        self.requests: list = []         # one dict per request, in arrival order
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)   # notified on each request
        self.in_flight = 0               # requests being answered now
        self.most_in_flight = 0          # the most at once, since start
        self.stopping = threading.Event()
        self.released = threading.Event()   # hanging requests go on (release()) or end (stop())
        handler = type("Handler", (_Handler,), {"vt": self})
        self.httpd = _Server((host, port), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/api/v3"

    def start(self) -> VTServer:
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, paid by every test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, ip: str = "*", **spec: object) -> None:
        """Make answers for `ip` (or all) fail: status/code/message, raw, delay, drip, hang."""
        self.behaviour[ip] = spec

    def release(self) -> None:
        """Hanging requests are answered now, as their IP's behaviour says then."""
        self.released.set()

    def wait_requests(self, count: int, timeout: float = 30) -> None:
        """Until `count` requests have arrived (AssertionError after `timeout`)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= count, timeout), \
                f"{len(self.requests)} of {count} requests arrived in {timeout} s"

    def paths(self) -> list:
        with self.lock:
            return [r["path"] for r in self.requests]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that went away mid-answer (a killed lookup worker) is no error here."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class _Handler(BaseHTTPRequestHandler):
    vt: VTServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        vt = self.vt
        url = urlsplit(self.path)
        with vt.lock:
            vt.requests.append({"path": url.path, "query": url.query,
                                "apikey": self.headers.get("x-apikey"),
                                "tool": self.headers.get("x-tool"), "at": time.time()})
            vt.in_flight += 1
            vt.most_in_flight = max(vt.most_in_flight, vt.in_flight)
            vt.arrived.notify_all()
        try:
            self._answer(url)
        finally:
            with vt.lock:
                vt.in_flight -= 1

    def _answer(self, url) -> None:
        vt = self.vt
        key = self.headers.get("x-apikey")
        if not key:
            return self._send(401, _error("AuthenticationRequiredError",
                                          "X-Apikey header is missing"))
        if key != vt.api_key:
            return self._send(401, _error("WrongCredentialsError", "Wrong API key"))
        parts = url.path.split("/")
        # ["", "api", "v3", "ip_addresses", ip] or [..., ip, "communicating_files"]
        if (len(parts) not in (5, 6) or parts[1:4] != ["api", "v3", "ip_addresses"]
                or (len(parts) == 6 and parts[5] != "communicating_files")):
            return self._send(404, _error("NotFoundError", f"Resource not found: {url.path}"))
        ip = parts[4]
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return self._send(400, _error("InvalidArgumentError", f"{ip} is not a valid IP address"))
        spec = vt.behaviour.get(ip) or vt.behaviour.get("*")
        if spec and self._misbehave(spec):
            return None
        fixture = vt.fixtures.get(ip)
        if fixture is None:
            return self._send(404, _error("NotFoundError", f"IP address {ip} not found"))
        if len(parts) == 5:
            return self._send(200, json.dumps(build_ip_object(ip, fixture, time.time())).encode())
        failing = fixture.get("communicating_files_error")
        if failing:
            return self._send(failing["status"], _error(failing["code"], failing["code"]))
        limit = parse_qs(url.query).get("limit", ["10"])[0]
        limit = min(int(limit), 40) if limit.isdigit() else 10
        files = fixture.get("communicating_files", [])
        body = {"data": [build_file_object(i, m) for i, m in enumerate(files[:limit], 1)],
                "meta": {"count": len(files)},
                "links": {"self": f"https://www.virustotal.com/api/v3{url.path}?limit={limit}"}}
        return self._send(200, json.dumps(body).encode())

    def _misbehave(self, spec: dict) -> bool:
        """Apply a failure spec; True when the answer has been given (or withheld)."""
        vt = self.vt
        if spec.get("hang"):
            vt.released.wait(spec.get("hang_seconds", 600))
            if vt.stopping.is_set() or not vt.released.is_set():
                self.close_connection = True
                return True
            spec = vt.behaviour.get(self.path.split("?")[0].rsplit("/", 1)[-1]) or vt.behaviour.get("*") or {}
            if spec.get("hang"):        # released, still told to hang: no answer
                self.close_connection = True
                return True
        if spec.get("delay"):
            vt.stopping.wait(spec["delay"])
        if spec.get("drip"):
            # headers at once, then one byte at a time: each read is quick, the whole is slow
            body = b'{"data": {"attributes": {}}}' * 4
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                if vt.stopping.wait(spec["drip"]):
                    break
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    break
            self.close_connection = True
            return True
        if "raw" in spec:
            self._send(spec.get("status", 200), spec["raw"].encode(), spec.get("ctype", "text/html"))
            return True
        if "body" in spec:
            self._send(spec.get("status", 200), json.dumps(spec["body"]).encode())
            return True
        if "status" in spec:
            self._send(spec["status"], _error(spec.get("code", "Error"), spec.get("message", "error")))
            return True
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--fixtures", required=True, help="JSON: ip -> fixture")
    ns = parser.parse_args()
    with open(ns.fixtures, encoding="utf-8") as fh:
        fixtures = json.load(fh)
    server = VTServer(ns.api_key, fixtures.get("ips", fixtures), ns.host, ns.port)
    for ip, spec in fixtures.get("behaviour", {}).items():
        server.fail(ip, **spec)
    print(f"VT v3 stand-in listening on {server.url}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
