"""The role's own consistency: one documentation source, templates that match files/, config keys
that match the script, an example inventory that matches the defaults."""
from __future__ import annotations

import json
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
    assert len(readme.splitlines()) <= 200
    for link in re.findall(r"\]\(([^)#]+)", readme):
        assert (REPO / link).exists(), link
    for path in re.findall(r"`((?:files|roles|tests|demo|templates|docs|playbooks|molecule|bench)/[^` ]*)`", readme):
        assert (REPO / path.rstrip("/")).exists() or (REPO / "files/virustotal_ip" / path).exists(), path
