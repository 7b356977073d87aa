"""After the failure scenario's side effects: the uninstall removed everything the role added
and every manager keeps running. The same on Wazuh's own daemons built from source and the official image."""
testinfra_hosts = ["all"]
OSSEC = "/var/ossec"


def test_nothing_of_ours_is_left(host):
    for path in ["integrations/custom-virustotal_ip", "integrations/custom-virustotal_ip.py",
                 "integrations/__pycache__", "integrations/virustotal_ip", "etc/custom-virustotal_ip.json",
                 "etc/rules/virustotal_ip_rules.xml", "var/virustotal_ip"]:
        assert not host.file(f"{OSSEC}/{path}").exists, path
    for schedule in ["/etc/cron.d/custom-virustotal_ip", "/etc/systemd/system/custom-virustotal_ip-drain.timer",
                     "/etc/systemd/system/custom-virustotal_ip-drain.service"]:
        assert not host.file(schedule).exists, schedule
    conf = host.file(f"{OSSEC}/etc/ossec.conf")
    assert "custom-virustotal_ip" not in conf.content_string
    assert (conf.user, conf.group, conf.mode) == ("root", "wazuh", 0o660)


def test_manager_keeps_running(host):
    assert "wazuh-analysisd is running..." in host.run(f"{OSSEC}/bin/wazuh-control status").stdout
