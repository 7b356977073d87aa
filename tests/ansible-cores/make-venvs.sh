#!/usr/bin/env bash
# Creates .venv-core-<X.Y> for each ansible-core the collection supports besides
# requirements.txt's (tests/ansible-cores/<X.Y>.txt), from a Python this machine has (PATH or
# pyenv) that the version runs on. tests/role/test_collection.py then installs the collection
# and deploys it under each one.
set -euo pipefail
cd "$(dirname "$0")/../.."
for pins in tests/ansible-cores/*.txt; do
    core=$(basename "$pins" .txt)
    venv=".venv-core-$core"
    if [ -x "$venv/bin/ansible-playbook" ] && [ "$venv/.stamp" -nt "$pins" ]; then
        continue
    fi
    python=""
    for version in 3.12 3.13; do          # ansible-core 2.20 and later run on Python 3.12+
        candidate=$(command -v "python$version" 2>/dev/null || true)
        if [ -z "$candidate" ] || ! "$candidate" -c pass 2>/dev/null; then
            candidate=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python3 2>/dev/null | sort -V | tail -1 || true)
        fi
        if [ -n "$candidate" ]; then python=$candidate; break; fi
    done
    if [ -z "$python" ]; then
        echo "NOTE: no Python 3.12 or newer here: ansible-core $core is not tested (test_collection.py fails on CI)." >&2
        continue
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins"
    touch "$venv/.stamp"
    echo "created $venv from $python"
done
