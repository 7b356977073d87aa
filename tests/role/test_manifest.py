"""The manifest of deployed code (`_virustotal_ip_code` in the role's vars/main.yml) is the one
list the install (the module install_files), the restore and the removal read: it must name every file the
integration is made of, each with the mode its kind needs."""
from __future__ import annotations

import re

import yaml
from harness import FILES, REPO

ROLE = REPO / "roles" / "virustotal_ip"
MANIFEST = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_virustotal_ip_code"]
FILES_DIR = "{{ virustotal_ip_files_dir }}/"


def shipped() -> set:
    """The integration's files in files/: the wrapper, the entry point and the package's modules."""
    return {"custom-virustotal_ip", "custom-virustotal_ip.py",
            *(f"virustotal_ip/{p.name}" for p in (FILES / "virustotal_ip").glob("*.py"))}


def test_the_manifest_lists_every_file_of_the_integration_once():
    sources = [entry["src"].removeprefix(FILES_DIR) for entry in MANIFEST]
    assert all(entry["src"].startswith(FILES_DIR) for entry in MANIFEST)
    assert sorted(sources) == sorted(shipped()), "a file of files/ is missing from the manifest, or one is extra"


def test_each_file_goes_to_integrations_under_its_own_name():
    for entry in MANIFEST:
        name = entry["src"].removeprefix(FILES_DIR)
        if "/" in name:
            assert entry["dest"] == "{{ _virustotal_ip_paths.package }}/" + name.split("/", 1)[1], entry
        else:
            key = "wrapper" if name == "custom-virustotal_ip" else "script"
            assert entry["dest"] == "{{ _virustotal_ip_paths." + key + " }}", entry


def test_executables_are_0750_and_modules_0640_never_writable_by_the_group():
    for entry in MANIFEST:
        want = "0640" if "/virustotal_ip/" in entry["src"] else "0750"
        assert entry["mode"] == want, entry


def test_no_task_writes_a_mode_of_the_code_but_the_manifest():
    """The install hands the module the manifest itself, and the restore puts back the owner and
    mode each file had, as the module reports them: no second rule."""
    install = (ROLE / "tasks" / "install.yml").read_text()
    restore = (ROLE / "tasks" / "rollback.yml").read_text()
    assert "regex_replace" not in (ROLE / "vars" / "main.yml").read_text()
    assert 'files: "{{ _virustotal_ip_code }}"' in install
    assert "restore: \"{{ _virustotal_ip_written }}\"" in restore
    assert not re.search(r"^ +(mode|owner|group): ", restore, re.MULTILINE)
    assert "is match('virustotal_ip/')" not in install + restore


def test_the_rendered_files_owner_and_mode_are_stated_once_in_the_manifest():
    """Configuration, ossec.conf, rules and schedule: each task takes its file's entry of
    `_virustotal_ip_files`; none states an owner or a mode of its own."""
    files = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_virustotal_ip_files"]
    assert set(files) == {"config", "ossec_conf", "rules", "cron", "service", "timer"}
    assert all({"dest", "owner", "group", "mode"} == set(entry) for entry in files.values()), files
    for phase in ("configure", "rules", "schedule"):
        text = (ROLE / "tasks" / f"{phase}.yml").read_text()
        assert not re.search(r"^ +(mode|owner|group): ", text, re.MULTILINE), phase
    for name in files:
        assert f"_virustotal_ip_files.{name}" in "".join((ROLE / "tasks" / f).read_text()
                                                         for f in ("configure.yml", "rules.yml", "schedule.yml"))
