"""Root is never turned against the manager (issue 31): run as root, as the README runs them,
the analyst commands become the wazuh user before they read or write a file, and refuse where
they cannot; no run, root's or integratord's, uses a state directory or integrations.log that
is a symbolic link (logs/ and var/ are the wazuh group's: a link there is anyone's in it).

The tests run as root (as CI does), so what root does is what happens here, and a link's
target is a file or directory only root may use.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from harness import API_KEY, WazuhHome, sample_alert, script_package, script_pythons, wazuh_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the analyst commands as root")

analyst, wazuh = script_package("analyst", "wazuh")

COMMANDS = [("--status",), ("--check", "64.62.197.132"), ("--drain",)]
ROOTS_OWN = b"root's own file: no line of ours belongs here\n"


@pytest.fixture(scope="session")
def wazuh_account():
    with wazuh_user() as account:
        yield account


@pytest.fixture(params=[python for _, python in script_pythons()], ids=[name for name, _ in script_pythons()])
def manager(vt, wazuh_account, request):
    """A Wazuh home with a manager's owners and modes (docs/wazuh-interfaces.md sections 2 and 6:
    integrations/ and the config root's and readable by the wazuh group; logs/ and var/
    writable by that group, as issue 31 found them), where the wazuh user can reach it, beside
    `root_only`: a directory only root may use. The config names a key the script does not
    know, so that a command has a warning to log."""
    base = Path(tempfile.mkdtemp(prefix="vtip-root-"))
    base.chmod(0o711)
    home = WazuhHome(base / "ossec", vt, python=request.param)
    home.config({"api_url": vt.url, "api_key": API_KEY, "no_such_key": 1})
    gid = wazuh_account.pw_gid
    for path, uid, mode in (("", 0, 0o750), ("integrations", 0, 0o750), ("etc", 0, 0o770),
                            ("etc/custom-virustotal_ip.json", 0, 0o640), ("logs", wazuh_account.pw_uid, 0o770),
                            ("var", 0, 0o770)):
        os.chown(home.root / path, uid, gid)
        (home.root / path).chmod(mode)
    home.root_only = base / "root-only"
    home.root_only.mkdir(mode=0o700)
    yield home
    home.sock.close()
    shutil.rmtree(base)


def refusal(r) -> str:
    """The one line a refused command prints, after checking that it did nothing."""
    assert r.rc == wazuh.EXIT_REFUSED, (r.rc, r.stdout, r.stderr)
    assert (r.stdout, r.messages) == ("", [])
    assert "Traceback" not in r.stderr
    [line] = r.stderr.splitlines()
    return line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_analyst_commands_as_root_do_not_write_through_a_symlinked_log(manager, vt, command):
    target = manager.root_only / "secrets"
    target.write_bytes(ROOTS_OWN)
    target.chmod(0o600)
    manager.log_path.symlink_to(target)
    r = manager.cli(*command, as_root=True)
    assert target.read_bytes() == ROOTS_OWN
    assert refusal(r) == (f"error: {manager.log_path} is a symbolic link: not used, nothing done "
                          "(remove the link: the integration makes its own)")
    assert vt.requests == []


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_analyst_commands_as_root_do_not_follow_a_symlinked_state_directory(manager, vt, command):
    state_dir = manager.root / "var" / "virustotal_ip"
    state_dir.symlink_to(manager.root_only)
    r = manager.cli(*command, as_root=True)
    assert list(manager.root_only.iterdir()) == []          # no cache.db, no lock, no tally
    assert refusal(r).startswith(f"error: {state_dir} is a symbolic link: not used, nothing done")
    assert not manager.log_path.exists()                    # the config's warning was not written either
    assert vt.requests == []


def test_check_as_root_runs_as_the_wazuh_user(manager, wazuh_account):
    # An address never looked up: the command then loads no module after becoming wazuh, as
    # it must here, where the interpreter's own modules are under /root (closed to wazuh).
    r = manager.cli("--check", "10.0.0.1", as_root=True)
    assert r.rc == 0, r.stderr
    assert r.stdout == "10.0.0.1: not a global address; the integration never looks it up\n"
    for path in (manager.db_path.parent, manager.db_path, manager.log_path):   # the log: the config's warning
        assert (path.stat().st_uid, path.stat().st_gid) == (wazuh_account.pw_uid, wazuh_account.pw_gid), path


def test_analyst_command_as_root_refuses_where_there_is_no_wazuh_user(home, tmp_path):
    # This machine as one without the user: its passwd file, less the wazuh line, in a mount
    # namespace of the command's own.
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(line for line in Path("/etc/passwd").read_text().splitlines(True)
                              if not line.startswith("wazuh:")))
    python = str(home.root / "framework" / "python" / "bin" / "python3")
    r = home.run_argv(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                       'mount --bind "$0" /etc/passwd && exec "$@"', str(passwd),
                       python, str(home.root / "integrations" / "custom-virustotal_ip.py"), "--status"])
    assert not (home.root / "var" / "virustotal_ip").exists() and not home.log_path.exists()
    assert refusal(r) == ("error: run as root, this command becomes the wazuh user before it reads or "
                          "writes a file, and this machine has no wazuh user; nothing done")


def test_analyst_command_as_root_that_cannot_become_wazuh_refuses(manager):
    # Root without CAP_SETUID and CAP_SETGID, as in a container that drops them
    python = str(manager.root / "framework" / "python" / "bin" / "python3")
    r = manager.run_argv(["setpriv", "--bounding-set", "-setuid,-setgid", "--", python,
                          str(manager.root / "integrations" / "custom-virustotal_ip.py"), "--status"])
    assert not (manager.root / "var" / "virustotal_ip").exists() and not manager.log_path.exists()
    assert refusal(r) == "error: cannot become the wazuh user (Operation not permitted); nothing done"


@pytest.mark.parametrize("euid,wazuh_uid,expected", [
    (0, 991, (991, 990)),                   # root becomes wazuh
    (991, 991, None),                       # wazuh (cron's --drain) stays as it is
    (1000, None, None),                     # so does anyone else who is not root
    (0, None, "this machine has no wazuh user"),
    (0, 0, "the wazuh user is root (uid 0)"),
])
def test_root_becomes_the_wazuh_user_or_refuses(euid, wazuh_uid, expected):
    account = None if wazuh_uid is None else pwd.struct_passwd(
        ("wazuh", "x", wazuh_uid, 990, "", "/var/ossec", "/sbin/nologin"))
    if isinstance(expected, str):
        with pytest.raises(wazuh.RefusedError, match=re.escape(expected)):
            analyst.ids_to_take(euid, account)
    else:
        assert analyst.ids_to_take(euid, account) == expected


def test_integratord_run_does_not_use_a_symlinked_state_directory(home, vt, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state_dir = home.root / "var" / "virustotal_ip"
    state_dir.symlink_to(elsewhere)
    r = home.run()
    assert list(elsewhere.iterdir()) == []
    assert (r.rc, r.messages, vt.requests) == (wazuh.EXIT_REFUSED, [], [])
    assert (f"ERROR: {state_dir} is a symbolic link: not used, nothing looked up "
            "(remove the link: the integration makes the directory itself)") in r.log


def test_integratord_run_does_not_append_through_a_symlinked_log(home, tmp_path):
    target = tmp_path / "other.log"
    target.write_bytes(ROOTS_OWN)
    home.log_path.symlink_to(target)
    r = home.run(sample_alert("10.0.0.1"))        # not looked up: one line for the log, no more
    assert (r.rc, r.messages) == (0, [])
    assert target.read_bytes() == ROOTS_OWN
