#!/usr/bin/env bash
# Builds the TEST STAND-IN manager image offline: make standin-image.
#   1. a Debian bookworm base: the local debian:bookworm-slim if Docker has it, else a root
#      filesystem from debootstrap (the mirror is the one this machine's apt uses), imported
#      with `docker import` - no registry needed. Built once, then reused.
#   2. docker build of Dockerfile on top (layer cache: a rebuild with no change takes seconds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${STANDIN_IMAGE:-localhost/wazuh-manager-standin:4.14}
base=localhost/vtip-debian-base:bookworm
packages=python3,python3-requests,procps,passwd

die() { echo "build.sh: $*" >&2; exit 1; }

# One build at a time (parallel test workers all ask for the image).
exec 9>"${TMPDIR:-/tmp}/vtip-standin-build.lock"
flock 9
command -v docker >/dev/null || die "docker is not installed (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run as a user in group docker)"

apt_mirror() {
    local m
    m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$m" ] || m=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    echo "${DEBIAN_MIRROR:-$m}"
}

install_packages=0
if docker image inspect "$base" >/dev/null 2>&1; then
    :
elif docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
    base=debian:bookworm-slim
    install_packages=1
else
    command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian: apt-get install debootstrap)"
    mirror=$(apt_mirror)
    [ -n "$mirror" ] || die "no Debian mirror in /etc/apt; set DEBIAN_MIRROR"
    rootfs=$(mktemp -d /tmp/vtip-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "build.sh: debootstrap bookworm ($packages) into $rootfs"
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    echo "build.sh: base image $base imported"
fi

docker build --quiet --tag "$image" --build-arg BASE="$base" \
    --build-arg INSTALL_PACKAGES="$install_packages" "$here" >/dev/null
echo "build.sh: $image built (TEST STAND-IN, not Wazuh)"
