"""The role's own consistency: one documentation source, templates that match files/, config keys
that match the script, an example inventory that matches the defaults."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jinja2
import yaml
from ansible.plugins.test.core import TestModule as AnsibleTests
from harness import REPO, RULES, script_package

ROLE = REPO / "roles" / "virustotal_ip"


class _Vault(yaml.SafeLoader):
    pass


_Vault.add_constructor("!vault", lambda loader, node: "<vaulted>")


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Vault)  # noqa: S506 - SafeLoader subclass


DEFAULTS = load(ROLE / "defaults" / "main.yml")
SPECS = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def render(template: str, **overrides) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), keep_trailing_newline=True,
                             trim_blocks=True)
    env.tests.update(AnsibleTests().tests())           # Ansible's own tests (`version`, ...)
    return env.get_template(template).render({**DEFAULTS, **overrides})


def test_argument_specs_document_exactly_the_defaults():
    assert set(SPECS) == set(DEFAULTS)
    for name, spec in SPECS.items():
        assert spec.get("description"), name
        assert spec["default"] == DEFAULTS[name], name
        assert name.startswith("virustotal_ip_"), name


def test_every_default_has_a_one_line_comment():
    for line in (ROLE / "defaults" / "main.yml").read_text().splitlines():
        if re.match(r"^virustotal_ip_\w+:", line):
            assert "  # " in line, line


def test_rules_template_with_defaults_is_files_rules_xml():
    assert render("virustotal_ip_rules.xml.j2") == RULES.read_text()


def test_rules_template_moves_ids_and_levels():
    xml = render("virustotal_ip_rules.xml.j2", virustotal_ip_rules_id_base=110000,
                 virustotal_ip_rules_level_malicious=15)
    assert '<rule id="110001" level="15">' in xml and "<if_sid>110000</if_sid>" in xml
    assert "<if_sid>87100</if_sid>" in xml and "199900" not in xml


def test_config_covers_every_key_of_the_scripts_configuration():
    role_vars = load(ROLE / "vars" / "main.yml")
    assert set(role_vars["_virustotal_ip_config"]) == set(script_package("settings")[0].defaults())


def test_integration_block_keeps_the_key_out_unless_asked():
    block = render("ossec_integration.xml.j2", virustotal_ip_api_key="s3cret")
    assert "<group>sshd</group>" in block and "<alert_format>json</alert_format>" in block
    assert "s3cret" not in block and "<level>" not in block and "<rule_id>" not in block
    block = render("ossec_integration.xml.j2", virustotal_ip_api_key="s3cret", virustotal_ip_api_key_in_ossec_conf=True,
                   virustotal_ip_trigger_rule_ids=[5715, 5716], virustotal_ip_trigger_level=5)
    assert "<api_key>s3cret</api_key>" in block and "<rule_id>5715,5716</rule_id>" in block
    assert "<level>5</level>" in block


def test_timeout_and_retries_are_left_out_before_wazuh_4_8_where_integratord_refuses_them():
    """Wazuh 4.7.5's own integratord -t: "(1230): Invalid element in the configuration: 'timeout'"."""
    old = render("ossec_integration.xml.j2", _virustotal_ip_manager_version="4.7.5")
    assert "<timeout>" not in old and "<retries>" not in old and "<alert_format>json</alert_format>" in old
    new = render("ossec_integration.xml.j2", _virustotal_ip_manager_version="4.14.7")
    assert "<timeout>10</timeout>" in new and "<retries>3</retries>" in new


def test_example_inventory_sets_only_role_variables_and_vaults_the_key():
    """inventory.example holds what a user must decide, not a copy of the defaults (a copy would
    freeze today's defaults); each name it sets must be one the role takes."""
    example = load(REPO / "inventory.example" / "group_vars" / "wazuh_managers.yml")
    assert example.pop("virustotal_ip_api_key") == "<vaulted>"
    assert set(example) <= set(SPECS), set(example) - set(SPECS)
    assert len(example) < len(SPECS) // 4


def test_readme_documents_every_role_variable():
    readme = (REPO / "docs" / "configuration.md").read_text()       # the README links to it
    for name, spec in SPECS.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"{name} missing from the role variable table in docs/configuration.md"
        assert json.dumps(spec["default"]) in row or str(spec["default"]) in row, row


