"""`make settings`: write every derived copy of the settings table from its one source.

The source is SCHEMA in files/virustotal_ip/settings.py (key, kind, default, range, one-line
doc). From it come, between `BEGIN generated: <name> (make settings)` and `END generated: <name>`
markers:
  roles/virustotal_ip/defaults/main.yml      the role's defaults (virustotal_ip_<key>)
  roles/virustotal_ip/meta/argument_specs.yml their types, defaults and descriptions
  roles/virustotal_ip/vars/main.yml           their range checks, and the config file's keys
  docs/configuration.md                       the script's configuration table, and the role's
                                              variable table (from argument_specs, whole)
  roles/virustotal_ip/README.md               the role's variable table, again
and, whole, the two files a manual install (docs/deploying.md) writes by hand:
  templates/custom-virustotal_ip.json         every setting at its default
  templates/ossec_integration.xml             the role's <integration> block at its defaults
tests/role/test_settings_schema.py fails when a file differs from what this writes. Adding a
setting: one row in SCHEMA (and its use in the code), then `make settings`.
Run: python tools/generate_settings.py [--check]
"""
from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ROLE = REPO / "roles" / "virustotal_ip"
sys.path.append(str(REPO / "files"))
from virustotal_ip import settings  # noqa: E402

PREFIX = "virustotal_ip_"
REGION = re.compile(r"(?P<indent>[ \t]*)(?P<open>#|<!--) BEGIN generated: (?P<name>[^(\n]+?) \(make settings\)"
                    r"(?: -->)?\n(?P<body>.*?)(?P=indent)(?:#|<!--) END generated: (?P=name)(?: -->)?\n", re.S)
SPEC_TYPES = {"secret": "str", "url": "str", "int": "int", "number": "float", "bool": "bool", "choice": "str",
              "strings": "list", "cidrs": "list", "weights": "dict", "ttls": "dict"}
CASTS = {"int": " | int", "number": " | float", "bool": " | bool"}
KIND_WORDS = {"secret": "string (secret)", "url": "URL", "int": "integer", "number": "number", "bool": "boolean",
              "choice": "string",
              "strings": "list of strings", "cidrs": "list of CIDRs", "weights": "object: engine → weight",
              "ttls": "object: verdict → hours"}


def role_settings() -> list:
    return [s for s in settings.SCHEMA if s.role]


def span(s) -> str:
    """The allowed range in words, or ""."""
    if s.choices:
        return ", ".join(s.choices)
    if s.low is None:
        return ""
    low, high = settings.number_text(s.low), settings.number_text(s.high)
    return f"{low} to {high}" if s.low < 0 else f"{low}-{high}"


def described(s) -> str:
    """The doc, with the range of a number (a choice's values are in its spec already)."""
    return s.doc + (f" Range {span(s)}." if span(s) and not s.choices else "")


def flow(value: object) -> str:
    return json.dumps(value)


def defaults_region(indent: str) -> str:
    """One line each, the doc's first sentence as its comment, shortened to fit yamllint's 130
    columns (the whole doc is in argument_specs and docs/configuration.md)."""
    lines = []
    for s in role_settings():
        head = f"{indent}{PREFIX}{s.key}: {flow(s.default)}  # "
        lines.append(head + textwrap.shorten(s.doc.split(". ")[0].rstrip("."), 130 - len(head), placeholder=" ..."))
    return "\n".join(lines) + "\n"


def specs_region(indent: str) -> str:
    lines = []
    for s in role_settings():
        lines += [f"{indent}{PREFIX}{s.key}:", f"{indent}  type: {SPEC_TYPES[s.kind]}"]
        if SPEC_TYPES[s.kind] == "list":
            lines.append(f"{indent}  elements: str")
        if s.kind == "secret":
            lines.append(f"{indent}  no_log: true")
        if s.choices:
            lines.append(f"{indent}  choices: {flow(list(s.choices))}")
        lines.append(f"{indent}  default: {flow(s.default)}")
        text = re.sub(r"`([^`]*)`", r"C(\1)", described(s))
        wrapped = textwrap.wrap(text, 100, break_on_hyphens=False)
        lines += [f"{indent}  description: >-", *(f"{indent}    {line}" for line in wrapped)]
    return "\n".join(lines) + "\n"


