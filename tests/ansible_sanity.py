"""`ansible-test sanity` on what ships: the collection tarball installed into a temporary
ansible_collections/ tree, every sanity test, with ansible-core's own pins for each test's tools.

Offline: ansible-test puts pip into each test's virtual environment with get-pip.py, which it
downloads from a host unreachable here; tests/sanity/get_pip.py (ours) stands in for it, at the
name ansible-test looks for in its cache, and installs the pip version ansible-test pins from the
machine's package index. The ignore file is tests/sanity/ignore-<ansible-core>.txt (each entry
says why); it is put beside the installed collection, which does not ship tests/.

    python tests/ansible_sanity.py build/lint/wazuh_virustotal_ip-virustotal_ip-<version>.tar.gz
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

from ansible_test._internal.python_requirements import get_venv_packages

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def core_version() -> str:
    """ansible-core's major.minor, as ansible-test names its ignore files."""
    from ansible.release import __version__
    return ".".join(__version__.split(".")[:2])


def provide_pip_bootstrap() -> Path:
    """Our get_pip.py where ansible-test's bootstrap looks before it downloads."""
    pip = get_venv_packages(types.SimpleNamespace(version=PYTHON))["pip"]
    cached = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip.replace('.', '_')}.py"
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "sanity" / "get_pip.py", cached)
    return cached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tarball", type=Path)
    args = parser.parse_args()
    if not shutil.which("shellcheck"):
        # ansible-test would skip its shellcheck test with a warning: a pass that checked less
        print("ansible_sanity: shellcheck is not installed (apt-get install shellcheck); "
              "ansible-test's shellcheck test would be skipped", file=sys.stderr)
        return 1
    provide_pip_bootstrap()
    with tempfile.TemporaryDirectory(prefix="vtip-sanity-") as tmp:
        r = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--force", "-p", tmp,
                            str(args.tarball)], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            return 1
        root = next(Path(tmp, "ansible_collections").glob("*/*"))
        ignores = HERE / "sanity" / f"ignore-{core_version()}.txt"
        if ignores.exists():
            (root / "tests" / "sanity").mkdir(parents=True)
            shutil.copyfile(ignores, root / "tests" / "sanity" / ignores.name)
        r = subprocess.run([str(BIN / "ansible-test"), "sanity", "--local", "--python", PYTHON, "--color", "no"],
                           cwd=root, check=False)
    if r.returncode == 0:
        print(f"ansible-test sanity passes on {args.tarball.name} (ansible-core {core_version()}, Python {PYTHON})")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