def test_readme_is_a_page_whose_links_and_paths_exist():
    """The README stays a five-minute read; what it points to is there."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200 and len(readme.split()) <= 650     # a page: about 500 words
    for link in re.findall(r"\]\(([^)#]+)", readme):
        assert (REPO / link).exists(), link
    for path in re.findall(r"`((?:files|roles|tests|demo|templates|docs|playbooks|molecule|bench)/[^` ]*)`", readme):
        assert (REPO / path.rstrip("/")).exists() or (REPO / "files/virustotal_ip" / path).exists(), path


# Where the supported Wazuh range is stated in words: the documents a user reads, the code that
# says which argv it parses, the variable that overrides the guard.
RANGE_STATED_IN = ["README.md", "roles/virustotal_ip/README.md", "roles/virustotal_ip/meta/argument_specs.yml",
                   "roles/virustotal_ip/defaults/main.yml", "docs/deploying.md", "docs/wazuh-interfaces.md",
                   "docs/wazuh-5.md", "files/virustotal_ip/wazuh.py"]


def version(text: str) -> tuple:
    return tuple(int(part) for part in text.split("."))


def test_the_supported_wazuh_range_is_the_one_the_guard_enforces_everywhere():
    """vars/main.yml's range is what tasks/probe.yml asserts; every document states that range
    (4.3 to 4.14), and none a range past it ("4.3 to 4.x"); a part of it (4.3 to 4.7) may be."""
    supported = load(ROLE / "vars" / "main.yml")["_virustotal_ip_supported"]
    first, below = version(supported["min"]), version(supported["below"])
    assert below[2] == 0 and below[1] > 0, supported
    stated = f"{first[0]}.{first[1]} to {below[0]}.{below[1] - 1}"
    assert version(supported["wazuh5"]) == (5, 0, 0)
    for name in RANGE_STATED_IN:
        text = " ".join((REPO / name).read_text().split())
        ranges = re.findall(r"\b(\d+\.\d+) ?(?:to|–|-) ?(\d+\.(?:\d+|x))\b", text)
        assert ranges, f"{name} does not state the supported range"
        newest = (below[0], below[1] - 1)
        wrong = [f"{a} to {b}" for a, b in ranges if a.startswith("4.") and (b.endswith(".x") or version(b) > newest)]
        assert not wrong, f"{name} states {wrong}, the guard enforces {stated}"
        assert stated in text.replace("–", " to ").replace("4.3-4.14", "4.3 to 4.14"), f"{name} lacks {stated}"


def test_galaxy_yml_names_the_newest_version_the_code_and_the_changelog_name():
    """galaxy.yml's version is the release being built: no plugin is added in a later one, the
    changelog has released nothing later, and either it is released or fragments wait for it;
    the README's install command names its tarball."""
    galaxy = load(REPO / "galaxy.yml")
    ours = version(galaxy["version"])
    added = [version(v) for path in sorted((REPO / "plugins").rglob("*.py"))
             for v in re.findall(r"^version_added: ['\"]?([\d.]+)", path.read_text(), re.MULTILINE)]
    assert added and max(added) <= ours, (added, ours)
    released = [version(v) for v in load(REPO / "changelogs" / "changelog.yaml")["releases"]]
    assert max(released) <= ours, (released, ours)
    assert ours in released or list((REPO / "changelogs" / "fragments").glob("*.yml")), ours
    tarball = f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    assert tarball in (REPO / "README.md").read_text(), tarball


# The documents a reader follows links through, and the files that cite sections by name.
DOCUMENTS = ["README.md", "roles/virustotal_ip/README.md",
             *(f"docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md")))]
SKIP = {".git", "build", ".collections", ".ruff_cache", ".pytest_cache", "__pycache__", ".cache"}


def citing_files() -> list:
    """The repository's own .py, .yml, .md and .j2 files (no venvs, builds or caches; not this
    file, whose docstrings show the patterns)."""
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith(".venv")]
        found += [Path(root) / f for f in files if f.endswith((".py", ".yml", ".md", ".j2"))]
    return [p for p in found if p != Path(__file__).resolve() and "changelog" not in p.name.lower()]


def anchors(markdown: str) -> set:
    """GitHub's heading anchors of a document (fenced code skipped), and its explicit <a id>s."""
    found, seen, fenced = set(re.findall(r'<a id="([^"]+)"', markdown)), {}, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def headings(markdown: str) -> set:
    return {line.lstrip("#").strip() for line in markdown.splitlines() if re.match(r"#{1,6} ", line)}


def test_section_links_and_citations_resolve():
    """Every `[..](file#section)` in the documents lands on a heading; every `README "Section"`
    and `docs/<page>.md, "Section"` cited by code, tests or docs names a heading of that page,
    and every `docs/<page>.md section N` a numbered one."""
    broken = []
    for name in DOCUMENTS:
        text = (REPO / name).read_text()
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", text):
            if "://" in target:
                continue
            page = (REPO / name).parent / target if target else REPO / name
            if not page.exists() or anchor not in anchors(page.read_text()):
                broken.append(f"{name}: {target}#{anchor}")
    for path in citing_files():
        text = " ".join(path.read_text(errors="replace").split())
        for section in re.findall(r'README \(?"([^"]+)"', text):
            if section not in headings((REPO / "README.md").read_text()):
                broken.append(f"{path.relative_to(REPO)}: README {section!r}")
        for page, section in re.findall(r'(docs/[\w-]+\.md),? "([^"]+)"', text):
            if not (REPO / page).exists() or section not in headings((REPO / page).read_text()):
                broken.append(f"{path.relative_to(REPO)}: {page} {section!r}")
        for page, number in re.findall(r"(docs/[\w-]+\.md),? sections? (\d+)", text):
            numbered = headings((REPO / page).read_text()) if (REPO / page).exists() else set()
            if not any(h.startswith(f"{number}. ") for h in numbered):
                broken.append(f"{path.relative_to(REPO)}: {page} section {number}")
    assert not broken, broken
