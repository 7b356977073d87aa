"""The module install_files (plugins/modules/install_files.py, with its action plugin), run by
`ansible` on this machine as the role runs it on a manager: every file in one module run, with
copy's guarantees, and the results the rollback reads (created, backup_file)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import REPO

BIN = Path(sys.executable).parent


def install(tmp_path: Path, files: list, *flags: str) -> dict:
    """`ansible localhost -m install_files` with `files` ({src, dest, mode}), root:root, backups on;
    the module's result."""
    args = {"files": files, "owner": "root", "group": "root", "backup": True}
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOCALHOST_WARNING="0")
    r = subprocess.run([str(BIN / "ansible"), "localhost", "-c", "local", "-m",
                        "wazuh_virustotal_ip.virustotal_ip.install_files", "-a", json.dumps(args), *flags],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)
    return json.loads(r.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def sources(tmp_path: Path) -> list:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "tool").write_text("#!/bin/sh\necho new\n")
    (src / "lib.py").write_text("VALUE = 1\n")
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    return [{"src": str(src / "tool"), "dest": str(dest / "tool"), "mode": "0750"},
            {"src": str(src / "lib.py"), "dest": str(dest / "lib.py"), "mode": "0640"}]


def mode(path: str) -> str:
    return oct(os.stat(path).st_mode & 0o7777)[2:].zfill(4)


def test_a_first_install_writes_every_file_with_its_mode_and_says_each_was_created(tmp_path):
    files = sources(tmp_path)
    result = install(tmp_path, files)
    assert result["changed"]
    assert [(r["dest"], r["changed"], r["created"], "backup_file" in r, "previous" in r)
            for r in result["results"]] == [(f["dest"], True, True, False, False) for f in files]
    assert [mode(f["dest"]) for f in files] == ["0750", "0640"]
    assert Path(files[0]["dest"]).read_text() == "#!/bin/sh\necho new\n"


def test_a_rerun_with_the_same_files_changes_nothing(tmp_path):
    files = sources(tmp_path)
    install(tmp_path, files)
    result = install(tmp_path, files)
    assert not result["changed"] and not any(r["changed"] for r in result["results"])


def test_other_content_is_replaced_and_kept_as_a_backup(tmp_path):
    files = sources(tmp_path)
    install(tmp_path, files)
    Path(files[1]["dest"]).write_text("VALUE = 0  # an older release\n")
    result = install(tmp_path, files)
    old, new = result["results"]
    assert not old["changed"] and new["changed"] and not new["created"]
    assert new["previous"] == {"owner": "root", "group": "root", "mode": "0640"}
    assert Path(new["backup_file"]).read_text() == "VALUE = 0  # an older release\n"
    assert Path(files[1]["dest"]).read_text() == "VALUE = 1\n" and mode(files[1]["dest"]) == "0640"


def test_a_wrong_mode_alone_is_set_without_a_backup_and_not_counted_as_created(tmp_path):
    """The rollback removes what a run created: a file whose mode alone was wrong is not one."""
    files = sources(tmp_path)
    install(tmp_path, files)
    os.chmod(files[0]["dest"], 0o777)
    result = install(tmp_path, files)["results"][0]
    assert result["changed"] and not result["created"] and "backup_file" not in result
    assert result["previous"] == {"owner": "root", "group": "root", "mode": "0777"}     # for the rollback
    assert mode(files[0]["dest"]) == "0750"


def test_check_mode_writes_nothing_and_diff_shows_each_change(tmp_path):
    files = sources(tmp_path)
    install(tmp_path, files)
    Path(files[1]["dest"]).write_text("VALUE = 0\n")
    os.chmod(files[0]["dest"], 0o777)
    result = install(tmp_path, files, "--check", "--diff")
    assert [r["changed"] for r in result["results"]] == [True, True]
    assert Path(files[1]["dest"]).read_text() == "VALUE = 0\n" and mode(files[0]["dest"]) == "0777"
    assert result["diff"] == [{"before_header": files[1]["dest"], "after_header": files[1]["dest"],
                               "before": "VALUE = 0\n", "after": "VALUE = 1\n"}]
    assert not list(Path(files[1]["dest"]).parent.glob("*~"))          # no backup either


