#!/usr/bin/env bash
# Builds localhost/wazuh-manager-src:VERSION and, for the current version, the agent beside it,
# localhost/wazuh-agent-src:VERSION: Wazuh's own daemons compiled from Wazuh's source
# (make wazuh-image [WAZUH_VERSION=<another version in sources.lock>]).
#
#   build.sh [--no-verify | --verify-only | --cluster] [VERSION]
#                               VERSION: a Wazuh version pinned in sources.lock (default: its first)
#
# --no-verify builds (or finds cached) and stops; --verify-only verifies what is built. make
# images runs them apart, so that an older version builds while the current one is verified:
# only the build holds the version's one-build-at-a-time lock.
#
# --cluster builds localhost/wazuh-manager-src:VERSION-cluster: the manager plus wazuh-modulesd
# (modulesd/install.sh) and wazuh-clusterd (Wazuh's framework and API, cluster/install.sh), for
# the versions whose API archive sources.lock pins. Only the cluster tests ask for it. Its Python
# libraries are installed here from the wheels cluster/requirements.txt pins by hash (pip
# --require-hashes, from PyPI or the index pip is configured with), for the image's Python (3.13)
# and this machine's architecture.
#
# The Debian release is the version's: 4.8 and later link Wazuh's C++ router (wazuh-db,
# remoted), which needs trixie's flatbuffers and cpp-httplib; 4.7 builds on bookworm.
#
# A cached image is a verified one: the tests of Wazuh's interfaces as we use them
# (tests/images/test_manager_interfaces.py) run on every new image of the current version (sources.lock's first), and again whenever
# they or what they load change; an image that fails them is untagged. A stamp under
# ~/.cache/wazuh-virustotal-ip/verified/ records each image and test text that passed.
#
# Sources: the folder WAZUH_SOURCES, else ../shared/third_party beside this checkout when it
# exists (our CI), else (or with WAZUH_SOURCES=upstream) the pinned tags fetched from upstream
# with git (WAZUH_UPSTREAM_MIRROR replaces https://github.com). Archives are checked against their SHA-256, fetched tags
# against their commit; a mismatch stops the build before anything is built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# shellcheck source=tests/images/base.sh
. "$here/../base.sh"

# sources.lock is the one place the Wazuh versions are written: the first is the current one.
newest=$(awk '$1 == "wazuh" {print $2; exit}' "$here/sources.lock")
steps=build,verify
case ${1:-} in
    --no-verify) steps=build; shift ;;
    --verify-only) steps=verify; shift ;;
    --cluster) steps=cluster; shift ;;
    -*) die "unknown option $1 (build.sh [--no-verify | --verify-only | --cluster] [VERSION])" ;;
esac
version=${1:-${WAZUH_VERSION:-$newest}}
image=localhost/wazuh-manager-src:$version
agent_image=localhost/wazuh-agent-src:$version
case $version in
    4.[0-7].*) suite=bookworm ;;
    *) suite=trixie ;;
esac

pin() {   # pin NAME VERSION -> "file sha256 url tag commit", or nothing
    awk -v n="$1" -v v="$2" '$1 == n && $2 == v {print $3, $4, $5, $6, $7}' "$here/sources.lock"
}

# Copies FILE from the folder DIR into the build context after checking its SHA-256.
from_folder() {
    local dir=$1 file=$2 sum=$3 got
    [ -f "$dir/$file" ] || die "$dir has no $file (WAZUH_SOURCES must hold the archives named in sources.lock)"
    got=$(sha256sum "$dir/$file" | cut -d' ' -f1)
    [ "$got" = "$sum" ] || die "$dir/$file does not match its pinned SHA-256: expected $sum, got $got. Refusing to build from unverified sources."
    cp "$dir/$file" "$ctx/sources/$file"
}

