"""One request budget per API key across the fleet, on Wazuh's own daemons.

Four managers in the inventory: three share key A, one has key B. Two of them are real
containers (one with A, the one with B); the other two holders of A are inventory entries that
--limit leaves out of the run, as an administrator deploying to part of the fleet would: they
still count, because they still spend the key.
"""
from __future__ import annotations

import json

from manager_harness import OSSEC, Manager, deployed_image, manager_image

CONFIG = f"{OSSEC}/etc/custom-virustotal_ip.json"


def config(m: Manager) -> dict:
    return json.loads(m.read(CONFIG))


def test_three_managers_sharing_a_key_split_its_budget_and_one_with_its_own_keeps_all_of_it(tmp_path):
    manager_image("wazuh-src", "the fleet's shared key budget")
    shared, alone = Manager(deployed_image()), Manager(deployed_image())     # deployed with one manager's budget
    try:
        elsewhere = {"ansible_connection": "community.docker.docker", "virustotal_ip_api_key": "key-A"}
        r = shared.site(tmp_path, "--limit", f"{shared.name},{alone.name}", api_key="key-A", other_hosts={
            "vtip-not-in-this-run-1": elsewhere, "vtip-not-in-this-run-2": elsewhere,
            alone.name: {"ansible_connection": "community.docker.docker", "ansible_become": False,
                         "virustotal_ip_api_key": "key-B"}})
        assert r.returncode == 0, r.stdout[-3000:]
        got = {m: {k: config(m)[k] for k in ("rate_limit_per_minute", "daily_quota", "budget_managers")}
               for m in (shared, alone)}
        assert got[shared] == {"rate_limit_per_minute": 1, "daily_quota": 166, "budget_managers": 3}   # 4/3, 500/3
        assert got[alone] == {"rate_limit_per_minute": 4, "daily_quota": 500, "budget_managers": 1}
        assert f"1 requests a minute and 166 a day for {shared.name}: the key's 4 a minute and 500 a day " \
               "(0: unlimited) shared by 3 manager(s)" in " ".join(r.stdout.split())
        assert "key-A" not in r.stdout and "key-B" not in r.stdout

        status = shared.exec(f"{OSSEC}/framework/python/bin/python3", f"{OSSEC}/integrations/custom-virustotal_ip.py",
                             "--status", user="wazuh").stdout.decode()
        assert "Budget:            1 requests a minute, 166 a day: this manager's share of a key 3 managers share" \
            in status, status
    finally:
        shared.stop()
        alone.stop()


def test_the_replaced_rate_limit_variable_is_refused_before_anything_changes(tmp_path):
    m = Manager(manager_image("wazuh-src", "the fleet's shared key budget"))
    try:
        conf = m.read(f"{OSSEC}/etc/ossec.conf")
        r = m.site(tmp_path, "-e", "virustotal_ip_rate_limit_per_minute=4")
        out = " ".join(r.stdout.split())
        assert r.returncode != 0 and "virustotal_ip_rate_limit_per_minute was replaced by" in out, out[-3000:]
        assert m.read(f"{OSSEC}/etc/ossec.conf") == conf and m.exec("test", "-e", CONFIG).returncode != 0
    finally:
        m.stop()
