# Sourced by the image build (wazuh-src/build.sh): checks, one build at a time, and the Debian
# bookworm base image made with debootstrap + docker import (no registry needed).
# shellcheck shell=bash

BASE_IMAGE=localhost/vtip-debian-base:bookworm
BASE_PACKAGES=python3,python3-requests,procps,passwd

die() { echo "${0##*/}: $*" >&2; exit 1; }

need_docker() {
    command -v docker >/dev/null || die "docker is not installed (Debian: apt-get install docker.io)"
    docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run as a user in group docker)"
}

# One image build at a time: parallel test workers all ask for images.
lock_builds() {
    exec 9>"${TMPDIR:-/tmp}/vtip-image-build.lock"
    flock 9
}

apt_mirror() {
    local m
    m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$m" ] || m=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    echo "${DEBIAN_MIRROR:-$m}"
}

# Makes $BASE_IMAGE once: debootstrap of bookworm (minbase + BASE_PACKAGES) from the mirror
# this machine's apt uses, imported with docker import.
ensure_base() {
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
    command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian: apt-get install debootstrap)"
    local mirror rootfs
    mirror=$(apt_mirror)
    [ -n "$mirror" ] || die "no Debian mirror in /etc/apt; set DEBIAN_MIRROR"
    rootfs=$(mktemp -d /tmp/vtip-rootfs.XXXXXX)
    echo "${0##*/}: debootstrap bookworm ($BASE_PACKAGES) into $rootfs"
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
        tail -20 "$rootfs.log" >&2
        rm -rf "$rootfs" "$rootfs.log"
        die "debootstrap failed"
    fi
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    echo "${0##*/}: base image $BASE_IMAGE imported"
}
