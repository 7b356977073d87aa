# SPDX-License-Identifier: MIT
"""custom-virustotal_ip: VirusTotal v3 IP reputation with a verdict, for Wazuh's integratord.

Where each part lives (a reviewer can read each module alone):

    verdict.py     the verdict: VirusTotal facts + thresholds -> verdict + reasons (pure)
    address.py     IP addresses from untrusted text: parsing, canonical form, networks (pure)
    wazuh.py       the Wazuh edge: integratord's argv, the alert, the event sent on the queue
                   socket, integrations.log
    virustotal.py  the VirusTotal edge: client, answer parsing (the only `requests` user)
    deadline.py    the run's time bound, shared by the lookup and the client
    state.py       the state under <home>/var/virustotal_ip: every line of SQL
    budget.py      the request budget and the quota breaker
    lookup.py      one alert: cache, budget, VirusTotal (Lookup), then delivery or deferral
                   (Outbox); a miss queued for the lookup worker
    worker.py      the lookup worker, started detached on a miss, and --drain: the pending
                   queue looked up outside integratord's call
    settings.py    the settings table: defaults, ranges, validation, the config file
    cli.py         the entry point: integratord's run of one alert; main(), which never prints a traceback
    analyst.py     the analyst's commands: --check, --status, --drain
    codec.py       JSON and the sanitising of untrusted text

Only the standard library and `requests` are used. A cache hit runs on every alert while
integratord waits, so each module imports only what a hit needs (see codec.py and cli.py).
"""
