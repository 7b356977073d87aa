# SPDX-License-Identifier: MIT
"""Action plugin of wazuh_virustotal_ip.virustotal_ip.install_files: reads each file's `src` on
the controller (searched like copy's: a role's files/ first), or takes its `content`, and runs
the module once with every file's content, base64-encoded, in its arguments (`restore` goes to
the module as it is)."""
from __future__ import annotations

import base64

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.wazuh_virustotal_ip.virustotal_ip.plugins.modules.install_files import (
    ARGUMENT_SPEC,
    MUTUALLY_EXCLUSIVE,
    REQUIRED_ONE_OF,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False        # the contents travel in the module's arguments

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                                           required_one_of=REQUIRED_ONE_OF)[1]
        args = {name: value for name, value in args.items() if value is not None}     # the module counts given ones
        if "restore" in args:               # nothing to read
            result.update(self._execute_module(module_args=args, task_vars=task_vars))
            return result
        contents = []
        for entry in args["files"]:
            if entry["content"] is not None:       # rendered here: it travels as the others do, not as an argument
                contents.append(base64.b64encode(entry.pop("content").encode("utf-8")).decode("ascii"))
                continue
            try:
                with open(self._find_needle("files", entry["src"]), "rb") as f:
                    contents.append(base64.b64encode(f.read()).decode("ascii"))
            except OSError as e:
                raise AnsibleActionFail(f"cannot read {entry['src']}: {e.strerror}") from e
        result.update(self._execute_module(module_args={**args, "_contents": contents}, task_vars=task_vars))
        return result
