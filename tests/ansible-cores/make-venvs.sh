#!/usr/bin/env bash
# Creates .venv-core-<X.Y> for each ansible-core the collection supports besides
# requirements.txt's (tests/ansible-cores/<X.Y>.txt), from a Python this machine has (PATH or
# pyenv) that the version runs on. tests/role/test_collection.py then installs the collection
# and deploys it under each one.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/pinned-venv.sh
for pins in tests/ansible-cores/*.txt; do
    core=$(basename "$pins" .txt)
    # ansible-core 2.20 and later run on Python 3.12+
    pinned_venv ".venv-core-$core" "$pins" \
        "ansible-core $core is not tested (test_collection.py fails on CI)." 3.12 3.13 3.14
done
