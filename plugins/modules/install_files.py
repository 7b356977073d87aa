#!/usr/bin/python
# SPDX-License-Identifier: MIT
"""Module wazuh_virustotal_ip.virustotal_ip.install_files: several files, each with its own
mode, written in one module run with ansible.builtin.copy's guarantees (atomic replace, a
backup of what is replaced, owner and mode set, check and diff mode).

Why not copy in a loop: copy costs two module runs and six connections per file, which made the
integration's fifteen files two thirds of a first install (24 of 51 s on a container). The
action plugin of the same name reads each `src` on the controller and passes the contents here.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: install_files
short_description: Install several files, each with its own mode, in one module run
version_added: 1.3.0
description:
  - Writes each file whose content differs, atomically, with a backup of the file it replaces
    when I(backup) is set, and sets the owner, group and each file's mode, as
    M(ansible.builtin.copy) does for one file; files whose content is current are not rewritten.
  - Its action plugin reads each I(files[].src) on the controller (a role's C(files/) is
    searched, as copy searches it) and sends the contents with the module's arguments, so that
    every file travels in one connection.
options:
  files:
    description: The files to install.
    type: list
    elements: dict
    required: true
    suboptions:
      src:
        description: The file on the controller (read by the action plugin).
        type: path
        required: true
      dest:
        description: Where it goes on the managed host; its directory must exist.
        type: path
        required: true
      mode:
        description: Its mode, as for M(ansible.builtin.copy).
        type: raw
        required: true
  owner:
    description: Owner of every file.
    type: str
  group:
    description: Group of every file.
    type: str
  backup:
    description: Keep a timestamped copy of each file that is replaced, as copy's I(backup) does.
    type: bool
    default: false
  _contents:
    description:
      - Internal, set by the action plugin from each I(files[].src); do not set it. Each file's
        content, base64-encoded, in the order of I(files).
    type: list
    elements: str
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
- name: Install the wrapper and the package
  wazuh_virustotal_ip.virustotal_ip.install_files:
    files:
      - {src: custom-virustotal_ip, dest: /var/ossec/integrations/custom-virustotal_ip, mode: "0750"}
      - {src: virustotal_ip/cli.py, dest: /var/ossec/integrations/virustotal_ip/cli.py, mode: "0640"}
    owner: root
    group: wazuh
    backup: true
"""

RETURN = r"""
results:
  description: One entry per file, in the order given.
  type: list
  elements: dict
  returned: always
  contains:
    dest:
      description: The file.
      type: str
    mode:
      description: The mode it was given.
      type: str
    changed:
      description: Whether its content, owner, group or mode changed (or would, in check mode).
      type: bool
    created:
      description: Whether it did not exist before (a rollback removes it).
      type: bool
    previous:
      description: The owner, group and mode it had before (a rollback puts them back).
      type: dict
      returned: when the file existed
    backup_file:
      description: The copy of the replaced file, when I(backup) is set and its content changed.
      type: str
      returned: when a file with other content was replaced
"""

import base64
import grp
import os
import pwd
import stat
import tempfile

# The options a task gives; the action plugin validates them with this too, then adds _contents.
ARGUMENT_SPEC = {
    "files": {"type": "list", "elements": "dict", "required": True, "options": {
        "src": {"type": "path", "required": True},      # read by the action plugin
        "dest": {"type": "path", "required": True},
        "mode": {"type": "raw", "required": True},
    }},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "backup": {"type": "bool", "default": False},
}


def text_or_note(data: bytes | None, dest: str) -> str:
    """A file's content as --diff shows it: text, or a note for what is not UTF-8 text."""
    if data is None:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"({dest}: {len(data)} bytes that are not UTF-8 text)\n"


def read(dest: str) -> bytes | None:
    """The file's content; None when there is no file."""
    try:
        with open(dest, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def attributes(dest: str) -> dict:
    """A file's owner, group and mode as the file module takes them (ids where no name exists)."""
    st = os.stat(dest)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {"owner": owner, "group": group, "mode": f"{stat.S_IMODE(st.st_mode):04o}"}


def write(module, dest: str, data: bytes, file_args: dict) -> None:
    """Replace `dest` atomically: a temporary file beside it, given its owner and mode, then
    renamed over it. Raises OSError with `dest` untouched (the caller reports what was done)."""
    fd, tmp = tempfile.mkstemp(prefix=".ansible_tmp", dir=os.path.dirname(dest) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        module.set_fs_attributes_if_different(dict(file_args, path=tmp), True)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def install(module, entry: dict, data: bytes, owner: str | None, group: str | None, backup: bool) -> tuple:
    """One file, `data` its content: (its result, its diff or None)."""
    dest = entry["dest"]
    current = read(dest)
    result = {"dest": dest, "mode": entry["mode"], "created": current is None, "changed": current != data}
    if current is not None:
        result["previous"] = attributes(dest)
    shown = None
    file_args = module.load_file_common_arguments({"mode": entry["mode"], "owner": owner, "group": group}, path=dest)
    if not result["changed"]:
        result["changed"] = module.set_fs_attributes_if_different(file_args, False)
        return result, shown
    shown = {"before_header": dest, "after_header": dest,
             "before": text_or_note(current, dest), "after": text_or_note(data, dest)}
    if module.check_mode:
        return result, shown
    if backup and current is not None:
        result["backup_file"] = module.backup_local(dest)
    try:
        write(module, dest, data, file_args)
    except OSError:
        if "backup_file" in result:        # nothing was replaced: no backup to leave behind
            os.unlink(result["backup_file"])
        raise
    return result, shown


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule
    module = AnsibleModule(
        argument_spec={
            **ARGUMENT_SPEC,
            # each file's content, base64, in the order of files: from the action plugin (internal,
            # hence the underscore); no_log keeps them out of -vvv's module_args
            "_contents": {"type": "list", "elements": "str", "no_log": True},
        },
        supports_check_mode=True)
    files, contents = module.params["files"], module.params["_contents"] or []
    if len(contents) != len(files):
        module.fail_json(msg="install_files runs through its action plugin, which reads each src (the module got "
                             f"{len(contents)} contents for {len(files)} files)")
    results, diffs = [], []
    for entry, content in zip(files, contents):
        try:
            result, shown = install(module, entry, base64.b64decode(content), module.params["owner"],
                                    module.params["group"], module.params["backup"])
        except (OSError, ValueError) as e:
            # what was installed before it, for the rollback (a replaced file's backup included)
            module.fail_json(msg=f"cannot install {entry['dest']}: {e}", results=results,
                             changed=any(r["changed"] for r in results))
        results.append(result)
        if shown:
            diffs.append(shown)
    out = {"changed": any(r["changed"] for r in results), "results": results}
    if module._diff:
        out["diff"] = diffs
    module.exit_json(**out)


if __name__ == "__main__":
    main()
