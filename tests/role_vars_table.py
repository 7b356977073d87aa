"""Print the README's role variable table from roles/virustotal_ip/meta/argument_specs.yml
(the single documentation source; tests/role/test_role.py checks the README against it)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

SPECS = Path(__file__).resolve().parent.parent / "roles/virustotal_ip/meta/argument_specs.yml"


def table() -> str:
    options = yaml.safe_load(SPECS.read_text())["argument_specs"]["main"]["options"]
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name, spec in options.items():
        kind = spec["type"] + (f" of {spec['elements']}" if "elements" in spec else "")
        if "choices" in spec:
            kind += " (" + ", ".join(spec["choices"]) + ")"
        default = spec["default"]
        shown = json.dumps(default) if not isinstance(default, str) else default
        text = spec["description"]
        text = " ".join(text) if isinstance(text, list) else text
        text = re.sub(r"C\(([^)]*)\)", r"`\1`", text)
        rows.append(f"| `{name}` | {kind} | `{shown}` | {text.replace('|', '/')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
