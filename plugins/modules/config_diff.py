#!/usr/bin/python
# SPDX-License-Identifier: MIT
"""Module wazuh_virustotal_ip.virustotal_ip.config_diff: how the integration's JSON
configuration would change, as a diff with the API key masked on both sides.

The role writes that file with no_log (it holds the key), which also hides its diff; this
read-only module shows the change instead, so that `--check --diff` previews it too.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: config_diff
short_description: Show how a JSON file holding the VirusTotal API key would change, the key masked
version_added: 1.3.0
description:
  - Compares the JSON text the virustotal_ip role is about to write with the file on the manager
    and returns the difference for C(--diff), with the C(api_key) value masked on both sides and
    wherever else either key appears. A file on the manager that is not JSON is not shown.
  - Reads only; the role writes the file in its next task.
options:
  path:
    description: The file on the manager.
    type: path
    required: true
  content:
    description: The JSON text that will be written; it holds the API key.
    type: str
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
author:
  - wazuh-virustotal-ip maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Show how the configuration changes (the API key masked)
  wazuh_virustotal_ip.virustotal_ip.config_diff:
    path: /var/ossec/etc/custom-virustotal_ip.json
    content: "{{ config | to_nice_json }}"
"""

RETURN = r"""
changed:
  description: Whether the file's text differs from I(content) (a new key alone included).
  type: bool
  returned: always
"""

import json
import re

MASK = "********"
NEW_KEY = MASK + " (a new key)"
API_KEY = re.compile(r'("api_key"\s*:\s*)("(?:[^"\\]|\\.)*")')      # (name and colon)(the JSON string)


def api_key(text: str) -> str | None:
    """The api_key of a JSON object's text; None when the text is not a JSON object."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return str(data.get("api_key") or "") if isinstance(data, dict) else None


def masked(text: str, keys: list, mask: str) -> str:
    """`text` with the api_key value and every occurrence of each key replaced by `mask`."""
    for key in sorted({k for k in keys if k}, key=len, reverse=True):
        text = text.replace(key, mask).replace(json.dumps(key)[1:-1], mask)
    return API_KEY.sub(lambda m: m[0] if m[2] == '""' else f'{m[1]}"{mask}"', text)   # an empty key stays empty


def diff(current: str | None, content: str, path: str) -> dict:
    """The module's result for the file's text `current` (None: no file) and the new text."""
    new_key = api_key(content) or ""
    old_key = api_key(current) if current is not None else None
    keys = [new_key, old_key or ""]
    if current is None:
        before = ""
    elif old_key is None:
        before = f"({path} is not a JSON object: not shown, it may hold a key)\n"
    else:
        before = masked(current, keys, MASK)
    after = masked(content, keys, NEW_KEY if current is not None and new_key and old_key != new_key else MASK)
    return {"changed": current != content,
            "diff": {"before": before, "after": after, "before_header": path,
                     "after_header": f"{path} (the API key masked)"}}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True},
                                          "content": {"type": "str", "required": True, "no_log": True}},
                           supports_check_mode=True)
    path = module.params["path"]
    try:
        with open(path, encoding="utf-8") as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    except (OSError, UnicodeDecodeError) as e:
        module.fail_json(msg=f"cannot read {path}: {e.__class__.__name__}")
    module.exit_json(**diff(current, module.params["content"], path))


if __name__ == "__main__":
    main()
