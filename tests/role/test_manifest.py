"""The manifest of deployed code (`_virustotal_ip_code` in the role's vars/main.yml) is the one
list the install (the module install_files), the restore and the removal read: it must name every file the
integration is made of, each with the mode its kind needs."""
from __future__ import annotations

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
    """The install hands the module the manifest itself, and the restore puts back the mode
    each file had, as the module reports it: no second rule."""
    install = (ROLE / "tasks" / "install.yml").read_text()
    restore = (ROLE / "tasks" / "rollback.yml").read_text()
    assert "regex_replace" not in (ROLE / "vars" / "main.yml").read_text()
    assert 'files: "{{ _virustotal_ip_code }}"' in install
    assert restore.count('mode: "{{ item.previous.mode }}"') == 2        # replaced, and mode-only changes
    assert "is match('virustotal_ip/')" not in install + restore
