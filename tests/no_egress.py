"""Nothing a test runs may reach a machine other than this one.

Every run of the script in the tests gets HTTP_PROXY/HTTPS_PROXY pointing at an EgressCatcher
on 127.0.0.1 (NO_PROXY: the loopback names), so a request for any other host, the real
VirusTotal included, reaches the catcher instead of the network: it is recorded and refused
(403). conftest.py fails a test that made such a request, unless the test took it with
`egress.take()` to prove where the request would have gone.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1,localhost,::1"
DEAD_PROXY = "http://127.0.0.1:9"     # without a catcher (bench): refused at once, never sent


class _Refuse(BaseHTTPRequestHandler):
    def _refuse(self) -> None:
        self.server.seen.append((self.command, self.path))
        self.send_response(403, "no request leaves this machine in tests")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_CONNECT = do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _refuse   # noqa: N815 - http.server names

    def log_message(self, *args: object) -> None:
        pass


class EgressCatcher:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
        self.server.seen = []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> list:
        """The (method, target) of every request refused since the last take()."""
        seen, self.server.seen[:] = list(self.server.seen), []
        return seen

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def proxy_env(proxy: str) -> dict:
    return {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy, "http_proxy": proxy,
            "https_proxy": proxy, "all_proxy": proxy, "NO_PROXY": LOOPBACK, "no_proxy": LOOPBACK}
