"""The filter plugin wazuh_virustotal_ip.virustotal_ip.ossec_conf (plugins/filter/ossec_conf.py):
ossec.conf read as Wazuh's framework reads it, on the ossec.conf Wazuh's installer writes
(gen_ossec.sh's, from the image built from Wazuh's source), with the role's block, with
entries as wazuh-ansible's template renders them, and with what Wazuh tolerates or refuses."""
from __future__ import annotations

import importlib.util
import subprocess

import pytest
from harness import REPO
from manager_harness import OSSEC, manager_image

_spec = importlib.util.spec_from_file_location("ossec_conf_plugin", REPO / "plugins" / "filter" / "ossec_conf.py")
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)

MARKER = "<!-- {mark} custom-virustotal_ip (managed by the Ansible role virustotal_ip) -->"
BEGIN, END = MARKER.replace("{mark}", "BEGIN"), MARKER.replace("{mark}", "END")
ROLE_BLOCK = f"""{BEGIN}
<ossec_config>
  <integration>
    <name>custom-virustotal_ip</name>
    <group>sshd</group>
    <alert_format>json</alert_format>
  </integration>
</ossec_config>
{END}
"""


def facts(text: str) -> dict:
    return plugin.ossec_conf(text, MARKER)


@pytest.fixture(scope="module")
def installers_conf() -> str:
    """ossec.conf as Wazuh's installer wrote it into the image (gen_ossec.sh conf manager debian 12
    plus add_localfiles.sh: two <ossec_config> blocks, comments included)."""
    image = manager_image("wazuh-src", "the ossec.conf Wazuh's installer writes")
    return subprocess.run(["docker", "run", "--rm", "--entrypoint", "cat", image, f"{OSSEC}/etc/ossec.conf"],
                          capture_output=True, text=True, check=True).stdout


def test_the_installers_conf_has_no_integration_the_three_ar_commands_and_a_disabled_cluster(installers_conf):
    got = facts(installers_conf)
    assert got["error"] == "" and installers_conf.count("<ossec_config>") == 2 and "<!--" in installers_conf
    assert got["integrations"] == [] and got["block"] == {"begin": 0, "end": 0}
    assert {"firewall-drop", "host-deny", "route-null"} <= set(got["commands"])
    assert got["cluster"] == {"node_type": "master", "disabled": True}


def test_the_roles_block_is_found_with_its_lines_and_its_integration_is_ours(installers_conf):
    text = installers_conf + ROLE_BLOCK
    first = installers_conf.count("\n") + 1
    got = facts(text)
    assert got["block"] == {"begin": first, "end": first + 8}
    assert got["integrations"] == [{"name": "custom-virustotal_ip", "line": first + 3, "alert_format": "json",
                                    "api_key": False, "ours": True}]


def test_an_entry_as_wazuh_ansible_renders_it_is_another_tools_with_its_line_and_key():
    text = ("<ossec_config>\n  <global>\n    <jsonout_output>yes</jsonout_output>\n  </global>\n"
            "  <integration>\n    <name>custom-virustotal_ip</name>\n    <api_key>k3y</api_key>\n"
            "    <rule_id>5710,5712</rule_id>\n    <alert_format>json</alert_format>\n  </integration>\n"
            "</ossec_config>\n")
    (entry,) = facts(text)["integrations"]
    assert entry == {"name": "custom-virustotal_ip", "line": 6, "alert_format": "json", "api_key": True,
                     "ours": False}


def test_comments_are_not_configuration_even_with_double_dashes_inside():
    text = ("<ossec_config>\n<!-- an old one -- kept for reference:\n  <integration>\n"
            "    <name>custom-virustotal_ip</name>\n  </integration>\n-->\n"
            "  <integration>\n    <name>custom-other</name>\n  </integration>\n</ossec_config>\n")
    assert [(e["name"], e["line"]) for e in facts(text)["integrations"]] == [("custom-other", 8)]


