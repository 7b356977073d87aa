# SPDX-License-Identifier: MIT
"""The Wazuh edge: what integratord hands the script, and what goes back to Wazuh.

In: integratord's argv (4.3 to 4.14) and the alert file, untrusted, and in it the source
address, attacker-controlled (read by address.py). Out: one datagram on <home>/queue/sockets/queue,
`1:<location>:<json>`, which analysisd decodes with its JSON decoder and our rules match
(`data.virustotal_ip.*`), and lines in <home>/logs/integrations.log. See docs/wazuh-interfaces.md.
"""
from __future__ import annotations

import _socket
import posix      # not os: see codec.py
import sys
import time

from .address import ip_text, lookup_address, parse_ip, skip_reason
from .codec import clean_text, dig, iso_utc, json_dumps, json_loads, shown, text_at
from .verdict import evaluate

INTEGRATION = "virustotal_ip"
PERMALINK = "https://www.virustotal.com/gui/ip-address/"
MAX_DATAGRAM = 65535          # analysisd reads at most this many bytes per datagram
MAX_ALERT_BYTES = 32 << 20    # larger alert files are refused, not parsed
DEFAULT_TIMEOUT = 10          # integratord's defaults, used when argv has none
DEFAULT_RETRIES = 3

# Exit statuses: integratord logs any non-zero one to ossec.log (docs/operations.md's table says when).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_UNDELIVERED = 3
EXIT_REFUSED = 4              # a symbolic link where our own file belongs, or root without a wazuh user


SCRIPT_NAME = "custom-virustotal_ip"


class InputError(Exception):
    """The command line or the alert file cannot be used (exit 2)."""


class DeliveryError(Exception):
    """analysisd's queue socket did not take the message (exit 3): every alert's trouble."""


class EventTooLargeError(Exception):
    """One alert's event does not fit a datagram even without its log line: that alert's
    trouble alone (the worker sets it aside; a run exits 3)."""


class RefusedError(Exception):
    """Going on would let someone else choose what this process writes (exit 4): nothing is
    done. Said on stderr to an analyst, in integrations.log for integratord's runs."""


# --------------------------------------------------------------------------- integrations.log

class Log:
    """Lines appended to <home>/logs/integrations.log.

    Not the `logging` package: importing it costs about a fifth of interpreter start-up,
    paid on every alert. Messages never contain the API key; attacker-controlled values
    are passed through codec.shown() first.
    """

    def __init__(self, path: str, debug: bool = False, echo: bool = False) -> None:
        self.path = path
        self.debug_enabled = debug
        self.echo = echo            # analyst commands also print warnings to stderr
        self._failed = False

    def _write(self, level: str, msg: str) -> None:
        line = f"{time.strftime('%Y/%m/%d %H:%M:%S')} {SCRIPT_NAME}[{posix.getpid()}]: {level}: {msg}\n"
        if self.echo and level != "DEBUG":
            sys.stderr.write(f"{level}: {msg}\n")
        try:
            # O_NOFOLLOW: logs/ is the wazuh group's, so the log may be a link planted to make
            # whoever runs this append to another file.
            fd = posix.open(self.path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_NOFOLLOW, 0o660)
            try:
                posix.write(fd, line.encode("utf-8", "replace"))
            finally:
                posix.close(fd)
        except OSError as exc:
            if not self._failed and not self.echo:
                self._failed = True
                sys.stderr.write(f"{SCRIPT_NAME}: cannot write {self.path}: {exc.strerror}\n")
                sys.stderr.write(line)

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._write("DEBUG", msg)

    def info(self, msg: str) -> None:
        self._write("INFO", msg)

    def warning(self, msg: str) -> None:
        self._write("WARNING", msg)

    def error(self, msg: str) -> None:
        self._write("ERROR", msg)


def integrations_log(home: str, debug: bool = False, echo: bool = False) -> Log:
    return Log(f"{home}/logs/integrations.log", debug, echo)


class Quiet:
    """A log for what was already reported once: its warnings are not repeated."""

    def warning(self, msg: str) -> None:
        pass


