#!/usr/bin/python3
"""TEST STAND-IN for the Wazuh manager daemons. NOT WAZUH.

Written from ../shared/spec/wazuh-contract.md only, for this project's tests. It imitates the
interfaces the project touches: wazuh-control, wazuh-analysisd (-t, the queue socket, JSON
decoding, the rule tree, alerts.json) and wazuh-integratord (-t, filters, running scripts).
Installed as /var/ossec/standin/standin.py; the programs in /var/ossec/bin are links to it
and it acts as the program named by argv[0]. See the README beside the image sources for what
is imitated and what is not.
"""
from __future__ import annotations

import glob
import grp
import json
import os
import pwd
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

HOME = "/var/ossec"
VERSION = "v4.14.7 (stand-in)"
STATIC_FIELDS = {"srcip", "dstip", "srcport", "dstport", "protocol", "action", "srcuser", "dstuser",
                 "user", "id", "status", "url", "data", "extra_data", "systemname"}
RULE_ATTRIBUTES = {"id", "level", "maxsize", "frequency", "timeframe", "ignore", "overwrite", "noalert"}
RULE_ELEMENTS = {"if_sid", "field", "description", "options", "group", "mitre", "decoded_as", "match",
                 "regex", "info", "if_group", "if_matched_sid", "same_source_ip", "list", "category"}
RULE_OPTIONS = {"alert_by_email", "no_email_alert", "no_log", "no_full_log", "no_counter"}
DECODERS = {"json", "syslog", "sshd", "windows_eventchannel", "ossec", "pam", "sudo", "web-accesslog"}
KNOWN_INTEGRATIONS = {"slack", "pagerduty", "virustotal", "shuffle", "maltiverse"}
ALL_DAEMONS = ["wazuh-clusterd", "wazuh-modulesd", "wazuh-monitord", "wazuh-logcollector",
               "wazuh-remoted", "wazuh-syscheckd", "wazuh-analysisd", "wazuh-maild", "wazuh-execd",
               "wazuh-db", "wazuh-authd", "wazuh-agentlessd", "wazuh-integratord", "wazuh-dbd",
               "wazuh-csyslogd", "wazuh-apid"]
RUN_DAEMONS = ["wazuh-analysisd", "wazuh-integratord"]   # what the stand-in really runs
MAX_DYNAMIC_FIELDS = 256
XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
QUEUE = os.path.join(HOME, "queue", "sockets", "queue")
ALERTS = os.path.join(HOME, "logs", "alerts", "alerts.json")
OSSEC_LOG = os.path.join(HOME, "logs", "ossec.log")


class ConfigError(Exception):
    pass


def log(daemon: str, level: str, msg: str) -> None:
    line = f"{time.strftime('%Y/%m/%d %H:%M:%S')} {daemon}: {level}: {msg}\n"
    with open(OSSEC_LOG, "a", encoding="utf-8") as fh:
        fh.write(line)


def wazuh_ids() -> tuple:
    return pwd.getpwnam("wazuh").pw_uid, grp.getgrnam("wazuh").gr_gid


# --------------------------------------------------------------------------- ossec.conf

def read_conf() -> ET.Element:
    """ossec.conf may hold several <ossec_config> roots (contract section 6)."""
    try:
        with open(os.path.join(HOME, "etc", "ossec.conf"), encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"(1103): Could not open file 'etc/ossec.conf' due to [{exc.strerror}].") from None
    try:
        return ET.fromstring("<root>" + XML_DECL.sub("", text) + "</root>")
    except ET.ParseError as exc:
        raise ConfigError(f"(1226): Error reading XML file 'etc/ossec.conf': {exc}") from None


def alert_levels(conf: ET.Element) -> tuple:
    log_level, mail_level = 3, 12
    for alerts in conf.iter("alerts"):
        log_level = int(alerts.findtext("log_alert_level", log_level))
        mail_level = int(alerts.findtext("email_alert_level", mail_level))
    return log_level, mail_level


