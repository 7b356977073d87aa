# SPDX-License-Identifier: MIT
"""The VirusTotal edge: GET requests to VT v3 and the parsing of its answers.

The only module that imports `requests`, and only when a request is really made (importing
it costs more than the rest of a cache hit). The key travels in the x-apikey header, never in
a URL, log line or event; redirects are not followed (the header would follow them). Answers
are untrusted: bounded in size, checked in shape, their strings cleaned before use.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from .codec import clean_text, dig, is_int, is_number, json_loads
from .deadline import Deadline, DeadlineExceeded

USER_AGENT_TOOL = "wazuh-custom-virustotal_ip"
MAX_VT_BODY = 8 << 20         # a VT answer larger than this is treated as malformed
MAX_TAGS = 32
MAX_ENGINES = 512
NO_TIME_LEFT = "NoTimeLeft"   # the run's time bound left no room for a request: none was made
KEY_MARK = "[api key]"        # what stands for the API key wherever VirusTotal's answer repeats it


class VTError(Exception):
    """VirusTotal did not give a usable answer; `code` is VT's error code or the HTTP status."""

    def __init__(self, code: str, description: str, transient: bool = False,
                 quota: bool = False) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.transient = transient   # worth retrying later (timeouts, 5xx, quota)
        self.quota = quota           # 429: stop all requests until the quota can have reset


def without_key(text: str, api_key: str) -> str:
    """VirusTotal's answer with every copy of the API key replaced by KEY_MARK: an error
    message may repeat the key it was sent, and VirusTotal's words go on to integrations.log
    and to events. Applied to the whole answer before it is read, so no field carries it on."""
    return text.replace(api_key, KEY_MARK) if api_key else text


def _count(stats: dict, key: str) -> int:
    value = stats.get(key, 0)
    if not is_int(value) or value < 0:
        raise VTError("MalformedResponse", f"last_analysis_stats.{key} is not a count")
    return value


def parse_ip_object(body: object) -> dict:
    """The facts the verdict needs from a VT IP object; VTError when its shape is wrong."""
    data = body.get("data") if isinstance(body, dict) else None
    attrs = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attrs, dict):
        raise VTError("MalformedResponse", "no data.attributes object in the IP answer")
    stats = attrs.get("last_analysis_stats", {})
    results = attrs.get("last_analysis_results", {})
    tags = attrs.get("tags", [])
    rep = attrs.get("reputation", 0)
    date = attrs.get("last_analysis_date")
    if not isinstance(stats, dict) or not isinstance(results, dict) or not isinstance(tags, list):
        raise VTError("MalformedResponse", "last_analysis_stats/results or tags have the wrong type")
    if not is_int(rep) or abs(rep) > 10**9:
        raise VTError("MalformedResponse", "reputation is not an integer")
    if date is not None and not (is_number(date) and 0 <= date < 2**37):
        raise VTError("MalformedResponse", "last_analysis_date is not an epoch time")
    engines = {}
    for name, result in list(results.items())[:MAX_ENGINES]:
        category = result.get("category") if isinstance(result, dict) else None
        if category in ("malicious", "suspicious"):
            engines[clean_text(name, 64)] = category
    return {
        "malicious": _count(stats, "malicious"),
        "suspicious": _count(stats, "suspicious"),
        "reputation": rep,
        "tags": [clean_text(t, 64) for t in tags[:MAX_TAGS] if isinstance(t, str) and t],
        "last_analysis_date": date,
        "engines": engines,
        "country": clean_text(attrs.get("country"), 8),
        "as_owner": clean_text(attrs.get("as_owner")),
        "network": clean_text(attrs.get("network"), 64),
    }


