# Sourced by the image build (wazuh-src/build.sh): checks, one build at a time, and the Debian
# base images (bookworm, trixie) made with debootstrap + docker import (no registry needed).
# shellcheck shell=bash

BASE_PACKAGES=python3,python3-requests,procps,passwd

base_image() {   # base_image SUITE -> the image's name
    echo "localhost/vtip-debian-base:$1"
}

die() { echo "${0##*/}: $*" >&2; exit 1; }

need_docker() {
    command -v docker >/dev/null || die "docker is not installed (Debian: apt-get install docker.io)"
    docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run as a user in group docker)"
}

# One build of a version's images at a time: parallel test workers all ask for them. Builds of
# two versions may run side by side (an older version's while the current one's is checked).
lock_builds() {   # lock_builds VERSION
    exec 9>"${TMPDIR:-/tmp}/vtip-image-build-$1.lock"
    flock 9
}

apt_mirror() {
    local m
    m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$m" ] || m=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    echo "${DEBIAN_MIRROR:-$m}"
}

# Makes the base image of SUITE once: debootstrap of that Debian release (minbase +
# BASE_PACKAGES) from the mirror this machine's apt uses, imported with docker import.
ensure_base() {
    local suite=$1 image
    image=$(base_image "$suite")
    docker image inspect "$image" >/dev/null 2>&1 && return 0
    # one debootstrap of a suite at a time (two versions may share it); the lock goes with the
    # subshell below
    ( flock 8; make_base "$suite" "$image" ) 8>"${TMPDIR:-/tmp}/vtip-base-$suite.lock"
}

make_base() {   # make_base SUITE IMAGE: unless another build made it meanwhile
    local suite=$1 image=$2
    docker image inspect "$image" >/dev/null 2>&1 && return 0
    command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian: apt-get install debootstrap)"
    local mirror rootfs
    mirror=$(apt_mirror)
    [ -n "$mirror" ] || die "no Debian mirror in /etc/apt; set DEBIAN_MIRROR"
    rootfs=$(mktemp -d /tmp/vtip-rootfs.XXXXXX)
    echo "${0##*/}: debootstrap $suite ($BASE_PACKAGES) into $rootfs"
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
        tail -20 "$rootfs.log" >&2
        rm -rf "$rootfs" "$rootfs.log"
        die "debootstrap failed"
    fi
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
    rm -rf "$rootfs"
    echo "${0##*/}: base image $image imported"
}
