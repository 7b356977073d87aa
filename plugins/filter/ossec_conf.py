# SPDX-License-Identifier: MIT
"""Filter wazuh_virustotal_ip.virustotal_ip.ossec_conf: the facts the role needs from ossec.conf.

ossec.conf is read as Wazuh's own framework reads it (framework/wazuh/core/utils.py,
load_wazuh_xml): its several <ossec_config> blocks wrapped in one root element, after the same
repairs of what Wazuh's own parser tolerates ('--' inside comments, '<' and '&' that start no
tag or entity); comments are not configuration. A root element other than <ossec_config> is
an error, as for the manager's own config reader (src/config/config.c). Every repair keeps the
line numbers, so the facts can name the line of what they found: an integration's is the line
of its <name>.
"""
from __future__ import annotations

import re
import xml.parsers.expat

DOCUMENTATION = r"""
name: ossec_conf
short_description: The facts the virustotal_ip role needs from a Wazuh ossec.conf
version_added: 1.3.0
description:
  - Parses the text of ossec.conf as Wazuh's framework does (its root blocks wrapped in one
    element, comments ignored) and returns the integrations with their lines, the role's marked
    block, the names of the Active Response commands, and the cluster settings.
options:
  _input:
    description: The text of ossec.conf.
    type: str
    required: true
  marker:
    description: The role's block marker, with C({mark}) where BEGIN or END goes.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Read ossec.conf as Wazuh does
  ansible.builtin.set_fact:
    conf: "{{ ossec_conf_text | wazuh_virustotal_ip.virustotal_ip.ossec_conf('<!-- {mark} my block -->') }}"
"""

RETURN = r"""
_value:
  description: >-
    C(error) (empty, or why the text is not a configuration Wazuh can read), C(integrations)
    (each with C(name), C(line), C(ours): inside the role's block, C(alert_format),
    C(api_key): whether it has one), C(block) (C(begin) and C(end) lines of the role's block,
    0 when absent), C(commands) (names of the <command> entries), and C(cluster) (C(node_type),
    C(disabled); null without a <cluster>).
  type: dict
"""

_COMMENT = re.compile(r"<!--(.*?)-->", re.DOTALL)
_STRAY_AMPERSAND = re.compile(r"&(?!(amp|lt|gt|apos|quot);)")     # one that starts no XML entity


def repaired(text: str) -> str:
    """What Wazuh's framework makes of the text before parsing it, line for line."""
    text = _COMMENT.sub(lambda m: "<!--" + m.group(1).replace("--", "..") + "-->", text)
    text = re.sub(r"<(?!/?\w+.+>|!--)", "&lt;", text)             # a '<' that starts no tag
    return _STRAY_AMPERSAND.sub("&amp;", text)


class _Reader:
    """One pass of expat over the wrapped text, keeping what the role needs."""

    def __init__(self, marker: str) -> None:
        self.marks = {marker.replace("{mark}", "BEGIN"): "begin", marker.replace("{mark}", "END"): "end"}
        self.block = {"begin": 0, "end": 0}
        self.path: list = []
        self.text: list = []
        self.integrations: list = []
        self.commands: list = []
        self.cluster: dict | None = None
        self.name_line = 0
        self.stray: list = []         # root elements other than <ossec_config>: (name, line)
        self.parser = xml.parsers.expat.ParserCreate()
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.CharacterDataHandler = self.data
        self.parser.CommentHandler = self.comment

    def comment(self, body: str) -> None:
        which = self.marks.get("<!--" + body + "-->")
        if which and not self.block[which]:
            self.block[which] = self.parser.CurrentLineNumber

    def start(self, name: str, attrs: dict) -> None:
        self.path.append(name)
        self.text.append("")
        if len(self.path) == 2 and name != "ossec_config":
            self.stray.append((name, self.parser.CurrentLineNumber))
        elif self.path[1:] == ["ossec_config", "integration"]:
            self.integrations.append({"name": "", "line": self.parser.CurrentLineNumber, "alert_format": "",
                                      "api_key": False})
        elif self.path[1:] == ["ossec_config", "cluster"] and self.cluster is None:
            self.cluster = {"node_type": "master", "disabled": False}

        if self.path[1:] == ["ossec_config", "integration", "name"]:
            self.name_line = self.parser.CurrentLineNumber

    def data(self, text: str) -> None:
        self.text[-1] += text

    def end(self, name: str) -> None:
        value = self.text.pop().strip()
        parent = self.path[1:-1]
        if parent == ["ossec_config", "integration"]:
            entry = self.integrations[-1]
            if name == "name":
                entry["name"] = value
                entry["line"] = self.name_line
            elif name == "alert_format":
                entry[name] = value
            elif name == "api_key":
                entry["api_key"] = True
        elif parent == ["ossec_config", "command"] and name == "name":
            self.commands.append(value)
        elif parent == ["ossec_config", "cluster"] and self.cluster is not None:
            if name == "node_type":
                self.cluster["node_type"] = value
            elif name == "disabled":
                self.cluster["disabled"] = value in ("yes", "true")
        self.path.pop()


def ossec_conf(text: str, marker: str) -> dict:
    """The facts (see RETURN above); `error` says why none could be read."""
    reader = _Reader(marker)
    body = re.sub(r"^\s*<\?xml[^>]*\?>", lambda m: " " * len(m.group(0)), text)   # a declaration stays out
    error = ""
    try:
        reader.parser.Parse("<root_tag>" + repaired(body) + "</root_tag>", True)
    except xml.parsers.expat.ExpatError as exc:
        error = f"ossec.conf is not XML Wazuh can read: {xml.parsers.expat.ErrorString(exc.code)} at line {exc.lineno}"
    if reader.stray and not error:     # Wazuh's config reader refuses them (config.c: XML_INVELEM)
        name, line = reader.stray[0]
        error = (f"ossec.conf has a <{name}> outside any <ossec_config> at line {line}: Wazuh refuses it "
                 f"(Invalid element in the configuration: '{name}')")
    if error:
        return {"error": error, "integrations": [], "block": {"begin": 0, "end": 0}, "commands": [], "cluster": None}
    block = reader.block if reader.block["begin"] and reader.block["end"] > reader.block["begin"] else \
        {"begin": 0, "end": 0}
    for entry in reader.integrations:
        entry["ours"] = block["begin"] < entry["line"] < block["end"]
    return {"error": "", "integrations": reader.integrations, "block": block, "commands": reader.commands,
            "cluster": reader.cluster}


class FilterModule:
    def filters(self) -> dict:
        return {"ossec_conf": ossec_conf}
