"""`make collection`: the tarball a publisher uploads to Galaxy, built into build/.

Galaxy requires a `repository` URL, and this project commits none (a made-up one would
mislead): it is given on the command line and written into the built copy's galaxy.yml, with
`documentation`, `issues` and `homepage` if given. What ships is galaxy.yml's `build_ignore`.
`--import-check` then runs Galaxy's own importer (galaxy-importer, with its ansible-lint and
without ansible-test) on the tarball and fails on any error or warning, and `--sanity` runs
`ansible-test sanity` on it (tests/ansible_sanity.py) under each ansible-core the collection
supports: requirements.txt's (this Python's) and each tests/ansible-cores/<X.Y>.txt, from its
.venv-core-<X.Y> (tests/ansible-cores/make-venvs.sh), as `make lint` does.

Run: python tools/build_collection.py --repository URL [--documentation URL] [--issues URL]
     [--homepage URL] [--out build] [--import-check] [--sanity]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
URL = re.compile(r"https?://[^\s\"'<>]+")
# The checkout's local state, never copied (galaxy.yml's build_ignore drops the rest).
LOCAL = shutil.ignore_patterns(".git", ".venv*", "build", ".pytest_cache", ".ruff_cache", ".cache",
                               "__pycache__", "*.pyc", "*.tar.gz")
IMPORTER_CONFIG = """[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
CHECK_REQUIRED_TAGS = False
LOG_LEVEL_MAIN = INFO
"""


def url(value: str) -> str:
    if value and not URL.fullmatch(value):       # empty: main() says that the repository is required
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    return value


def build(urls: dict, out: Path) -> Path:
    """Copy the checkout, add `urls` to its galaxy.yml, build; returns the tarball."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(REPO, src, ignore=LOCAL, symlinks=True)
        with open(src / "galaxy.yml", "a", encoding="utf-8") as galaxy:
            galaxy.write("# written by make collection\n")
            for field, value in urls.items():
                galaxy.write(f"{field}: {json.dumps(value)}\n")
        r = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(src), "--output-path", str(out),
                            "--force"], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            sys.exit(f"ansible-galaxy collection build failed:\n{r.stdout}{r.stderr}")
    [tarball] = sorted(out.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)[-1:]
    return tarball


def import_check(tarball: Path) -> int:
    """Galaxy's importer on the tarball; 1 (with its output) on any error or warning."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "galaxy-importer.cfg"
        config.write_text(IMPORTER_CONFIG)
        env = dict(os.environ, GALAXY_IMPORTER_CONFIG=str(config), PATH=f"{BIN}:{os.environ['PATH']}")
        r = subprocess.run([str(BIN / "python"), "-m", "galaxy_importer.main", str(tarball.resolve())], env=env,
                           cwd=tmp, capture_output=True, text=True, check=False)    # it writes importer_result.json
    output = r.stdout + r.stderr
    flagged = [line for line in output.splitlines() if re.match(r"\s*(WARNING|ERROR)", line)]
    if r.returncode != 0 or flagged or "Importer processing completed successfully" not in output:
        print(output, file=sys.stderr)
        print(f"galaxy-importer refused {tarball.name}: {len(flagged)} error(s) or warning(s)", file=sys.stderr)
        return 1
    print(f"galaxy-importer accepts {tarball.name}: no errors, no warnings")
    return 0


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=url, help="the collection's source repository (Galaxy requires it)")
    for field in ("documentation", "issues", "homepage"):
        parser.add_argument(f"--{field}", type=url)
    parser.add_argument("--out", type=Path, default=REPO / "build")
    parser.add_argument("--import-check", action="store_true", help="Galaxy's import check on the tarball")
    parser.add_argument("--sanity", action="store_true", help="ansible-test sanity on it (tests/ansible_sanity.py)")
    args = parser.parse_args(argv)
    if not args.repository:
        parser.error("Galaxy requires the collection's repository URL, and none is committed: "
                     "make collection REPOSITORY=https://...")
    urls = {f: getattr(args, f) for f in ("repository", "documentation", "issues", "homepage") if getattr(args, f)}
    tarball = build(urls, args.out)
    print(f"built {tarball}")
    failed = import_check(tarball) if args.import_check else 0
    if args.sanity:
        for python in sanity_pythons():
            failed |= subprocess.run([str(python), str(REPO / "tests" / "ansible_sanity.py"), str(tarball)],
                                     check=False).returncode
    return 1 if failed else 0


def sanity_pythons() -> list:
    """The Python of each supported ansible-core: this one's, and each other core's venv. A core
    whose venv is missing (no Python for it here) is said, and fails on CI (CI=true)."""
    pythons = [Path(sys.executable)]
    for pins in sorted((REPO / "tests" / "ansible-cores").glob("*.txt")):
        python = REPO / f".venv-core-{pins.stem}" / "bin" / "python"
        if python.exists():
            pythons.append(python)
            continue
        print(f"NOTE: no .venv-core-{pins.stem} (tests/ansible-cores/make-venvs.sh): ansible-test sanity "
              f"under ansible-core {pins.stem} is not run", file=sys.stderr)
        if os.environ.get("CI", "").lower() == "true":
            sys.exit(1)
    return pythons


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