def parse_communicating_files(body: object, limit: int) -> list:
    """Malicious-engine counts of the files in a communicating_files collection."""
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise VTError("MalformedResponse", "communicating_files answer has no data list")
    counts = []
    for item in items[:limit]:
        stats = dig(item, "attributes.last_analysis_stats") if isinstance(item, dict) else None
        if isinstance(item, dict) and "error" not in item and isinstance(stats, dict):
            value = stats.get("malicious", 0)
            counts.append(value if is_int(value) and value >= 0 else 0)
    return counts


class VTClient:
    """GET requests to VT v3 with bounded retries inside the run's deadline."""

    def __init__(self, *, api_url: str, api_key: str, timeout: float, retries: int,
                 deadline: Deadline, on_request: Callable[[], None]) -> None:
        if sys.flags.no_site:   # the wrapper starts Python with -S: add site-packages now
            import site
            site.main()
        import requests
        self.requests = requests
        self.session = requests.Session()
        self.base = api_url
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.deadline = deadline
        self.on_request = on_request  # counts every request against the budget

    def ip_object(self, ip: str) -> dict | None:
        """The IP's facts, or None when VT has never seen it (404 NotFoundError)."""
        body = self._get(f"/ip_addresses/{ip}", {}, not_found_ok=True)
        return None if body is None else parse_ip_object(body)

    def communicating_files(self, ip: str, limit: int) -> list:
        body = self._get(f"/ip_addresses/{ip}/communicating_files", {"limit": str(limit)})
        return parse_communicating_files(body, limit)

    def _get(self, path: str, params: dict, not_found_ok: bool = False):
        last = VTError(NO_TIME_LEFT, "no time left for a VirusTotal request", transient=True)
        for _attempt in range(self.retries + 1):
            left = self.deadline.remaining()
            if left <= 0.05:
                break
            self.on_request()
            try:
                status, body, code, message = self._once(path, params, min(self.timeout, left))
            except VTError as exc:
                last = exc
                if exc.transient:
                    continue
                raise
            if status == 200:
                return body
            if status == 404 and code == "NotFoundError" and not_found_ok:
                return None
            label = code or str(status)
            if status == 429:
                raise VTError(label, message or "quota exceeded", transient=True, quota=True)
            if status >= 500:
                last = VTError(label, message or f"HTTP {status} from VirusTotal", transient=True)
                continue
            raise VTError(label, message or f"HTTP {status} from VirusTotal")
        raise last

    def _once(self, path: str, params: dict, timeout: float) -> tuple:
        rq = self.requests
        headers = {"x-apikey": self.api_key, "x-tool": USER_AGENT_TOOL, "Accept": "application/json"}
        try:
            with self.deadline.watch():
                # No redirects: the key header would follow them to another host.
                resp = self.session.get(self.base + path, params=params, headers=headers,
                                        timeout=timeout, allow_redirects=False, stream=True)
                raw = bytearray()
                for chunk in resp.iter_content(65536):
                    raw += chunk
                    if len(raw) > MAX_VT_BODY:
                        raise VTError("MalformedResponse", "answer larger than 8 MiB")
                resp.close()
        except DeadlineExceeded:
            raise VTError("Timeout", "VirusTotal did not answer within the run's time budget",
                          transient=True) from None
        except rq.Timeout:
            raise VTError("Timeout", f"no answer from VirusTotal within {timeout:g}s",
                          transient=True) from None
        except rq.RequestException as exc:
            kind = type(exc).__name__
            raise VTError("ConnectionError", f"cannot reach VirusTotal ({kind})",
                          transient=True) from None
        try:
            body = json_loads(without_key(raw.decode("utf-8"), self.api_key)) if raw else None
        except (ValueError, RecursionError):
            body = None
        code = dig(body, "error.code")
        message = dig(body, "error.message")
        code = clean_text(code, 64) if isinstance(code, str) else ""
        message = clean_text(message, 300) if isinstance(message, str) else ""
        if resp.status_code == 200 and not isinstance(body, dict):
            raise VTError("MalformedResponse", "VirusTotal answered 200 without a JSON object")
        return resp.status_code, body, code, message
