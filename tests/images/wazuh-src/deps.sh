#!/bin/sh
# Installs the Debian packages one stage of the image needs (Dockerfile), named for the suite
# the stage runs on: Wazuh 4.14 builds on trixie (its wazuh-db needs flatbuffers 23 and
# cpp-httplib 0.18, which bookworm lacks), 4.7 on bookworm.
#
#   deps.sh build     compilers and -dev packages (the build stages only)
#   deps.sh runtime   the libraries the programs built link, and iptables (firewall-drop)
set -eu
. /etc/os-release
case "$1:$VERSION_CODENAME" in
    build:bookworm)
        packages="gcc make libc6-dev xz-utils patch libssl-dev zlib1g-dev libsqlite3-dev libyaml-dev
                  libpcre2-dev libcurl4-openssl-dev libmsgpack-dev libbz2-dev libaudit-dev" ;;
    build:trixie)
        # + C++ and the router's libraries: cpp-httplib, simdjson, nlohmann-json (flatbuffers is
        # built from its pinned source, with our patch)
        packages="gcc g++ make cmake libc6-dev xz-utils patch libssl-dev zlib1g-dev libsqlite3-dev libyaml-dev
                  libpcre2-dev libcurl4-openssl-dev libmsgpack-c-dev libbz2-dev libaudit-dev
                  libcpp-httplib-dev libsimdjson-dev nlohmann-json3-dev" ;;
    runtime:bookworm)
        packages="libssl3 zlib1g libsqlite3-0 libyaml-0-2 libpcre2-8-0 libcurl4 libmsgpackc2 libbz2-1.0 libaudit1
                  iptables" ;;
    runtime:trixie)
        packages="libssl3t64 zlib1g libsqlite3-0 libyaml-0-2 libpcre2-8-0 libcurl4t64 libmsgpack-c2 libbz2-1.0
                  libaudit1 libstdc++6 libcpp-httplib0.18 libsimdjson25 iptables" ;;
    *) echo "deps.sh: no package list for '$1' on '$VERSION_CODENAME'" >&2; exit 2 ;;
esac
apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null
rm -rf /var/lib/apt/lists/*
