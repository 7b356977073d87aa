"""The from-source image build refuses sources it cannot verify, before it builds anything
(tests/images/wazuh-src/build.sh; the successful builds are exercised by every test that
starts a manager)."""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from harness import REPO
from manager_harness import WAZUH_OLDEST_VERSION, WAZUH_VERSION, manager_image

BUILD = REPO / "tests" / "images" / "wazuh-src" / "build.sh"
LOCK = REPO / "tests" / "images" / "wazuh-src" / "sources.lock"
SHARED = REPO.parent / "shared" / "third_party"      # our CI's verified archives, beside the checkout


def pins() -> dict:
    rows = [line.split() for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    return {(row[0], row[1]): (row[2], row[3], row[6]) for row in rows}


def build(sources: Path | str, version: str = WAZUH_VERSION, home: Path | None = None,
          **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BUILD), version],
                          env={"PATH": "/usr/bin:/bin", "WAZUH_SOURCES": str(sources), "HOME": str(home or sources),
                               **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_an_archive_that_does_not_match_its_checksum_stops_the_build_naming_it(tmp_path):
    files = {file for file, _sum, _commit in pins().values()}
    for file in files:
        (tmp_path / file).write_bytes(b"not the pinned archive")
    r = build(tmp_path)
    assert r.returncode != 0
    named = re.search(r"/([^/\s]+) does not match its pinned SHA-256", r.stderr)
    assert named and named.group(1) in files, r.stderr
    assert "Refusing to build from unverified sources." in r.stderr
    assert "built" not in r.stdout


def test_a_folder_without_the_pinned_archives_stops_the_build_saying_what_it_needs(tmp_path):
    r = build(tmp_path)
    named = re.search(r"has no (\S+) \(WAZUH_SOURCES must hold the archives named in sources.lock\)", r.stderr)
    assert r.returncode != 0 and named and named.group(1) in {file for file, _sum, _commit in pins().values()}


def test_an_unknown_option_is_refused_with_the_usage():
    r = subprocess.run([str(BUILD), "--verify", WAZUH_VERSION], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0
    assert "unknown option --verify (build.sh [--no-verify | --verify-only | --cluster] [VERSION])" in r.stderr


def test_verify_only_of_an_older_version_has_nothing_to_verify_and_reads_no_sources(tmp_path):
    """Only the current version is verified (an older one is proven end to end by molecule);
    --verify-only never reads the sources, so an empty folder of them changes nothing."""
    r = subprocess.run([str(BUILD), "--verify-only", WAZUH_OLDEST_VERSION], env={
        "PATH": "/usr/bin:/bin", "WAZUH_SOURCES": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_an_unpinned_version_is_refused_with_the_versions_there_are(tmp_path):
    r = build(tmp_path, "4.9.9")
    assert r.returncode != 0 and "no pinned sources for Wazuh 4.9.9" in r.stderr and WAZUH_VERSION in r.stderr


def test_the_pins_are_the_checksums_of_the_shared_archives():
    if not SHARED.is_dir():
        pytest.skip(f"no {SHARED} on this machine to compare the pins with")
    shared_sums = dict(reversed(line.split()) for line in (SHARED / "SHA256SUMS").read_text().splitlines())
    for file, digest, _commit in pins().values():
        assert shared_sums[file] == digest, file
        assert hashlib.sha256((SHARED / file).read_bytes()).hexdigest() == digest, file


def test_a_fetched_tag_that_is_not_the_pinned_commit_stops_the_build(tmp_path):
    """The upstream path, against a local mirror whose tag of the oldest version is another commit
    (the oldest: it builds without the sources published as files, which would be downloaded
    first)."""
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    (work / "README").write_text("not wazuh\n")
    subprocess.run([*git, "-C", str(work), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "x"], check=True)
    subprocess.run([*git, "-C", str(work), "tag", f"v{WAZUH_OLDEST_VERSION}"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "mirror" / "wazuh" / "wazuh.git")],
                   check=True)
    wrong = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True,
                           check=True).stdout.strip()
    r = build("upstream", WAZUH_OLDEST_VERSION, home=tmp_path, WAZUH_UPSTREAM_MIRROR=f"file://{tmp_path / 'mirror'}")
    assert r.returncode != 0
    pinned = pins()[("wazuh", WAZUH_OLDEST_VERSION)][2]
    assert (f"tag v{WAZUH_OLDEST_VERSION} is commit {wrong}, not the pinned {pinned}. "
            "Refusing to build from unverified sources.") in r.stderr


def test_a_downloaded_source_that_does_not_match_its_checksum_stops_the_build(tmp_path):
    """The upstream path of a source published as a file (Debian's repack of flatbuffers, which
    the current version's router needs), against a local Debian mirror that holds another file:
    refused before any git fetch."""
    (file, _sum, _commit), = (pin for (name, _), pin in pins().items() if name == "flatbuffers")
    pool = tmp_path / "debian" / "pool" / "main" / "f" / "flatbuffers"
    pool.mkdir(parents=True)
    (pool / file).write_bytes(b"not the pinned archive")
    r = build("upstream", home=tmp_path, DEBIAN_MIRROR=f"file://{tmp_path / 'debian'}")
    assert r.returncode != 0
    assert f"/debian/pool/main/f/flatbuffers/{file} does not match its pinned SHA-256" in r.stderr
    assert "Refusing to build from unverified sources." in r.stderr
    assert "fetching" not in r.stdout and "built" not in r.stdout


def test_the_cluster_image_of_a_version_whose_api_is_not_pinned_is_refused(tmp_path):
    r = subprocess.run([str(BUILD), "--cluster", WAZUH_OLDEST_VERSION], env={
        "PATH": "/usr/bin:/bin", "WAZUH_SOURCES": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0
    assert (f"no cluster image for Wazuh {WAZUH_OLDEST_VERSION}: sources.lock pins Wazuh's API (wazuh-api) "
            f"for {WAZUH_VERSION} only") in r.stderr


def shared_sources(tmp_path: Path) -> Path:
    """A WAZUH_SOURCES folder of links to ../shared/third_party's archives (skips where this
    machine has none: the archives are what the checks below get past)."""
    if not SHARED.is_dir():
        pytest.skip(f"no {SHARED} on this machine to take the verified archives from")
    folder = tmp_path / "sources"
    folder.mkdir()
    for file, _sum, _commit in pins().values():
        (folder / file).symlink_to(SHARED / file)
    return folder


def test_a_cluster_build_whose_api_archive_does_not_match_stops_before_building(tmp_path):
    sources = shared_sources(tmp_path)
    api, _sum, _commit = pins()[("wazuh-api", WAZUH_VERSION)]
    (sources / api).unlink()
    (sources / api).write_bytes(b"not the pinned archive")
    r = subprocess.run([str(BUILD), "--cluster"], env={"PATH": "/usr/bin:/bin", "WAZUH_SOURCES": str(sources),
                                                       "HOME": str(tmp_path)},
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode != 0
    assert f"/{api} does not match its pinned SHA-256" in r.stderr
    assert "built" not in r.stdout


def test_a_cluster_wheel_that_does_not_match_its_hash_stops_the_build(tmp_path):
    """The cluster's Python libraries come only from the wheels requirements.txt pins by hash:
    an index (here, the only one) serving another file under a pinned name is refused."""
    manager_image("wazuh-src", "the cluster build's wheel check")     # Docker, and the base image
    sources = shared_sources(tmp_path)
    index = tmp_path / "index"
    index.mkdir()
    (index / "anyio-4.1.0-py3-none-any.whl").write_bytes(b"not the pinned wheel")
    r = subprocess.run([str(BUILD), "--cluster"], env={
        "PATH": "/usr/bin:/bin", "WAZUH_SOURCES": str(sources), "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)},
        capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode != 0
    assert "could not install cluster/requirements.txt's wheels" in r.stderr
    assert "DO NOT MATCH THE HASHES" in r.stderr
    assert "built" not in r.stdout