def integrations(conf: ET.Element) -> list:
    out = []
    for block in conf.findall("ossec_config/integration"):
        item = {child.tag: (child.text or "").strip() for child in block}
        name = item.get("name", "")
        if not name:
            raise ConfigError("(1231): Invalid integration: missing <name>.")
        allowed = {"name", "hook_url", "api_key", "level", "rule_id", "group", "event_location",
                   "alert_format", "max_log", "options", "timeout", "retries"}
        unknown = set(item) - allowed
        if unknown:
            raise ConfigError(f"(1230): Invalid element in the configuration: '{sorted(unknown)[0]}'.")
        for key in ("level", "timeout", "retries", "max_log"):
            if key in item and not item[key].isdigit():
                raise ConfigError(f"(1235): Invalid value for element '{key}': {item[key]}.")
        out.append(item)
    return out


# --------------------------------------------------------------------------- OS_Regex and friends

OS_CLASSES = {
    "d": "[0-9]", "D": "[^0-9]", "w": r"[A-Za-z0-9@_\-]", "W": r"[^A-Za-z0-9@_\-]",
    "s": "[ ]", "S": "[^ ]", "p": r"""[()*+,\-.:;<=>?\[\]!"'#$%&|{}]""", ".": "[\\s\\S]",
}


def os_regex_to_python(pattern: str) -> str:
    """OS_Regex (contract 4a) as a Python regex: `^`/`$` anchor each `|` alternative, `\\.` is
    any character, a plain `.` is literal, classes take `+`/`*`, `( )` group."""
    alternatives = []
    for alt in pattern.split("|"):
        out, i = [], 0
        start = alt.startswith("^")
        if start:
            i = 1
        end = alt.endswith("$") and not alt.endswith("\\$")
        body = alt[: len(alt) - 1] if end else alt
        while i < len(body):
            ch = body[i]
            if ch == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                out.append(OS_CLASSES.get(nxt, re.escape(nxt)))
                i += 2
                continue
            if (ch in "+*" and out) or ch in "()":
                out.append(ch)
            else:
                out.append(re.escape(ch))
            i += 1
        alternatives.append(("^" if start else "") + "".join(out) + ("$" if end else ""))
    return "|".join(f"(?:{a})" for a in alternatives)


def os_match_to_python(pattern: str) -> str:
    alternatives = []
    for alt in pattern.split("|"):
        start, end = alt.startswith("^"), alt.endswith("$")
        core = alt[1 if start else 0: len(alt) - 1 if end else len(alt)]
        alternatives.append(("^" if start else "") + re.escape(core) + ("$" if end else ""))
    return "|".join(f"(?:{a})" for a in alternatives)


def compile_field(kind: str, pattern: str):
    if kind == "pcre2":
        return re.compile(pattern)                      # case-sensitive, unanchored
    if kind == "osmatch":
        return re.compile(os_match_to_python(pattern), re.IGNORECASE)
    return re.compile(os_regex_to_python(pattern), re.IGNORECASE)


# --------------------------------------------------------------------------- rules

class Rule:
    def __init__(self, rid: int, level: int, order: int, groups: list) -> None:
        self.id, self.level, self.order, self.groups = rid, level, order, groups
        self.if_sids: list = []
        self.fields: list = []          # (name, regex, negate)
        self.decoded_as: str | None = None
        self.description = ""
        self.options: set = set()
        self.noalert = False
        self.children: list = []
        self.firedtimes = 0

    def sort_key(self) -> tuple:
        """Siblings: level 0 first, then 16 -> 1, ties in load order (contract 4a)."""
        return (0 if self.level == 0 else 1, -self.level, self.order)


def rule_files() -> list:
    files = glob.glob(os.path.join(HOME, "ruleset", "rules", "*.xml")) + \
        glob.glob(os.path.join(HOME, "etc", "rules", "*.xml"))
    return sorted(files, key=os.path.basename)


def readable_by_wazuh(path: str) -> bool:
    uid, gid = wazuh_ids()
    st = os.stat(path)
    return bool((st.st_uid == uid and st.st_mode & 0o400) or (st.st_gid == gid and st.st_mode & 0o040)
                or st.st_mode & 0o004)