def wazuh_home() -> str:
    """<home> from this file's place: <home>/integrations/virustotal_ip/wazuh.py. The wrapper
    and the entry point put the physical path of integrations/ on sys.path (cd -P, realpath),
    so __file__ needs no resolving of its own."""
    if __file__.startswith("/"):
        return __file__.rsplit("/", 3)[0]
    import os      # (never on a manager: the path is absolute there)
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def report_crash(exc: BaseException, what: str, home: str | None = None) -> None:
    """One line in integrations.log for an unexpected error: its type and where."""
    where = exc.__traceback__
    while where is not None and where.tb_next is not None:
        where = where.tb_next
    place = (f"{where.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]} line {where.tb_lineno}"
             if where is not None else "unknown place")
    integrations_log(home or wazuh_home()).error(f"{what} {type(exc).__name__} at {place}: {shown(str(exc), 200)}")


# --------------------------------------------------------------------------- in: argv and alert

def parse_integratord_argv(args: list) -> dict:
    """integratord's argv, 4.3 to 4.14 (docs/wazuh-interfaces.md section 1), read defensively:
    ALERT_FILE API_KEY HOOK_URL [debug] [OPTIONS_FILE] [TIMEOUT] [RETRIES] ["> /dev/null 2>&1"]."""
    if not args:
        raise InputError("usage: custom-virustotal_ip ALERT_FILE API_KEY HOOK_URL [debug] ...")
    rest = args[2:]
    api_key = args[1] if len(args) > 1 else ""
    if api_key.startswith("api_key:"):
        api_key = api_key[len("api_key:"):]
    options = args[4] if len(args) > 4 and args[4].endswith(".options") else None
    if options is None:
        options = next((a for a in rest if a.endswith(".options")), None)
    numbers = [int(a) for a in rest if a.isascii() and a.isdigit() and len(a) < 6]
    return {
        "alert": args[0],
        "api_key": api_key.strip(),
        "debug": "debug" in rest,
        "options": options,
        "timeout": min(max(numbers[0], 1), 300) if numbers else DEFAULT_TIMEOUT,
        "retries": min(numbers[1], 10) if len(numbers) > 1 else DEFAULT_RETRIES,
    }


def read_alert(path: str) -> dict:
    """The alert integratord wrote (one JSON object on one line)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_ALERT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read alert file {shown(path)}: {exc.strerror}") from None
    if len(raw) > MAX_ALERT_BYTES:
        raise InputError(f"alert file {shown(path)} is larger than {MAX_ALERT_BYTES} bytes")
    if not raw.strip():
        raise InputError(f"alert file {shown(path)} is empty")
    try:
        alert = json_loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        raise InputError(f"alert file {shown(path)} is not JSON "
                         "(the <integration> block needs <alert_format>json</alert_format>)") from None
    if not isinstance(alert, dict):
        raise InputError(f"alert file {shown(path)} holds JSON that is not an object")
    return alert


def is_own_enrichment(alert: dict) -> bool:
    """The loop guard: the alert is one of our own enrichments coming back.

    Decided by the location alone, the one thing a log line cannot choose: analysisd writes
    `virustotal_ip` for what our script sent (the manager's form and the agent-routed form
    alike), and a file's path for a line read from a log. An alert's data and groups are the
    attacker's: a forged line holding `"integration": "virustotal_ip"` is an ordinary alert."""
    return alert.get("location") == INTEGRATION


def select_ip(alert: dict, fields: tuple) -> tuple:
    """(packed ip, field) for the first configured field holding a valid IP; (None, None) if none."""
    for path in fields:
        ip = parse_ip(dig(alert, path))
        if ip is not None:
            return ip, path
    return None, None


class Target:
    """The address an alert asks about, and what a result needs from the alert."""
    __slots__ = ("ip", "source")

    def __init__(self, ip: str, source: dict) -> None:
        self.ip, self.source = ip, source


class NoLookup:
    """Why an alert is not looked up (by design: exit 0, nothing sent)."""
    __slots__ = ("message", "warning")

    def __init__(self, message: str, warning: bool = False) -> None:
        self.message, self.warning = message, warning


def without_surrogates(text: str) -> str:
    """Text that encodes as UTF-8: a JSON alert may carry lone surrogates ("\\ud800"), which
    no socket, file or database write takes."""
    return text.encode("utf-8", "replace").decode("utf-8")


