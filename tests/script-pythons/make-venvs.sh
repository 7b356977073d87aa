#!/usr/bin/env bash
# Creates .venv-script-<X.Y> for Wazuh's embedded Pythons (3.9, 3.10) with the requests they
# ship, from whatever interpreter of that version this machine has (PATH or pyenv). The
# integration tests then run the deployed script under each one too (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
for version in 3.9 3.10; do
    venv=".venv-script-$version"
    pins="tests/script-pythons/$version.txt"
    if [ -x "$venv/bin/python" ] && [ "$venv/.stamp" -nt "$pins" ]; then
        continue
    fi
    python=$(command -v "python$version" 2>/dev/null || true)
    if [ -z "$python" ] || ! "$python" -c pass 2>/dev/null; then
        python=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python3 2>/dev/null | sort -V | tail -1 || true)
    fi
    if [ -z "$python" ]; then
        echo "NOTE: no Python $version here; the script is not tested under it (Wazuh embeds it)." >&2
        continue
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins"
    touch "$venv/.stamp"
    echo "created $venv from $python"
done
