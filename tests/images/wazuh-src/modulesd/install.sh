#!/bin/sh
# wazuh-modulesd in localhost/wazuh-manager-src:<version>-cluster (Dockerfile, stages
# build-modulesd and cluster; build.sh --cluster). Wazuh's own daemon, built by Wazuh's own
# src/Makefile rule in the manager's built tree (the build-manager stage: libwazuh.a, which holds
# every module's objects, and libwazuhext.so are there already), so only main.c is compiled and
# linked. Its database module is what a cluster needs of it: it copies client.keys into
# wazuh-db on a worker (analysisd sends Active Response only to the agents wazuh-db knows), and
# the shared groups (etc/shared/default) into wazuh-db on every node (remoted assigns a new
# agent to `default`). Two choices, both Wazuh's switches or Wazuh's installer's, none a patch:
#   - DISABLE_JEMALLOC=yes: Wazuh links the server's modulesd with its bundled jemalloc, one of
#     the libraries `make deps` downloads; glibc's malloc instead;
#   - the modules whose shared libraries Wazuh builds with its top-level CMake (syscollector,
#     vulnerability scanner, content manager, inventory harvester: they need submodules and
#     libraries the archives lack) are not built: modulesd logs that it cannot load them and
#     runs the others (../README.md).
#
#   install.sh build VERSION   in the build stage: /build/modulesd.tar, the files to add
#   install.sh runtime         in the image: unpack them over the manager's
set -eu
control=/var/ossec/bin/wazuh-control

case ${1:-} in
build)
    version=$2
    src=/build/wazuh-$version/src
    # the manager's build (compile.sh), with the same libraries
    multiarch=$(gcc -print-multiarch)
    msgpack=-lmsgpackc
    [ -e "/usr/lib/$multiarch/libmsgpack-c.so" ] && msgpack=-lmsgpack-c
    make -C "$src" -j"${JOBS:-2}" TARGET=server INSTALLDIR=/var/ossec DISABLE_JEMALLOC=yes \
        EXTERNAL_LIBS=external/cJSON/libcjson.a \
        LIBS="-lssl -lcrypto -lz -lsqlite3 -lyaml -lpcre2-8 -lcurl $msgpack -lbz2 -laudit -lpthread" wazuh-modulesd
    # As Wazuh's installer installs it (src/init/inst-functions.sh, InstallCommon); the line is
    # read from there, so that a change of owner or mode in Wazuh's installer is followed.
    line=$(grep -E '^[[:space:]]*\$\{INSTALL\} .* wazuh-modulesd \$\{INSTALLDIR\}/bin/?$' "$src/init/inst-functions.sh")
    [ "$(printf '%s\n' "$line" | wc -l)" = 1 ] || { echo "install.sh: no single install line for wazuh-modulesd in inst-functions.sh" >&2; exit 1; }
    # (the installer's variables, read by that line)
    # shellcheck disable=SC2034
    (cd "$src" && INSTALL=install INSTALLDIR=/var/ossec && eval "$line")
    # wazuh-control's list, cut to what was built (../install.sh), gains modulesd where Wazuh's
    # own list has it: right after clusterd (which cluster/install.sh adds), before every daemon
    # built
    tar -xJOf "/build/sources/wazuh-$version-src.tar.xz" "wazuh-$version/src/init/wazuh-server.sh" \
        | grep -q '^DAEMONS="wazuh-clusterd wazuh-modulesd ' \
        || { echo "install.sh: Wazuh's wazuh-server.sh does not list wazuh-modulesd right after wazuh-clusterd" >&2; exit 1; }
    grep -q '^DAEMONS="wazuh-modulesd ' "$control" || sed -i 's/^DAEMONS="/DAEMONS="wazuh-modulesd /' "$control"
    # built now: out of the list of what the installer wanted and this build does not make
    sed -i '/^wazuh-modulesd$/d' /var/ossec/NOT-BUILT
    tar -C / -cf /build/modulesd.tar var/ossec/bin/wazuh-modulesd var/ossec/bin/wazuh-control var/ossec/NOT-BUILT
    ;;
runtime)
    tar -C / -xpf /tmp/modulesd.tar
    grep -q '^DAEMONS="wazuh-modulesd ' "$control"
    if grep -q '^wazuh-modulesd$' /var/ossec/NOT-BUILT; then exit 1; fi
    /var/ossec/bin/wazuh-modulesd -t       # it loads its libraries and reads ossec.conf
    echo "install.sh: wazuh-modulesd installed; wazuh-control manages: $(sed -n 's/^DAEMONS="\(.*\)"$/\1/p' "$control")"
    ;;
*)
    echo "install.sh: build VERSION | runtime" >&2
    exit 2
    ;;
esac
