# shellcheck shell=bash
# Sourced by tests/script-pythons/make-venvs.sh and tests/ansible-cores/make-venvs.sh.

# pinned_venv VENV PINS WHY X.Y...: VENV with the requirements file PINS installed, made from
# the first Python of those versions this machine has (PATH, else pyenv's newest patch release).
# Kept while newer than PINS. Without such a Python: a note on stderr saying WHY it matters.
pinned_venv() {
    local venv=$1 pins=$2 why=$3 version python=""
    shift 3
    if [ -x "$venv/bin/python" ] && [ "$venv/.stamp" -nt "$pins" ]; then
        return
    fi
    for version in "$@"; do
        python=$(command -v "python$version" 2>/dev/null || true)
        if [ -z "$python" ] || ! "$python" -c pass 2>/dev/null; then
            python=$(printf '%s\n' "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python3 | sort -V | tail -1)
            [ -x "$python" ] || python=""
        fi
        [ -n "$python" ] && break
    done
    if [ -z "$python" ]; then
        echo "NOTE: no Python $* here: $why" >&2
        return
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins"
    touch "$venv/.stamp"
    echo "created $venv from $python"
}
