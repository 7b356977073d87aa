"""One settings table (SCHEMA in files/virustotal_ip/settings.py): every copy is derived from it."""
from __future__ import annotations

import generate_settings as gen
import pytest
import yaml
from harness import REPO, script_package

(settings,) = script_package("settings")
ROLE = REPO / "roles" / "virustotal_ip"


class Log:
    def __init__(self) -> None:
        self.lines = []

    def warning(self, msg: str) -> None:
        self.lines.append(msg)


@pytest.mark.parametrize("path", [*gen.TARGETS, *gen.WHOLE], ids=lambda p: str(p.relative_to(REPO)))
def test_every_generated_copy_of_the_settings_table_is_current(path):
    """`make settings` wrote it from SCHEMA, and nobody edited it since."""
    made = gen.regenerated(path) if path in gen.TARGETS else gen.WHOLE[path]()
    assert path.read_text() == made, f"{path.relative_to(REPO)} is stale: run `make settings`"


def test_role_defaults_specs_and_ranges_are_the_tables():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    ranges = {r["name"]: (r["min"], r["max"]) for r in yaml.safe_load((ROLE / "vars" / "main.yml").read_text())[
        "_virustotal_ip_ranges"]}
    for s in gen.role_settings():
        name = gen.PREFIX + s.key
        assert defaults[name] == s.default == specs[name]["default"], name
        assert specs[name]["type"] == gen.SPEC_TYPES[s.kind], name
        assert ranges.get(name) == ((s.low, s.high) if s.low is not None else None), name


@pytest.mark.parametrize("setting", [s for s in settings.SCHEMA if s.low is not None], ids=lambda s: s.key)
def test_the_script_takes_exactly_the_range_the_role_checks(setting):
    for value, taken in ((setting.low, True), (setting.high, True), (setting.low - 1, False),
                         (setting.high + 1, False)):
        values, log = settings.defaults(), Log()
        value = float(value) if setting.kind == "number" else value
        settings.merge(values, {setting.key: value}, "test", log)
        assert (values[setting.key] == value) is taken and (log.lines == []) is taken, (value, log.lines)
    assert log.lines == [f"config test: {setting.key} must be {settings.expected(setting)}; ignored"]


def test_adding_a_setting_is_one_row():
    """A row added to SCHEMA reaches every derived copy with its default, range and doc."""
    row = settings.Setting("example_limit", "int", 7, "An example.", 1, 9)
    original = settings.SCHEMA
    settings.SCHEMA = (*original, row)
    try:
        role_vars = gen.regenerated(ROLE / "vars" / "main.yml")
        assert "virustotal_ip_example_limit: 7" in gen.regenerated(ROLE / "defaults" / "main.yml")
        assert "virustotal_ip_example_limit:\n        type: int" in gen.regenerated(ROLE / "meta/argument_specs.yml")
        assert '{name: virustotal_ip_example_limit, value: "{{ virustotal_ip_example_limit }}", min: 1, max: 9}' \
            in role_vars
        assert '  example_limit: "{{ virustotal_ip_example_limit | int }}"' in role_vars
        docs = gen.regenerated(REPO / "docs/configuration.md")
        assert "| `example_limit` | integer | `7` | 1-9 | An example. |" in docs
        assert '"example_limit": 7' in gen.config_example()
        assert settings.defaults()["example_limit"] == 7
    finally:
        settings.SCHEMA = original
