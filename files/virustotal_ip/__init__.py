# SPDX-License-Identifier: MIT
"""custom-virustotal_ip: VirusTotal v3 IP reputation with a verdict, for Wazuh's integratord.

Where each part lives (a reviewer can read each module alone):

    codec.py       JSON and the sanitising of untrusted text
    verdict.py     the verdict: VirusTotal facts + thresholds -> verdict + reasons (pure)
    address.py     IP addresses from untrusted text: parsing, canonical form, networks (pure)
    settings.py    the settings table: defaults, ranges, validation, the config file
    budget.py      the request budget and the quota breaker (over the state)
    deadline.py    the run's time bound, shared by the lookup and the client
    wazuh.py       the Wazuh edge: integratord's argv, the alert, the events sent on the queue
                   socket (Delivery), integrations.log
    virustotal.py  the VirusTotal edge: client, answer parsing (the only `requests` user)
    spool.py       the state directory's plain files: the queue, the hit/miss tallies, the locks
    state.py       the state under <home>/var/virustotal_ip: every line of SQL
    lookup.py      one address: cache, budget, VirusTotal (Lookup), and its typed outcome
    worker.py      every miss: queued and looked up on a slot (a detached worker, --drain, or
                   a run in the foreground), its outcome settled into verdicts or waits
    run.py         integratord's run once the address is known: a hit sent, a miss handed on
    analyst.py     the analyst's commands: --check, --status, --drain, --stop-workers
    cli.py         the entry point: integratord's run of one alert; main(), which never prints a traceback

Imports run one way: each module imports only modules listed above it, from the pure ones
at the top to the entry points at the bottom (tests/script/test_integration.py checks it).

Only the standard library and `requests` are used. A cache hit runs on every alert while
integratord waits, so each module imports only what a hit needs (see codec.py and cli.py).
"""
