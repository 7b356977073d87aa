#!/usr/bin/env bash
# Creates .venv-script-<X.Y> for Wazuh's embedded Pythons (3.9, 3.10) with the requests they
# ship, from whatever interpreter of that version this machine has (PATH or pyenv). The
# integration tests then run the deployed script under each one too (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/pinned-venv.sh
for version in 3.9 3.10; do
    pinned_venv ".venv-script-$version" "tests/script-pythons/$version.txt" \
        "the script is not tested under it (Wazuh embeds it)." "$version"
done