def test_check_mode_on_a_missing_directory_reports_the_files_it_would_create(tmp_path):
    files = [dict(f, dest=str(tmp_path / "absent" / Path(f["dest"]).name)) for f in sources(tmp_path)]
    result = install(tmp_path, files, "--check")
    assert result["changed"] and all(r["created"] for r in result["results"])
    assert not (tmp_path / "absent").exists()


def test_a_missing_source_fails_naming_it_and_installs_nothing(tmp_path):
    files = sources(tmp_path)
    files[0]["src"] = str(tmp_path / "src" / "missing")
    result = install(tmp_path, files)
    assert result.get("failed") and "missing" in result["msg"]
    assert not Path(files[1]["dest"]).exists()


def test_a_file_that_cannot_be_written_fails_naming_it_and_reports_the_files_before_it(tmp_path):
    """The rollback restores from the results: those installed before the failure are in them."""
    files = sources(tmp_path)
    files[1]["dest"] = str(tmp_path / "no-such-directory" / "lib.py")
    result = install(tmp_path, files)
    assert result.get("failed") and "no-such-directory/lib.py" in result["msg"], result
    assert [(r["dest"], r["created"]) for r in result["results"]] == [(files[0]["dest"], True)]
    assert Path(files[0]["dest"]).exists()


def test_rendered_content_is_installed_with_each_files_own_owner_and_mode_and_says_what_it_did(tmp_path):
    files = sources(tmp_path)
    rendered = {"content": "rendered = true\n", "dest": str(tmp_path / "dest" / "conf"), "mode": "0600",
                "owner": "root", "group": "root"}
    first = install(tmp_path, [*files, rendered])["results"]
    assert [r["action"] for r in first] == ["created", "created", "created"]
    assert Path(rendered["dest"]).read_text() == "rendered = true\n" and mode(rendered["dest"]) == "0600"
    again = install(tmp_path, [*files, dict(rendered, content="rendered = false\n")])["results"]
    assert [r["action"] for r in again] == ["unchanged", "unchanged", "replaced"]


def restore(tmp_path: Path, results: list, *flags: str) -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOCALHOST_WARNING="0")
    r = subprocess.run([str(BIN / "ansible"), "localhost", "-c", "local", "-m",
                        "wazuh_virustotal_ip.virustotal_ip.install_files", "-a", json.dumps({"restore": results}),
                        *flags], capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)
    return json.loads(r.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_restore_puts_back_what_a_run_replaced_or_reset_and_removes_what_it_created(tmp_path):
    """The role's rollback: content, times, owner and mode as they were, no backup left, a new file gone."""
    files = sources(tmp_path)
    install(tmp_path, files)
    Path(files[1]["dest"]).write_text("VALUE = 0  # an older release\n")
    os.chmod(files[0]["dest"], 0o700)
    mtime = os.stat(files[1]["dest"]).st_mtime_ns
    new = {"content": "new\n", "dest": str(tmp_path / "dest" / "new"), "mode": "0640"}
    results = install(tmp_path, [*files, new])["results"]
    assert [r["action"] for r in results] == ["modified", "replaced", "created"]
    assert restore(tmp_path, results, "--check")["changed"]                       # check mode: nothing done
    assert Path(new["dest"]).exists() and mode(files[0]["dest"]) == "0750"
    undone = restore(tmp_path, results)
    assert [r["action"] for r in undone["results"]] == ["removed", "restored", "reset"]
    assert not Path(new["dest"]).exists() and mode(files[0]["dest"]) == "0700"
    assert Path(files[1]["dest"]).read_text() == "VALUE = 0  # an older release\n"
    assert os.stat(files[1]["dest"]).st_mtime_ns == mtime and mode(files[1]["dest"]) == "0640"
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["lib.py", "tool"]      # no backup left
    assert not restore(tmp_path, results)["changed"]                              # twice: nothing more