# Fetches TAG of URL with git, checks it is COMMIT, and packs it as the archive FILE would be;
# a source published as a file (TAG "-") is downloaded and checked against its SHA-256 SUM.
from_upstream() {
    local name=$1 file=$2 url=$3 tag=$4 commit=$5 sum=$6 got git_dir
    if [ "$tag" = - ]; then
        url=${url/#https:\/\/deb.debian.org\/debian/${DEBIAN_MIRROR:-https://deb.debian.org/debian}}
        echo "build.sh: downloading $name from $url"
        python3 -c 'import shutil, sys, urllib.request; shutil.copyfileobj(urllib.request.urlopen(sys.argv[1], timeout=60), open(sys.argv[2], "wb"))' \
            "$url" "$ctx/sources/$file" 2>/dev/null \
            || die "could not download $url (no network? set WAZUH_SOURCES to a folder with the archives)"
        got=$(sha256sum "$ctx/sources/$file" | cut -d' ' -f1)
        [ "$got" = "$sum" ] || die "$url does not match its pinned SHA-256: expected $sum, got $got. Refusing to build from unverified sources."
        return 0
    fi
    url=${url/#https:\/\/github.com/${WAZUH_UPSTREAM_MIRROR:-https://github.com}}
    git_dir=${XDG_CACHE_HOME:-$HOME/.cache}/wazuh-virustotal-ip/git/${name%-api}   # the API: Wazuh's repository
    command -v git >/dev/null || die "git is not installed (Debian: apt-get install git), and no WAZUH_SOURCES folder was given"
    [ -d "$git_dir" ] || git init --quiet --bare "$git_dir"
    echo "build.sh: fetching $name $tag from $url"
    git -C "$git_dir" fetch --quiet --depth 1 "$url" "+refs/tags/$tag:refs/tags/$tag" \
        || die "could not fetch $tag from $url (no network? set WAZUH_SOURCES to a folder with the archives)"
    got=$(git -C "$git_dir" rev-parse "refs/tags/$tag^{commit}")
    [ "$got" = "$commit" ] || die "$url tag $tag is commit $got, not the pinned $commit. Refusing to build from unverified sources."
    case $name in
        wazuh) git -C "$git_dir" archive --format=tar --prefix="wazuh-${file#wazuh-}" "$commit" ;;
        wazuh-api) git -C "$git_dir" archive --format=tar --prefix="${file%-api.tar.xz}/" "$commit" api ;;
        audit-userspace) git -C "$git_dir" archive --format=tar "$commit" lib ;;
        *) git -C "$git_dir" archive --format=tar "$commit" ;;
    esac | xz -T0 -6 > "$ctx/sources/$file"
}

# Installs the Python libraries of cluster/requirements.txt into DIR for the cluster image: the
# pinned wheels only, each checked against its SHA-256, for Python 3.13 on this architecture.
cluster_libraries() {   # cluster_libraries DIR
    local python=$repo/.venv/bin/python arch platforms=() tag
    [ -x "$python" ] || die "no $python to install the cluster's Python libraries with: run make venv first"
    arch=$(uname -m)
    case $arch in
        x86_64 | aarch64) ;;
        *) die "cluster/requirements.txt pins wheels for x86_64 and aarch64, not $arch" ;;
    esac
    for tag in manylinux_2_28 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
        platforms+=(--platform "${tag}_$arch")
    done
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
        --no-compile --python-version 3.13 --implementation cp --abi cp313 --abi abi3 --abi none \
        "${platforms[@]}" --platform any --target "$1" -r "$here/cluster/requirements.txt" >"$1.log" 2>&1 \
        || { grep -v '^WARNING: Location' "$1.log" | tail -20 >&2
             die "could not install cluster/requirements.txt's wheels (above: pip's reason; no index reachable?)"; }
    rm -f "$1.log"
}

[ -n "$(pin wazuh "$version")" ] || die "no pinned sources for Wazuh $version (sources.lock has: $(awk '$1 == "wazuh" {printf "%s ", $2}' "$here/sources.lock"))"
[ "$steps" != cluster ] || [ -n "$(pin wazuh-api "$version")" ] \
    || die "no cluster image for Wazuh $version: sources.lock pins Wazuh's API (wazuh-api) for $(awk '$1 == "wazuh-api" {printf "%s ", $2}' "$here/sources.lock")only"

