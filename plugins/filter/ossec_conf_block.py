# SPDX-License-Identifier: MIT
"""Filter wazuh_virustotal_ip.virustotal_ip.ossec_conf_block: ossec.conf's text with the role's
marked block in it, as ansible.builtin.blockinfile writes one (insertafter EOF), so that the
role hands the whole file to its install_files module, which backs it up and reports what it did
for the rollback. A file blockinfile wrote reads as unchanged."""
from __future__ import annotations

DOCUMENTATION = r"""
name: ossec_conf_block
short_description: A text with a marked block put in, as blockinfile puts it
version_added: 1.3.0
description:
  - Replaces the lines from the last line that is the BEGIN marker to the END marker after it
    with the marked block; without both markers, appends the block at the end (after a newline
    if the text lacks a final one). Each line of the block ends with a newline, as blockinfile
    writes it.
options:
  _input:
    description: The text of ossec.conf.
    type: str
    required: true
  marker:
    description: The block marker, with C({mark}) where BEGIN or END goes.
    type: str
    required: true
  block:
    description: The block's lines, without the markers.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: ossec.conf with the role's block
  ansible.builtin.debug:
    msg: "{{ ossec_conf_text | wazuh_virustotal_ip.virustotal_ip.ossec_conf_block('<!-- {mark} my block -->', block) }}"
"""

RETURN = r"""
_value:
  description: The text with the block.
  type: str
"""


def ossec_conf_block(text: str, marker: str, block: str) -> str:
    begin, end = marker.replace("{mark}", "BEGIN"), marker.replace("{mark}", "END")
    lines = text.splitlines(keepends=True)
    marked = [begin + "\n", *(line + "\n" for line in block.splitlines()), end + "\n"]
    starts = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == begin]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == end and starts and i > starts[-1]]
    if starts and ends:
        return "".join(lines[:starts[-1]] + marked + lines[ends[0] + 1:])
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines + marked)


class FilterModule:
    def filters(self) -> dict:
        return {"ossec_conf_block": ossec_conf_block}
