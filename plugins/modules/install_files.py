#!/usr/bin/python
# SPDX-License-Identifier: MIT
"""Module wazuh_virustotal_ip.virustotal_ip.install_files: several files, each with its own
owner and mode, written in one module run with ansible.builtin.copy's guarantees (atomic
replace, a backup of what is replaced, owner and mode set, check and diff mode); and the undoing
of such runs (I(restore)), which is the role's whole rollback.

Why not copy in a loop: copy costs two module runs and six connections per file, which made the
integration's fifteen files two thirds of a first install (24 of 51 s on a container). The
action plugin of the same name reads each `src` on the controller and passes the contents here.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: install_files
short_description: Install several files, each with its own owner and mode, in one module run
version_added: 1.3.0
description:
  - Writes each file whose content differs, atomically, with a backup of the file it replaces
    when I(backup) is set, and sets each file's owner, group and mode, as
    M(ansible.builtin.copy) does for one file; files whose content is current are not rewritten.
  - Its action plugin reads each I(files[].src) on the controller (a role's C(files/) is
    searched, as copy searches it), or takes I(files[].content) (a rendered template), and sends
    the contents with the module's arguments, so that every file travels in one connection.
  - With I(restore), undoes what earlier runs did, from their I(results). A replaced file gets
    its backup back, renamed over it (its content, times, owner and mode as they were); a file
    whose owner or mode alone changed gets them back; a created file is removed.
options:
  files:
    description: The files to install (one of I(files) and I(restore)).
    type: list
    elements: dict
    suboptions:
      src:
        description: The file on the controller (read by the action plugin); or I(content).
        type: path
      content:
        description: The file's content (read by the action plugin; never in the module's arguments); or I(src).
        type: str
      dest:
        description: Where it goes on the managed host; its directory must exist.
        type: path
        required: true
      mode:
        description: Its mode, as for M(ansible.builtin.copy).
        type: raw
        required: true
      owner:
        description: Its owner; I(owner) when not given.
        type: str
      group:
        description: Its group; I(group) when not given.
        type: str
  owner:
    description: Owner of every file that names none.
    type: str
  group:
    description: Group of every file that names none.
    type: str
  restore:
    description:
      - The I(results) of earlier runs of this module, to undo (one of I(files) and I(restore)); each
        entry's I(action) says what to do, I(previous) and I(backup_file) with what.
    type: list
    elements: dict
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
  register: installed

- name: Put everything back as it was
  wazuh_virustotal_ip.virustotal_ip.install_files:
    restore: "{{ installed.results }}"
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
    action:
      description:
        - What was done (or would be, in check mode) - C(created), C(replaced) (other content),
          C(modified) (the owner, group or mode only), C(unchanged); with I(restore), what was undone.
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
    "files": {"type": "list", "elements": "dict", "mutually_exclusive": [["src", "content"]],
              "required_one_of": [["src", "content"]], "options": {
        "src": {"type": "path"},            # read by the action plugin
        "content": {"type": "str"},         # moved into _contents by the action plugin
        "dest": {"type": "path", "required": True},
        "mode": {"type": "raw", "required": True},
        "owner": {"type": "str"},
        "group": {"type": "str"},
    }},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "backup": {"type": "bool", "default": False},
    "restore": {"type": "list", "elements": "dict"},
}
MUTUALLY_EXCLUSIVE = [["files", "restore"]]
REQUIRED_ONE_OF = [["files", "restore"]]


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
    result = {"dest": dest, "mode": entry["mode"], "created": current is None, "changed": current != data,
              "action": "created" if current is None else "replaced" if current != data else "unchanged"}
    if current is not None:
        result["previous"] = attributes(dest)
    shown = None
    file_args = module.load_file_common_arguments(
        {"mode": entry["mode"], "owner": entry.get("owner") or owner, "group": entry.get("group") or group}, path=dest)
    if not result["changed"]:
        result["changed"] = module.set_fs_attributes_if_different(file_args, False)
        if result["changed"]:
            result["action"] = "modified"
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


def restore(module, result: dict) -> str | None:
    """Undo one file's installation from its result; what was undone, or None for nothing."""
    dest, action = result.get("dest"), result.get("action")
    if not result.get("changed") or action not in ("created", "replaced", "modified"):
        return None
    if action == "created":
        if not os.path.lexists(dest):
            return None
        if not module.check_mode:
            os.unlink(dest)
        return "removed"
    previous = module.load_file_common_arguments(dict(result["previous"]), path=dest)
    if action == "replaced":
        if not module.check_mode:       # the backup, given the old owner and mode, renamed over the file
            module.set_fs_attributes_if_different(dict(previous, path=result["backup_file"]), False)
            os.replace(result["backup_file"], dest)
        return "restored"
    return "reset" if module.set_fs_attributes_if_different(previous, False) else None


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule
    module = AnsibleModule(
        argument_spec={
            **ARGUMENT_SPEC,
            # src or content was checked by the action plugin, which moved each content into _contents
            "files": {k: v for k, v in ARGUMENT_SPEC["files"].items()
                      if k not in ("mutually_exclusive", "required_one_of")},
            # each file's content, base64, in the order of files: from the action plugin (internal,
            # hence the underscore); no_log keeps them out of -vvv's module_args
            "_contents": {"type": "list", "elements": "str", "no_log": True},
        },
        mutually_exclusive=MUTUALLY_EXCLUSIVE, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    if module.params["restore"] is not None:
        undone = []
        for result in reversed(module.params["restore"]):     # the last written first
            try:
                done = restore(module, result)
            except (OSError, KeyError) as e:     # KeyError: a result without what its action needs
                module.fail_json(msg=f"cannot restore {result.get('dest')}: {e}", results=undone,
                                 changed=bool(undone))
            if done:
                undone.append({"dest": result["dest"], "action": done})
        module.exit_json(changed=bool(undone), results=undone)
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