def load_rules() -> tuple:
    """(roots, warnings) or ConfigError for anything fatal in contract section 4."""
    warnings, rules, order = [], {}, 0
    pending = []
    for path in rule_files():
        rel = os.path.relpath(path, HOME)
        try:
            if not readable_by_wazuh(path):          # the stand-in runs as root; Wazuh would not
                raise PermissionError
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            warnings.append(f"(1103): Could not open file '{rel}' due to [(13)-(Permission denied)].")
            continue
        try:
            doc = ET.fromstring("<root>" + XML_DECL.sub("", text) + "</root>")
        except ET.ParseError as exc:
            raise ConfigError(f"(1226): Error reading XML file '{rel}': {exc}") from None
        for group in doc:
            if group.tag != "group":
                raise ConfigError(f"(1230): Invalid element in the configuration: '{group.tag}'. File '{rel}'.")
            groups = [g for g in (group.get("name") or "").split(",") if g]
            for el in group:
                if el.tag != "rule":
                    raise ConfigError(f"(1230): Invalid element in the configuration: '{el.tag}'. File '{rel}'.")
                try:
                    rule = parse_rule(el, groups, order, rel)
                except ConfigError as exc:
                    raise ConfigError(f"{exc}\n(1220): Error loading the rules: '{rel}'.") from None
                order += 1
                if rule.id in rules:
                    warnings.append(f"(7612): Rule ID '{rule.id}' is duplicated. Only the first one is used.")
                    continue
                rules[rule.id] = rule
                pending.append(rule)
    roots = []
    for rule in pending:
        if not rule.if_sids:
            roots.append(rule)
            continue
        parents = [rules.get(p) for p in rule.if_sids]
        if any(p is None or p.order > rule.order for p in parents):
            warnings.append(f"(7604): Signature ID '{rule.if_sids[0]}' was not found and will be ignored "
                            f"in the 'if_sid' option of rule '{rule.id}'.")
            continue
        for p in parents:
            p.children.append(rule)
    for rule in rules.values():
        rule.children.sort(key=Rule.sort_key)
    roots.sort(key=Rule.sort_key)
    return roots, warnings


def parse_rule(el: ET.Element, groups: list, order: int, rel: str) -> Rule:
    bad = set(el.attrib) - RULE_ATTRIBUTES
    if bad:
        raise ConfigError(f"(1230): Invalid attribute '{sorted(bad)[0]}' in rule. File '{rel}'.")
    rid, level = el.get("id", ""), el.get("level", "")
    if not rid.isdigit() or len(rid) > 6:
        raise ConfigError(f"(1220): Error loading the rules: '{rel}'. Invalid rule id '{rid}'.")
    if not level.isdigit() or not 0 <= int(level) <= 16:
        raise ConfigError(f"(1220): Error loading the rules: '{rel}'. Invalid level '{level}' in rule {rid}.")
    rule = Rule(int(rid), int(level), order, list(groups))
    rule.noalert = el.get("noalert") == "1"
    for child in el:
        text = (child.text or "").strip()
        if child.tag not in RULE_ELEMENTS:
            raise ConfigError(f"Invalid option '{child.tag}' for rule '{rid}'.")
        if child.tag == "if_sid":
            rule.if_sids = [int(x) for x in re.split(r"[,\s]+", text) if x]
        elif child.tag == "field":
            name = child.get("name", "")
            if name.lower() in STATIC_FIELDS:
                raise ConfigError(f"(7605): Field '{name}' is static. Rule {rid}.")
            kind = child.get("type", "osregex")
            if kind not in ("osregex", "osmatch", "pcre2"):
                kind = "osregex"
            try:
                regex = compile_field(kind, text)
            except re.error:
                raise ConfigError(f"(5107): Syntax error on tag '{name}' in rule {rid}") from None
            rule.fields.append((name.lower(), regex, child.get("negate") == "yes"))
        elif child.tag == "decoded_as":
            if text not in DECODERS:
                raise ConfigError(f"Invalid decoder name: '{text}'.")
            rule.decoded_as = text
        elif child.tag == "description":
            rule.description = text
        elif child.tag == "options":
            if text not in RULE_OPTIONS:
                raise ConfigError(f"(1203): Invalid option '{text}' for rule '{rid}'.")
            rule.options.add(text)
        elif child.tag == "group":
            rule.groups += [g for g in text.split(",") if g]
    return rule


def conditions_hold(rule: Rule, event: dict) -> bool:
    if rule.decoded_as and event["decoder"] != rule.decoded_as:
        return False
    for name, regex, negate in rule.fields:
        value = event["fields"].get(name)
        if value is None:                              # a missing field fails before negate
            return False
        if bool(regex.search(value)) == negate:
            return False
    return True