if [ "$steps" != verify ]; then
    sources=${WAZUH_SOURCES:-}
    if [ -z "$sources" ] && [ -d "$repo/../shared/third_party" ]; then
        sources=$repo/../shared/third_party
    fi
    [ "$sources" = upstream ] && sources=""      # WAZUH_SOURCES=upstream: fetch even where a folder exists

    ctx=$(mktemp -d /tmp/vtip-wazuh-src.XXXXXX)
    trap 'rm -rf "$ctx"' EXIT
    mkdir -p "$ctx/sources"
    # Wazuh at $version, and every other pinned source (each at its one pinned version); the
    # sources published as files first (a download checked by its checksum before any git fetch).
    deps=()
    while read -r dep; do deps+=("$dep"); done < <(awk '!/^#/ && NF && $1 !~ /^wazuh/ && $6 == "-" {print $1, $2}' "$here/sources.lock")
    deps+=("wazuh $version")
    [ "$steps" != cluster ] || deps+=("wazuh-api $version")
    while read -r dep; do deps+=("$dep"); done < <(awk '!/^#/ && NF && $1 !~ /^wazuh/ && $6 != "-" {print $1, $2}' "$here/sources.lock")
    for dep in "${deps[@]}"; do
        # flatbuffers is for the router, which 4.7 (built on bookworm) does not have
        read -r name pinned <<<"$dep"
        [ "$suite" = bookworm ] && [ "$name" = flatbuffers ] && continue
        read -r file sum url tag commit <<<"$(pin "$name" "$pinned")"
        if [ -n "$sources" ]; then
            from_folder "$sources" "$file" "$sum"
        else
            from_upstream "$name" "$file" "$url" "$tag" "$commit" "$sum"
        fi
    done
    echo "build.sh: sources verified (${sources:-fetched from upstream})"

    need_docker
    lock_builds "$version"
    ensure_base "$suite"
    # the API archive is the cluster stage's only: out of sources/, which every build stage copies
    if [ "$steps" = cluster ]; then
        mkdir -p "$ctx/cluster/sources"
        mv "$ctx/sources/wazuh-$version-api.tar.xz" "$ctx/cluster/sources/"
        cp "$ctx/sources/wazuh-$version-src.tar.xz" "$ctx/cluster/sources/"
        cp "$here/cluster/install.sh" "$here/cluster/asyncio-coroutine.patch" "$ctx/cluster/"
        mkdir -p "$ctx/modulesd"
        cp "$here/modulesd/install.sh" "$ctx/modulesd/"
        cluster_libraries "$ctx/cluster/site-packages"
    fi
    cp -r "$here/Dockerfile" "$here/deps.sh" "$here/compile.sh" "$here/install.sh" "$here/README.md" "$here/init" \
        "$here/bin" "$here/patches" "$ctx/"
    build_image() {   # build_image TARGET NAME: one stage of the Dockerfile, tagged NAME
        local start
        start=$(date +%s)
        docker build --force-rm --network host --target "$1" --tag "$2" --build-arg BASE="$(base_image "$suite")" \
            --build-arg WAZUH_VERSION="$version" "$ctx" >"$ctx.log" 2>&1 \
            || { tail -40 "$ctx.log" >&2; rm -f "$ctx.log"; die "docker build of $2 failed (above: its last lines)"; }
        rm -f "$ctx.log"
        echo "build.sh: $2 built in $(( $(date +%s) - start )) s (Wazuh $version from source, Debian $suite)"
    }
    build_image manager "$image"
    # The agent, and below the verification: for the current version (an older one is proven end
    # to end by molecule, on its own).
    [ "$version" = "$newest" ] || exit 0
    build_image agent "$agent_image"
    if [ "$steps" = cluster ]; then
        build_image cluster "$image-cluster"
        exit 0
    fi
    exec 9>&-                   # the build lock: another version may build while this one is verified
fi
[ "$steps" != build ] || exit 0
[ "$version" = "$newest" ] || exit 0
[ -z "${VTIP_VERIFYING_IMAGE:-}" ] || exit 0        # the tests' own calls, while they verify it
need_docker
docker image inspect "$image" >/dev/null 2>&1 || die "no $image to verify: build it first (build.sh --no-verify $version)"
python=$repo/.venv/bin/python
[ -x "$python" ] || die "no $python to verify $image with: run make venv first"
key=$( { docker image inspect -f '{{.Id}}' "$image"
         cd "$repo" && cat tests/images/test_manager_interfaces.py tests/images/build.py tests/manager_harness.py \
             tests/harness.py tests/conftest.py tests/no_egress.py tests/vt_server.py files/virustotal_ip_rules.xml pyproject.toml
       } | sha256sum | cut -c1-32)
stamp=${XDG_CACHE_HOME:-$HOME/.cache}/wazuh-virustotal-ip/verified/$key
exec 8>"${TMPDIR:-/tmp}/vtip-image-verify.lock"     # one verification at a time, each once
flock 8
if [ -f "$stamp" ]; then
    echo "build.sh: $image verified before ($(cat "$stamp"))"
    exit 0
fi
echo "build.sh: verifying $image: tests/images/test_manager_interfaces.py"
start=$(date +%s)
log=$(mktemp /tmp/vtip-verify.XXXXXX)
trap 'rm -rf "${ctx:-}" "$log"' EXIT       # (ctx: the build's context, when this run built)
# -n 8: each test starts its own manager and mostly waits on it (92 s here against 140 s with
# the suite's 4 workers, and 105 s with both cores busy compiling)
if ! (cd "$repo" && VTIP_VERIFYING_IMAGE=1 "$python" -m pytest -q -p no:cacheprovider -n 8 \
        tests/images/test_manager_interfaces.py >"$log" 2>&1); then
    tail -60 "$log" >&2
    docker rmi "$image" >/dev/null 2>&1 || true
    die "$image failed the interface tests (above); it was untagged, so nothing uses it unverified"
fi
summary=$(grep -E '^[0-9]+ passed' "$log" | tail -1)
mkdir -p "$(dirname "$stamp")"
echo "$summary, $(date -u +%FT%TZ)" >"$stamp"
echo "build.sh: $image verified in $(( $(date +%s) - start )) s: $summary"
