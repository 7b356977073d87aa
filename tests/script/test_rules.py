"""files/virustotal_ip_rules.xml against docs/wazuh-interfaces.md section 4 and docs/events-and-rules.md's table.

Every mistake section 4 lists as fatal for analysisd (the manager would not start) is checked,
and so is the shape that keeps the rules reachable (under 87100, anchored, parent first).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from harness import RULES

STATIC_FIELDS = {"srcip", "dstip", "srcport", "dstport", "protocol", "action", "srcuser", "dstuser",
                 "user", "id", "status", "url", "data", "extra_data", "systemname"}
# Elements and attributes a rule file may hold (analysisd refuses unknown ones).
RULE_ELEMENTS = {"if_sid", "field", "description", "options", "group", "mitre", "id", "decoded_as",
                 "match", "regex", "if_group", "if_matched_sid", "same_source_ip", "list", "info", "location"}
RULE_ATTRIBUTES = {"id", "level", "frequency", "timeframe", "ignore", "overwrite", "noalert", "maxsize"}
FIELD_ATTRIBUTES = {"name", "type", "negate"}
OPTION_VALUES = {"alert_by_email", "no_email_alert", "no_log", "no_full_log", "no_counter"}
TABLE = {  # docs/events-and-rules.md, "The rules"
    "199900": (3, "87100", "integration", "^virustotal_ip$"),
    "199901": (12, "199900", "virustotal_ip.verdict", "^malicious$"),
    "199902": (7, "199900", "virustotal_ip.verdict", "^suspicious$"),
    "199903": (3, "199900", "virustotal_ip.verdict", "^unknown$"),
    "199904": (5, "199900", "virustotal_ip.error", "^null$"),
}


@pytest.fixture(scope="module")
def group():
    return ET.fromstring(RULES.read_text())


@pytest.fixture(scope="module")
def rules(group):
    return group.findall("rule")


def test_rules_file_is_one_well_formed_group_in_our_groups_only(group):
    assert group.tag == "group"
    assert group.get("name") == "local,virustotal,vt_ip,"
    assert [child.tag for child in group] == ["rule"] * 5


def test_ids_levels_parents_and_fields_are_integration_md_s_table(rules):
    seen = {}
    for rule in rules:
        field = rule.find("field")
        seen[rule.get("id")] = (int(rule.get("level")), rule.findtext("if_sid"), field.get("name"), field.text)
    assert seen == TABLE


def test_seed_descriptions_are_kept(rules):
    by_id = {r.get("id"): r.findtext("description") for r in rules}
    assert by_id["199901"] == "Source IP flagged malicious by VirusTotal"
    assert by_id["199902"] == "Source IP suspicious per VirusTotal"
    assert by_id["199903"] == "Source IP unknown per VirusTotal"
    assert "$(virustotal_ip.description)" in by_id["199904"]


def test_no_fatal_mistakes(rules):
    for rule in rules:
        rid = rule.get("id")
        assert re.fullmatch(r"\d{1,6}", rid), rid
        assert 0 <= int(rule.get("level")) <= 16, rid
        assert set(rule.attrib) <= RULE_ATTRIBUTES, rid
        for child in rule:
            assert child.tag in RULE_ELEMENTS, (rid, child.tag)
        for options in rule.findall("options"):
            assert options.text.strip() in OPTION_VALUES, (rid, options.text)   # one value each
        for field in rule.findall("field"):
            assert set(field.attrib) <= FIELD_ATTRIBUTES, rid
            assert field.get("name").lower() not in STATIC_FIELDS, rid
            assert field.get("type", "osregex") in {"osregex", "osmatch", "pcre2"}, rid
        assert rule.findtext("description"), rid


def test_every_field_pattern_is_anchored(rules):
    for rule in rules:
        for field in rule.findall("field"):
            for alternative in field.text.split("|"):
                assert alternative.startswith("^") and alternative.endswith("$"), (rule.get("id"), field.text)


def test_base_rule_hangs_under_87100_and_children_follow_their_parent(rules):
    ids = [r.get("id") for r in rules]
    assert rules[0].findtext("if_sid") == "87100"
    for position, rule in enumerate(rules[1:], 1):
        assert rule.findtext("if_sid") in ids[:position]


def test_error_rule_matches_only_a_present_non_null_error(rules):
    [error_rule] = [r for r in rules if r.get("id") == "199904"]
    field = error_rule.find("field")
    # a missing field fails before negate (docs/wazuh-interfaces.md section 4), so negate="yes" ^null$
    # means "present, not null"
    assert (field.get("negate"), field.text) == ("yes", "^null$")


def test_rule_groups_never_include_a_trigger_group():
    """The loop hazard (docs/wazuh-interfaces.md section 1): the original design triggers on <group>sshd</group>."""
    names = ET.fromstring(RULES.read_text()).get("name").strip(",").split(",")
    assert "sshd" not in names and "authentication_success" not in names


def test_only_the_base_rule_tests_the_location_and_it_is_ours_alone(rules):
    """A log line's location is its file's path (on an agent, after `(<name>) <ip>->`): only
    what our script sends may raise our rules (security.md, "Who can make a verdict"). The
    children inherit the test through if_sid."""
    base, *children = rules
    location = base.find("location")
    assert (location.get("type"), location.text) == ("pcre2", r"^virustotal_ip$|^\([^()]*\) [^ >]+->virustotal_ip$")
    assert [c.find("location") for c in children] == [None] * len(children)
    pattern = re.compile(location.text)          # PCRE2 and Python agree on this pattern's syntax
    ours = ["virustotal_ip", "(web01) any->virustotal_ip", "(db:02) 10.0.0.7->virustotal_ip",
            "(web01) 2001:db8::7->virustotal_ip"]
    forged = ["/var/log/auth.log", "(web01) 10.0.0.7->/var/log/auth.log", "(web01) 10.0.0.7->/x->virustotal_ip",
              "(web01) 10.0.0.7->virustotal_ip ", "virustotal_ip.log", "VirusTotal_IP", "/tmp/virustotal_ip",
              "(web01) 10.0.0.7->/var/log/virustotal_ip", "(a) (b) c->virustotal_ip"]
    assert [loc for loc in ours if not pattern.search(loc)] == []
    assert [loc for loc in forged if pattern.search(loc)] == []