def match(rule: Rule, event: dict) -> Rule | None:
    if not conditions_hold(rule, event):
        return None
    for child in rule.children:
        found = match(child, event)
        if found is not None:
            return found
    return None if rule.noalert else rule


def classify(roots: list, event: dict) -> Rule | None:
    for root in roots:
        found = match(root, event)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- decoding

def parse_location(raw: str) -> tuple:
    """`1:<location>:<message>`; `|:` and `||` are escapes inside the location."""
    if not raw.startswith("1:"):
        return None, None
    out, i = [], 2
    while i < len(raw) and raw[i] != ":":
        if raw[i] == "|" and i + 1 < len(raw) and raw[i + 1] in "|:":
            i += 1
        out.append(raw[i])
        i += 1
    if i >= len(raw):
        return None, None
    return "".join(out), raw[i + 1:]


def scalar_text(value: object) -> str:
    """The json decoder's text for a value: numbers as cJSON prints them, null as `null`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def decode_json(doc: dict) -> tuple:
    """(dynamic fields by dotted name, static fields) as the stock json decoder fills them."""
    fields, static = {}, {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif len(fields) < MAX_DYNAMIC_FIELDS:
            fields[prefix] = scalar_text(value)

    for key, value in doc.items():
        if key in STATIC_FIELDS and not isinstance(value, (dict, list)):
            static[key] = scalar_text(value)
        else:
            walk(key, value)
    return fields, static


def data_tree(fields: dict, static: dict) -> dict:
    """The stored alert's `data`: nested again, strings, JSON arrays as arrays, no empty strings."""
    tree: dict = {}
    for name, value in {**static, **fields}.items():
        if value == "":
            continue
        if value.startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        node = tree
        parts = name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return tree


def substitute(description: str, fields: dict) -> str:
    return re.sub(r"\$\(([^)]+)\)", lambda m: fields.get(m.group(1).lower(), ""), description)


# --------------------------------------------------------------------------- wazuh-analysisd

def analysisd_test() -> int:
    try:
        conf = read_conf()
        alert_levels(conf)
        _roots, warnings = load_rules()
    except (ConfigError, ValueError) as exc:
        print(f"{time.strftime('%Y/%m/%d %H:%M:%S')} wazuh-analysisd: CRITICAL: {exc}", file=sys.stderr)
        return 1
    for w in warnings:
        print(f"{time.strftime('%Y/%m/%d %H:%M:%S')} wazuh-analysisd: WARNING: {w}", file=sys.stderr)
    return 0


