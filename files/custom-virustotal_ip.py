#!/usr/bin/env python3
# custom-virustotal_ip - Wazuh integration: VirusTotal v3 IP reputation with a verdict.
# SPDX-License-Identifier: MIT
"""The entry point. wazuh-integratord runs it through the `custom-virustotal_ip` wrapper:

    custom-virustotal_ip ALERT_FILE API_KEY HOOK_URL [debug] [OPTIONS_FILE] [TIMEOUT] [RETRIES] ["> /dev/null 2>&1"]

For an analyst at a shell (nothing is sent to Wazuh by --check and --status):

    custom-virustotal_ip.py --check IP [--api-key KEY] [--options FILE]
    custom-virustotal_ip.py --status
    custom-virustotal_ip.py --drain          # cron, every minute, as user wazuh

The code is the package beside this file, virustotal_ip/ (its __init__ says which module does
what). Like Wazuh's larger integrations, this file only finds it and starts it.
"""
import os
import sys

_here = os.path.dirname(os.path.realpath(__file__))
if _here not in sys.path:       # python3 -I leaves the script's directory out of sys.path
    sys.path.append(_here)

from virustotal_ip.cli import main, main_and_exit  # noqa: E402

__all__ = ["main", "main_and_exit"]

if __name__ == "__main__":
    sys.exit(main(sys.argv))