def alert_source(alert: dict, ip: str) -> dict:
    """What a result needs from its alert: ids, agent and the original log line, every text
    of it fit to store and send (the attacker's: one bad alert must cost only itself)."""
    full_log = alert.get("full_log")
    source = {
        "alert_id": text_at(alert, "id", 64),
        "rule": text_at(alert, "rule.id", 16),
        "ip": ip,
        "agent_id": text_at(alert, "agent.id", 16),
        "agent_name": text_at(alert, "agent.name", 128),
        "agent_ip": text_at(alert, "agent.ip", 64),
        "full_log": full_log if isinstance(full_log, str) else "",
    }
    return {key: without_surrogates(value) for key, value in source.items()}


def target_of(alert: dict, cfg) -> Target | NoLookup:
    """The address to look up for this alert, or why there is none (pure)."""
    alert_id = shown(alert.get("id"))
    if is_own_enrichment(alert):
        # Harmless here, but it means the <integration> trigger matches our own rules.
        return NoLookup(f"alert {alert_id} is our own enrichment (loop guard); nothing sent. "
                        "The <integration> filter must not match groups virustotal/vt_ip or our rule ids", True)
    packed, field = select_ip(alert, cfg.ip_fields)
    if packed is None:
        return NoLookup(f"alert {alert_id}: no valid IP in {', '.join(cfg.ip_fields)}; nothing sent")
    why = skip_reason(packed, cfg.skip_non_global, cfg.allowlist)
    if why:
        return NoLookup(f"alert {alert_id}: {field} {ip_text(packed)} is {why}; not looked up")
    ip = ip_text(lookup_address(packed))
    return Target(ip, alert_source(alert, ip))


# --------------------------------------------------------------------------- out: the events

def line_value(value: object) -> str:
    """A verdict_line value: no quotes, backslashes, spaces in tags, or control characters."""
    return "".join(ch for ch in str(value) if ch >= " " and ch not in "\"\\\x7f")


def build_enrichment(entry: dict, cfg, now: float, source: dict, *, cached: bool) -> dict:
    """The `virustotal_ip` object sent to Wazuh (docs/events-and-rules.md, "The enrichment")."""
    ip = source["ip"]
    src = {"alert_id": source["alert_id"], "rule": source["rule"], "ip": ip}
    result = evaluate(entry, cfg, now)
    if not entry["found"]:
        return {"found": 0, "verdict": "unknown", "source": src, "permalink": PERMALINK + ip,
                "verdict_line": f"vt_ip verdict=unknown ip={ip} found=0",
                "reasons": result.reasons, "cached": cached}
    facts = entry["facts"]
    engine_counts = {"malicious": 0, "suspicious": 0}
    for category in facts["engines"].values():
        engine_counts[category] += 1
    weighted = round(result.weighted, 2)
    age = None if result.age_days is None else round(result.age_days, 1)
    tags = facts["tags"]
    as_owner = facts["as_owner"]
    tags_text = ",".join(line_value(t).replace(",", "").replace(" ", "_") for t in tags) or "-"
    verdict_line = (f"vt_ip verdict={result.verdict} ip={ip} mal={facts['malicious']} "
                    f"sus={facts['suspicious']} wmal={weighted} rep={facts['reputation']} "
                    f"age_days={'-' if age is None else age} tags={tags_text} "
                    f"as_owner=\"{line_value(as_owner)}\"")
    return {
        "found": 1,
        "verdict": result.verdict,
        "source": src,
        "counts": {"malicious": facts["malicious"], "suspicious": facts["suspicious"]},
        "engine_counts": engine_counts,
        "weighted_malicious": weighted,
        "reputation": facts["reputation"],
        "tags": list(tags),
        "age_days": age,
        "last_analysis_date": iso_utc(facts["last_analysis_date"]),
        "country": facts["country"],
        "as_owner": as_owner,
        "network": facts["network"],
        "permalink": PERMALINK + ip,
        "pivot": result.pivot,
        "verdict_line": verdict_line,
        "reasons": result.reasons,
        "cached": cached,
    }


