# SPDX-License-Identifier: MIT
"""Action plugin of wazuh_virustotal_ip.virustotal_ip.install_files: reads each file's `src` on
the controller (searched like copy's: a role's files/ first) and runs the module once with
every file's content, base64-encoded, in its arguments."""
from __future__ import annotations

import base64

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.wazuh_virustotal_ip.virustotal_ip.plugins.modules.install_files import ARGUMENT_SPEC


class ActionModule(ActionBase):
    TRANSFERS_FILES = False        # the contents travel in the module's arguments

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        contents = []
        for entry in args["files"]:
            try:
                with open(self._find_needle("files", entry["src"]), "rb") as f:
                    contents.append(base64.b64encode(f.read()).decode("ascii"))
            except OSError as e:
                raise AnsibleActionFail(f"cannot read {entry['src']}: {e.strerror}") from e
        result.update(self._execute_module(module_args={**args, "_contents": contents}, task_vars=task_vars))
        return result