def test_cdata_is_refused_as_wazuhs_framework_refuses_it():
    """Wazuh's framework escapes a '<' that starts no tag or comment, so CDATA's ']]>' is left in
    text, which no XML parser takes (and Wazuh's C parser takes '<!' for a comment)."""
    text = "<ossec_config><integration><name><![CDATA[custom-virustotal_ip]]></name></integration></ossec_config>"
    got = facts(text)
    assert got["error"].startswith("ossec.conf is not XML Wazuh can read") and got["integrations"] == []


def test_every_ossec_config_block_counts():
    text = ("<ossec_config>\n  <integration><name>a</name></integration>\n</ossec_config>\n"
            "<ossec_config>\n  <integration>\n    <name>c</name>\n  </integration>\n</ossec_config>\n")
    assert [(e["name"], e["line"]) for e in facts(text)["integrations"]] == [("a", 2), ("c", 6)]


@pytest.mark.parametrize("root", ["integration", "agent_config"])
def test_another_root_element_is_refused_as_the_managers_config_reader_refuses_it(root):
    text = (f"<ossec_config>\n  <global/>\n</ossec_config>\n<{root}>\n  <name>custom-virustotal_ip</name>\n"
            f"</{root}>\n")
    got = facts(text)
    assert got["error"] == (f"ossec.conf has a <{root}> outside any <ossec_config> at line 4: Wazuh refuses it "
                            f"(Invalid element in the configuration: '{root}')")
    assert got["integrations"] == []


def test_what_wazuh_tolerates_parses_stray_ampersands_and_angle_brackets_and_a_declaration():
    text = ('<?xml version="1.0"?>\n<ossec_config>\n  <syscheck><ignore type="sregex">a < b & c</ignore></syscheck>\n'
            "  <command>\n    <name>my-block</name>\n  </command>\n</ossec_config>\n")
    got = facts(text)
    assert got["error"] == "" and got["commands"] == ["my-block"]


def test_a_worker_node_and_a_cluster_with_no_node_type_default_to_what_wazuh_assumes():
    worker = "<ossec_config><cluster><node_type> worker </node_type><disabled>no</disabled></cluster></ossec_config>"
    assert facts(worker)["cluster"] == {"node_type": "worker", "disabled": False}
    bare = "<ossec_config><cluster><name>c</name></cluster></ossec_config>"
    assert facts(bare)["cluster"] == {"node_type": "master", "disabled": False}


def test_a_broken_conf_is_an_error_naming_the_line_and_no_facts():
    got = facts("<ossec_config>\n  <integration>\n    <name>x</name>\n</ossec_config>\n")
    assert got["error"].startswith("ossec.conf is not XML Wazuh can read: mismatched tag at line 4")
    assert got["integrations"] == [] and got["commands"] == [] and got["cluster"] is None


def test_a_begin_marker_without_its_end_is_no_block():
    got = facts(f"{BEGIN}\n<ossec_config><integration><name>custom-virustotal_ip</name></integration></ossec_config>\n")
    assert got["block"] == {"begin": 0, "end": 0} and got["integrations"][0]["ours"] is False


_block_spec = importlib.util.spec_from_file_location("ossec_conf_block_plugin",
                                                     REPO / "plugins" / "filter" / "ossec_conf_block.py")
block_plugin = importlib.util.module_from_spec(_block_spec)
_block_spec.loader.exec_module(block_plugin)


@pytest.mark.parametrize("before,after", [
    ("<ossec_config/>\n", "<ossec_config/>\n{begin}\n<a/>\n{end}\n"),                     # appended
    ("<ossec_config/>", "<ossec_config/>\n{begin}\n<a/>\n{end}\n"),                       # after a newline
    ("x\n{begin}\n<old/>\n{end}\ny\n", "x\n{begin}\n<a/>\n{end}\ny\n"),                   # replaced in place
], ids=["appended", "no-final-newline", "replaced"])
def test_the_block_goes_in_as_blockinfile_puts_it(before, after):
    marks = {"begin": MARKER.replace("{mark}", "BEGIN"), "end": MARKER.replace("{mark}", "END")}
    assert block_plugin.ossec_conf_block(before.format(**marks), MARKER, "<a/>\n") == after.format(**marks)
