"""The --drain schedule on a host where systemd runs instead of cron, on Wazuh's own daemons.

Containers here run no systemd, so the host is made to look like one that does: /run/systemd/system
exists (what the role looks for) and `systemctl` is a recorder that keeps each unit's enabled and
active state the way systemctl reports it (`show`, `is-enabled`). What is proven is what the role
asks of systemd and in which order, and which unit files it leaves behind; that systemd itself
runs the timer is systemd's business.
"""
from __future__ import annotations

from manager_harness import OSSEC, Manager, manager_image

UNITS = "/etc/systemd/system"
TIMER, SERVICE = "custom-virustotal_ip-drain.timer", "custom-virustotal_ip-drain.service"
CALLS = "/var/log/systemctl-calls"
BROKEN = '<group name="test,"><rule id="100900" level="17"><description>x</description></rule></group>\n'

# Records every call; answers show/is-enabled from state it keeps under /var/lib/fake-systemctl.
FAKE_SYSTEMCTL = r"""#!/bin/sh
echo "$*" >> /var/log/systemctl-calls
state=/var/lib/fake-systemctl
mkdir -p "$state"
cmd=""; unit=""
for arg in "$@"; do
    case "$arg" in
        -*|*=*) ;;
        *) if [ -z "$cmd" ]; then cmd=$arg; else unit=$arg; fi ;;
    esac
done
case "$cmd" in
    show)
        [ -f "/etc/systemd/system/$unit" ] && load=loaded || load=not-found
        [ -f "$state/$unit.active" ] && active=active || active=inactive
        [ -f "$state/$unit.enabled" ] && file=enabled || file=disabled
        printf 'Id=%s\nNames=%s\nLoadState=%s\nActiveState=%s\nSubState=dead\nUnitFileState=%s\n' \
            "$unit" "$unit" "$load" "$active" "$file" ;;
    is-enabled)
        if [ -f "$state/$unit.enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
    is-active)
        if [ -f "$state/$unit.active" ]; then echo active; else echo inactive; exit 3; fi ;;
    enable) touch "$state/$unit.enabled" ;;
    disable) rm -f "$state/$unit.enabled" ;;
    start|restart) touch "$state/$unit.active" ;;
    stop) rm -f "$state/$unit.active" ;;
    daemon-reload|--version) ;;
    *) echo "fake systemctl: unexpected: $*" >&2; exit 1 ;;
esac
"""


def systemd_host() -> Manager:
    m = Manager(manager_image("wazuh-src", "the role's systemd schedule"))
    m.exec("mkdir", "-p", "/run/systemd/system", UNITS, check=True)
    m.put("/usr/local/bin/systemctl", FAKE_SYSTEMCTL, mode="0755", owner="root:root")
    return m


def calls(m: Manager) -> list[str]:
    r = m.exec("cat", CALLS)
    return r.stdout.decode().splitlines() if r.returncode == 0 else []


def units_present(m: Manager) -> list[str]:
    """Our unit files and anything beside them named after them (backups)."""
    return sorted(m.sh(f"cd {UNITS} && ls -A | grep custom-virustotal_ip || true").stdout.decode().split())


def test_the_timer_starts_after_the_change_validated_and_the_uninstall_stops_and_removes_it(tmp_path):
    m = systemd_host()
    try:
        r = m.site(tmp_path)
        assert r.returncode == 0, r.stdout[-3000:]
        assert units_present(m) == [SERVICE, TIMER]                     # no backups beside them
        assert f"ExecStart={OSSEC}/framework/python/bin/python3 {OSSEC}/integrations/custom-virustotal_ip.py --drain" \
            in m.read(f"{UNITS}/{SERVICE}")
        installed = calls(m)
        assert "daemon-reload" in installed
        assert installed.index("daemon-reload") < installed.index(f"enable {TIMER}") \
            and installed.index("daemon-reload") < installed.index(f"start {TIMER}"), installed
        assert not any(c.startswith(("stop", "disable")) for c in installed), installed
        assert m.exec("test", "-e", "/etc/cron.d/custom-virustotal_ip").returncode != 0

        r = m.site(tmp_path)                                             # a rerun changes nothing
        assert r.returncode == 0 and "changed=0" in r.stdout, r.stdout[-3000:]

        r = m.site(tmp_path, "-e", "virustotal_ip_state=absent")
        assert r.returncode == 0, r.stdout[-3000:]
        removed = calls(m)[len(installed):]
        assert any(c.startswith("stop") and TIMER in c for c in removed), removed
        assert any(c.startswith("disable") and TIMER in c for c in removed), removed
        assert removed[-1] == "daemon-reload", removed                 # after the unit files went
        assert units_present(m) == []
    finally:
        m.stop()


def test_a_first_install_that_does_not_validate_leaves_no_units_and_starts_no_timer(tmp_path):
    m = systemd_host()
    try:
        m.put(f"{OSSEC}/etc/rules/zz_broken.xml", BROKEN, mode="0660", owner="wazuh:wazuh")
        r = m.site(tmp_path)
        out = " ".join(r.stdout.split())
        assert r.returncode != 0 and "The change was rolled back" in out, out[-3000:]
        assert "TASK [virustotal_ip : Schedule --drain with a systemd timer]" in r.stdout   # written within the change
        assert units_present(m) == []                                    # and gone, with no backups
        assert calls(m) == ["daemon-reload"]                             # systemd forgot them; nothing started
    finally:
        m.stop()