def analysisd() -> int:
    conf = read_conf()
    log_level, mail_level = alert_levels(conf)
    roots, warnings = load_rules()
    for w in warnings:
        log("wazuh-analysisd", "WARNING", w)
    uid, gid = wazuh_ids()
    if os.path.exists(QUEUE):
        os.unlink(QUEUE)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(QUEUE)
    os.chown(QUEUE, uid, gid)
    os.chmod(QUEUE, 0o660)
    hostname = socket.gethostname()
    counter = 0
    log("wazuh-analysisd", "INFO", f"Started (pid: {os.getpid()}).")
    while True:
        raw = sock.recv(65535)                         # longer datagrams are cut, as analysisd does
        text = raw.decode("utf-8", "replace")
        location, message = parse_location(text)
        if location is None:
            continue
        agent = {"id": "000", "name": hostname}
        m = re.match(r"^\[(\d+)\] \((.*)\) (\S+)->(.*)$", location)
        if m:
            agent = {"id": m.group(1), "name": m.group(2)}
            if m.group(3) != "any":
                agent["ip"] = m.group(3)
            location = m.group(4)
        fields, static, decoder = {}, {}, "syslog"
        if message.startswith("{\""):
            try:
                doc = json.loads(message)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                fields, static = decode_json(doc)
                decoder = "json"
        fields_lower = {k.lower(): v for k, v in fields.items()}
        event = {"decoder": decoder, "fields": fields_lower, "log": message}
        rule = classify(roots, event)
        if rule is None or rule.level == 0 or rule.level < log_level:
            continue
        rule.firedtimes += 1
        counter += 1
        now = time.time()
        alert = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}+0000",
            "rule": {"level": rule.level, "description": substitute(rule.description, fields_lower),
                     "id": str(rule.id), "firedtimes": rule.firedtimes,
                     "mail": rule.level >= mail_level or "alert_by_email" in rule.options,
                     "groups": rule.groups},
            "agent": agent, "manager": {"name": hostname}, "id": f"{int(now)}.{counter}",
            "full_log": message, "decoder": {"name": decoder}, "data": data_tree(fields, static),
            "location": location,
        }
        if "no_full_log" in rule.options:
            del alert["full_log"]
        with open(ALERTS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(alert, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------------- wazuh-integratord

def integratord_test() -> int:
    try:
        integrations(read_conf())
    except ConfigError as exc:
        print(f"{time.strftime('%Y/%m/%d %H:%M:%S')} wazuh-integratord: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


def alert_matches(item: dict, alert: dict) -> bool:
    """The <integration> filters, ANDed (contract section 1)."""
    rule = alert.get("rule", {})
    if "level" in item and int(rule.get("level", 0)) < int(item["level"]):
        return False
    if "rule_id" in item and str(rule.get("id")) not in item["rule_id"].split(","):
        return False
    if "group" in item and not set(item["group"].split(",")) & set(rule.get("groups", [])):
        return False
    location = str(alert.get("location", ""))
    return not ("event_location" in item
                and not compile_field("osmatch", item["event_location"]).search(location))


def writable_by_wazuh(path: str, uid: int, gid: int) -> bool:
    st = os.stat(path)
    return bool((st.st_uid == uid and st.st_mode & 0o200) or (st.st_gid == gid and st.st_mode & 0o020)
                or st.st_mode & 0o002)


def run_integration(item: dict, line: str, alert: dict, uid: int, gid: int) -> None:
    name = item["name"]
    path = os.path.join(HOME, "integrations", name)
    stamp = f"{int(time.time())}-{secrets.randbelow(10**9)}"
    alert_file = f"/tmp/{name}-{stamp}.alert"
    options_file = f"/tmp/{name}-{stamp}.options" if item.get("options") else ""
    with open(alert_file, "w", encoding="utf-8") as fh:
        if item.get("alert_format") == "json":
            fh.write(line.rstrip("\n") + "\n")
        else:
            fh.write("".join(f"{k}='{v}'\n" for k, v in alert.items() if not isinstance(v, (dict, list))))
    if options_file:
        with open(options_file, "w", encoding="utf-8") as fh:
            fh.write(item["options"])
    for f in filter(None, (alert_file, options_file)):
        os.chown(f, uid, gid)
        os.chmod(f, 0o640)
    # argv[0] as integratord passes it: relative to its working directory, the Wazuh home
    argv = [os.path.join("integrations", name), alert_file, item.get("api_key", ""), item.get("hook_url", ""), "",
            options_file, item.get("timeout", "10"), item.get("retries", "3"), "> /dev/null 2>&1"]
    try:
        if writable_by_wazuh(path, uid, gid):
            # the child refuses before exec; the full command line (API key too) is logged
            log("wazuh-integratord", "ERROR", f"At wpopenv(): file 'integrations/{name}' has write permissions.")
            command = " ".join(["integrations", *argv[1:]])   # INTEGRATORDIR, then the arguments
            log("wazuh-integratord", "ERROR", f"Couldn't execute command ({command}). Check file and permissions.")
            return
        else:
            def demote() -> None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            proc = subprocess.run(argv, cwd=HOME, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, preexec_fn=demote, start_new_session=True,
                                  check=False)
            rc, output = proc.returncode, proc.stdout.decode("utf-8", "replace").strip()
    finally:
        for f in filter(None, (alert_file, options_file)):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
    if rc != 0:
        log("wazuh-integratord", "ERROR", f"Unable to run integration for {name} -> integrations")
        log("wazuh-integratord", "ERROR", f"While running {name} -> integrations. Output: {output[:512]} ")
        log("wazuh-integratord", "ERROR", f"Exit status was: {rc}")


def integratord() -> int:
    items = []
    for item in integrations(read_conf()):
        name = item["name"]
        # as integrator.c: the file is checked first, the name only for a file that exists
        if not os.path.isfile(os.path.join(HOME, "integrations", name)):
            log("wazuh-integratord", "ERROR", f"Unable to enable integration for: '{name}'. File not found "
                f"inside 'integrations'.")
            continue
        if not (name.startswith("custom-") or name in KNOWN_INTEGRATIONS):
            log("wazuh-integratord", "ERROR", f"Invalid integration: '{name}'. Not currently supported.")
            continue
        log("wazuh-integratord", "INFO", f"Enabling integration for: '{name}'.")
        items.append(item)
    uid, gid = wazuh_ids()
    log("wazuh-integratord", "INFO", f"Started (pid: {os.getpid()}).")
    with open(ALERTS, encoding="utf-8", errors="replace") as fh:
        fh.seek(0, os.SEEK_END)                        # alerts written while down are never sent
        partial = ""
        while True:
            chunk = fh.readline()
            if not chunk:
                if os.stat(ALERTS).st_size < fh.tell():  # rotated or truncated
                    fh.seek(0)
                time.sleep(0.05)
                continue
            partial += chunk
            if not partial.endswith("\n"):
                continue
            line, partial = partial, ""
            try:
                alert = json.loads(line)
            except ValueError:
                continue
            if not isinstance(alert, dict):
                continue
            for item in items:                          # synchronous, in ossec.conf order
                if alert_matches(item, alert):
                    run_integration(item, line, alert, uid, gid)


# --------------------------------------------------------------------------- wazuh-control

def pid_of(daemon: str) -> int | None:
    for path in glob.glob(os.path.join(HOME, "var", "run", f"{daemon}-*.pid")):
        pid = int(path.rsplit("-", 1)[1][:-4])
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                zombie = fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if not zombie and daemon.encode() in fh.read():
                    return pid
        except (ProcessLookupError, FileNotFoundError):
            pass
        os.unlink(path)
    return None


def start() -> int:
    if config_errors():
        return 1
    print(f"Starting Wazuh {VERSION}...")
    for daemon in RUN_DAEMONS:
        if pid_of(daemon):
            print(f"{daemon} already running...")
            continue
        proc = subprocess.Popen([os.path.join(HOME, "bin", daemon), "-f"], cwd=HOME, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(HOME, "var", "run", f"{daemon}-{proc.pid}.pid"), "w") as fh:
            fh.write(f"{proc.pid}\n")
        if daemon == "wazuh-analysisd":
            deadline = time.monotonic() + 10
            while not os.path.exists(QUEUE) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
        print(f"Started {daemon}...")
    print("Completed.")
    return 0


def stop() -> int:
    print(f"Killing {', '.join(RUN_DAEMONS)}... ")
    for daemon in reversed(RUN_DAEMONS):
        pid = pid_of(daemon)
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
            for path in glob.glob(os.path.join(HOME, "var", "run", f"{daemon}-*.pid")):
                os.unlink(path)
    if os.path.exists(QUEUE):
        os.unlink(QUEUE)
    print("Wazuh " + VERSION + " Stopped")
    return 0


def config_errors() -> bool:
    """What `wazuh-control` tests before it stops anything (contract section 5)."""
    for program in ("wazuh-analysisd", "wazuh-integratord"):
        proc = subprocess.run([os.path.join(HOME, "bin", program), "-t"], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            print(f"{program}: Configuration error. Exiting", file=sys.stderr)
            return True
    return False


def status() -> int:
    all_running = True
    for daemon in ALL_DAEMONS:
        if daemon in RUN_DAEMONS and pid_of(daemon):
            print(f"{daemon} is running...")
        else:
            print(f"{daemon} not running...")
            all_running = False
    return 0 if all_running else 1


def control(args: list) -> int:
    action = args[0] if args else ""
    if action == "start":
        return start()
    if action == "stop":
        return stop()
    if action in ("restart", "reload"):
        if config_errors():
            return 1
        stop()
        return start()
    if action == "status":
        return status()
    if action == "info":
        print(f'WAZUH_VERSION="{VERSION}"\nWAZUH_TYPE="server"')
        return 0
    print("Usage: wazuh-control {start|stop|restart|reload|status|info}", file=sys.stderr)
    return 1


def main() -> int:
    program = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if program == "wazuh-control":
        return control(args)
    if program == "wazuh-analysisd":
        return analysisd_test() if "-t" in args else analysisd()
    if program == "wazuh-integratord":
        return integratord_test() if "-t" in args else integratord()
    print(f"standin: unknown program {program}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