def ranges_region(indent: str) -> str:
    """One flow mapping a setting; one too long for yamllint's 130 columns goes on two lines."""
    low, high = settings.number_text, settings.number_text
    rows = []
    for s in role_settings():
        if s.low is None:
            continue
        head = f'{indent}- {{name: {PREFIX}{s.key}, value: "{{{{ {PREFIX}{s.key} }}}}",'
        tail = f"min: {low(s.low)}, max: {high(s.high)}}}"
        one_line = f"{head} {tail}"
        rows.append(one_line if len(one_line) <= 130 else f"{head}\n{indent}   {tail}")
    return "".join(f"{row}\n" for row in rows)


def config_region(indent: str) -> str:
    return "".join(f'{indent}{s.key}: "{{{{ {PREFIX}{s.key}{CASTS.get(s.kind, "")} }}}}"\n'
                   for s in role_settings())


def config_table(indent: str) -> str:
    rows = ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
    for s in settings.SCHEMA:
        default = "—" if s.kind == "secret" else f"`{flow(s.default)}`"
        rows.append(f"| `{s.key}` | {KIND_WORDS[s.kind]} | {default} | {span(s) or '—'} | {s.doc.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def role_table(indent: str) -> str:
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name, spec in specs["argument_specs"]["main"]["options"].items():
        kind = spec["type"] + (f" of {spec['elements']}" if "elements" in spec else "")
        if "choices" in spec:
            kind += " (" + ", ".join(spec["choices"]) + ")"
        default = spec["default"]
        shown = json.dumps(default) if not isinstance(default, str) else default
        text = spec["description"]
        text = " ".join(text) if isinstance(text, list) else text
        text = re.sub(r"C\(([^)]*)\)", r"`\1`", text)
        rows.append(f"| `{name}` | {kind} | `{shown}` | {text.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def config_example() -> str:
    return json.dumps(settings.defaults(), indent=2) + "\n"


def integration_block() -> str:
    """Rendered as Ansible's template module renders it (trim_blocks, Ansible's tests)."""
    import jinja2
    from ansible.plugins.test.core import TestModule as AnsibleTests
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), keep_trailing_newline=True,
                             trim_blocks=True)
    env.tests.update(AnsibleTests().tests())
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    return env.get_template("ossec_integration.xml.j2").render(**defaults)


WHOLE = {
    REPO / "templates" / "custom-virustotal_ip.json": config_example,
    REPO / "templates" / "ossec_integration.xml": integration_block,
}

TARGETS = {
    ROLE / "defaults" / "main.yml": {"script settings": defaults_region},
    ROLE / "meta" / "argument_specs.yml": {"script settings": specs_region},
    ROLE / "vars" / "main.yml": {"script settings ranges": ranges_region, "script settings config": config_region},
    REPO / "docs" / "configuration.md": {"config table": config_table, "role variable table": role_table},
    ROLE / "README.md": {"role variable table": role_table},
}


def regenerated(path: Path) -> str:
    text = path.read_text()
    renderers = TARGETS[path]
    found = {m.group("name") for m in REGION.finditer(text)}
    missing = set(renderers) - found
    if missing:
        raise SystemExit(f"{path.relative_to(REPO)}: no region {sorted(missing)} (markers: BEGIN/END generated)")

    def fill(m: re.Match) -> str:
        head, tail = m.group(0).split("\n", 1)[0], m.group(0).rstrip("\n").rsplit("\n", 1)[-1]
        return f"{head}\n{renderers[m.group('name')](m.group('indent'))}{tail}\n"
    # argument_specs is read by role_table: write it before docs/configuration.md is rendered
    return REGION.sub(fill, text)


def main(argv: list) -> int:
    stale = []
    outputs = [(path, lambda path=path: regenerated(path)) for path in TARGETS] + list(WHOLE.items())
    for path, render in outputs:
        new = render()
        if not path.exists() or new != path.read_text():
            stale.append(str(path.relative_to(REPO)))
            if "--check" not in argv:
                path.write_text(new)
    if stale:
        print(("stale: " if "--check" in argv else "written: ") + ", ".join(stale))
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
