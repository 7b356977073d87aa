"""Reading what `ansible-playbook` printed with its default callback: which tasks changed,
and which warnings it gave."""
from __future__ import annotations

import re

TASK_HEADER = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(.+?)\] \*+$")
WARNING = re.compile(r"^\[(?:DEPRECATION )?WARNING\]")


def changed_tasks(output: str) -> set:
    """The tasks ("role : name") that reported `changed` for any host or loop item."""
    changed, task = set(), None
    for line in output.splitlines():
        header = TASK_HEADER.match(line)
        if header:
            task = header[1]
        elif task and line.startswith("changed: ["):
            changed.add(task)
    return changed


def warnings(*outputs: str, about_the_users_setup: tuple = ()) -> list:
    """Each [WARNING] or [DEPRECATION WARNING] with its continuation lines, one string each,
    but those holding one of `about_the_users_setup` (Ansible's own notices about how the user
    set Ansible up, named by the test that allows them)."""
    found: list = []
    for output in outputs:
        current = None
        for line in output.splitlines():
            if WARNING.match(line):
                current = [line]
                found.append(current)
            elif current is not None and line.startswith(" ") and line.strip():
                current.append(line.strip())
            else:
                current = None
    joined = [" ".join(lines) for lines in found]
    return [w for w in joined if not any(notice in w for notice in about_the_users_setup)]