def error_event(code: str, description: str, source: dict) -> dict:
    return {"error": clean_text(code, 64), "description": clean_text(description, 512),
            "source": {"alert_id": source["alert_id"], "rule": source["rule"], "ip": source["ip"]}}


# --------------------------------------------------------------------------- out: delivery

def location_for(source: dict) -> str:
    """`virustotal_ip` for the manager; the agent-routed form otherwise (docs/wazuh-interfaces.md section 3)."""
    agent_id = source["agent_id"]
    if not agent_id or agent_id == "000":
        return INTEGRATION

    def esc(text: str) -> str:
        return text.replace("|", "||").replace(":", "|:")
    return (f"[{esc(agent_id)}] ({esc(source['agent_name'])}) "
            f"{esc(source['agent_ip'] or 'any')}->{INTEGRATION}")


def encode_message(event: dict, source: dict) -> bytes:
    """`1:<location>:<json>` below 65535 bytes, shortening original_full_log as needed."""
    prefix = f"1:{location_for(source)}:".encode()
    message = {"virustotal_ip": event, "integration": INTEGRATION}
    if "error" not in event:
        message["original_full_log"] = source["full_log"][:MAX_DATAGRAM]
        # Top-level srcip is what Wazuh's JSON decoder maps to the alert's srcip (data.srcip),
        # the field Active Response programs (firewall-drop, host-deny) block. Verdicts only:
        # an error event names no address to act on.
        message["srcip"] = source["ip"]
    raw = prefix + json_dumps(message).encode()
    if len(raw) < MAX_DATAGRAM:
        return raw
    full_log, marker = message["original_full_log"], " [truncated]"
    message["original_full_log"] = ""
    room = MAX_DATAGRAM - 1 - len(prefix + json_dumps(message).encode()) - len(marker)
    # Escapes make a character cost 1 to 6 bytes: find the longest prefix that fits.
    lo, hi = 0, len(full_log)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(json_dumps(full_log[:mid]).encode()) - 2 <= room:
            lo = mid
        else:
            hi = mid - 1
    message["original_full_log"] = full_log[:lo] + marker if room > 0 else ""
    raw = prefix + json_dumps(message).encode()
    if len(raw) >= MAX_DATAGRAM:
        raise EventTooLargeError("the event does not fit a datagram even without original_full_log")
    return raw


def send(home: str, raw: bytes) -> None:
    """One datagram to analysisd's queue socket."""
    path = f"{home}/queue/sockets/queue"
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        try:
            sock.connect(path)
            sock.send(raw)
        finally:
            sock.close()
    except FileNotFoundError:
        raise DeliveryError(f"queue socket {path} is missing (is wazuh-analysisd running?)") from None
    except ConnectionRefusedError:
        raise DeliveryError(f"queue socket {path} refused the message (wazuh-analysisd is down)") from None
    except OSError as exc:
        raise DeliveryError(f"cannot send to {path}: {exc.strerror or exc}") from None


class Delivery:
    """Events to analysisd for one run or worker: a verdict or an error event for an alert,
    each with its line in integrations.log (and, in debug, on stdout as the manual run of
    docs/operations.md prints it)."""

    def __init__(self, *, home: str, cfg, log: Log, debug: bool) -> None:
        self.home, self.cfg, self.log, self.debug = home, cfg, log, debug

    def send(self, event: dict, source: dict) -> None:
        raw = encode_message(event, source)
        if self.debug:
            print(f"# Request result from VT server: {raw.decode('utf-8', 'replace')}")
        send(self.home, raw)
        self.log.debug(f"sent {len(raw)} bytes for alert {shown(source.get('alert_id'))} to analysisd")

    def verdict(self, entry: dict, source: dict, *, cached: bool, deferred: bool = False) -> None:
        event = build_enrichment(entry, self.cfg, time.time(), source, cached=cached)
        if deferred:
            event["deferred"] = True
        self.send(event, source)
        self.log.info(f"{source['ip']}: {event['verdict']} ({','.join(event['reasons'])})"
                      f"{' from cache' if cached else ''} for alert {shown(source['alert_id'])}"
                      f"{' (deferred)' if deferred else ''}")

    def error(self, code: str, description: str, source: dict) -> None:
        self.send(error_event(code, description, source), source)
