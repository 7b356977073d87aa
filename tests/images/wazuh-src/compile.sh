#!/bin/sh
# Compiles Wazuh's manager or agent daemons from Wazuh's source with Wazuh's own src/Makefile
# rules. Runs inside the image's build stages (Dockerfile), from the archives build.sh verified.
#
#   compile.sh VERSION server   ->  /build/wazuh-VERSION/src with the manager's programs built
#   compile.sh VERSION agent    ->  the same tree with the agent's (TARGET=agent)
#
# `make deps` would download prebuilt libraries from Wazuh's servers. The programs built here
# link only their objects, libwazuh.a and libwazuhext.so (and, from 4.8 on, the manager's
# librouter.so); the libwazuh.a objects they use need cJSON (built from its pinned source by
# Wazuh's own rule) and OpenSSL, zlib, SQLite, libyaml, PCRE2, curl, msgpack, bzip2 and libaudit,
# taken from Debian's -dev packages through LIBS=.
set -eu
version=$1
target=$2
build=/build
src=$build/wazuh-$version/src

tar -C "$build" -xJf "$build/sources/wazuh-$version-src.tar.xz"
mkdir -p "$src/external/cJSON" "$src/external/audit-userspace"
tar -C "$src/external/cJSON" -xJf "$build/sources/cJSON-1.7.18.tar.xz"
# headers/audit_op.h includes libaudit's private headers: audit-userspace's lib/*.h.
tar -C "$src/external/audit-userspace" -xJf "$build/sources/audit-userspace-2.8.4-lib.tar.xz"

# Wazuh includes some external headers by a path into src/external: Debian's serve.
multiarch=$(gcc -print-multiarch)
mkdir -p "$src/external/curl" "$src/external/libpcre2" "$src/external/libyaml" \
         "$src/external/sqlite" "$src/external/zlib"
ln -sfn "/usr/include/$multiarch" "$src/external/curl/include"
ln -sfn /usr/include "$src/external/libpcre2/include"
ln -sfn /usr/include "$src/external/libyaml/include"
ln -sf /usr/include/sqlite3.h "$src/external/sqlite/sqlite3.h"
ln -sf /usr/include/zlib.h "$src/external/zlib/zlib.h"

# wm_syscollector.c (in libwazuh.a) and the router include <schema>_schema.h, which Wazuh's
# CMake build writes from schemas/<schema>.fbs (shared_modules/utils/flatbuffers/schemas/
# CMakeLists.txt): the schema's words on one line in a #define. 4.7 has no such step.
fbs=$src/shared_modules/utils/flatbuffers
if [ -d "$fbs/schemas" ]; then
    mkdir -p "$fbs/include"
    for schema in "$fbs"/schemas/*.fbs; do
        name=$(basename "$schema" .fbs)
        text=$(tr -s ' \t\r\n' ' ' < "$schema")
        printf '// This file was generated from %s , do not modify\n#ifndef %s_HEADER\n#define %s_HEADER\n#define %s_SCHEMA "%s"\n#endif // %s_HEADER\n' \
            "$schema" "$name" "$name" "$name" "$text" "$name" > "$fbs/include/${name}_schema.h"
    done
fi

# msgpack's library is libmsgpackc on bookworm, libmsgpack-c from msgpack-c 6 (trixie).
msgpack=-lmsgpackc
[ -e "/usr/lib/$multiarch/libmsgpack-c.so" ] && msgpack=-lmsgpack-c
wazuh_make() {
    make -C "$src" -j"${JOBS:-2}" TARGET="$target" INSTALLDIR=/var/ossec \
        EXTERNAL_LIBS=external/cJSON/libcjson.a \
        LIBS="-lssl -lcrypto -lz -lsqlite3 -lyaml -lpcre2-8 -lcurl $msgpack -lbz2 -laudit -lpthread" "$@"
}

if [ "$target" = agent ]; then
    # What an agent needs to enrol, ship logs and run Active Response: agentd, logcollector,
    # execd, agent-auth and the AR programs. (syscheckd needs features removed, syscollector
    # and modulesd libraries Wazuh bundles: not built.)
    wazuh_make wazuh-agentd wazuh-logcollector wazuh-execd agent-auth libwazuhshared.so \
        default-firewall-drop host-deny
    exit 0
fi

# From 4.8 on, the manager's daemons link Wazuh's C++ router (Makefile: WAZUH_LIBS += -lrouter).
if grep -q -- '-lrouter' "$src/Makefile"; then
    # flatbuffers 23.5.26 (Wazuh's pin) from its pinned source, with the parser option the
    # router sets (our patch; see its first lines), checked before anything uses it. Wazuh's
    # own rule and options, without flatc (the schemas are embedded as text, not compiled).
    mkdir -p "$src/external/flatbuffers"
    tar -C "$src/external/flatbuffers" --strip-components=1 -xJf "$build/sources/flatbuffers_23.5.26+dfsg.orig.tar.xz"
    patch -d "$src/external/flatbuffers" -p1 -s < "$build/patches/flatbuffers-zero-on-float-to-int.patch"
    (cd "$src/external/flatbuffers" && mkdir -p build && cd build \
        && cmake .. -DCMAKE_BUILD_TYPE=Release -DFLATBUFFERS_BUILD_TESTS=0 -DFLATBUFFERS_INSTALL=0 \
             -DCMAKE_POSITION_INDEPENDENT_CODE=1 -DFLATBUFFERS_BUILD_FLATC=0 >/dev/null \
        && make -j"${JOBS:-2}" flatbuffers >/dev/null)
    g++ -std=c++17 -O1 -I"$src/external/flatbuffers/include" "$build/patches/fb-zero-on-float.cpp" \
        "$src/external/flatbuffers/build/libflatbuffers.a" -o "$build/fb-zero-on-float"
    "$build/fb-zero-on-float"

    # The router's C++ libraries from Debian, at the paths Wazuh includes them by.
    mkdir -p "$src/external/cpp-httplib" "$src/external/simdjson"
    ln -sfn /usr/include/nlohmann "$src/external/nlohmann"
    ln -sf /usr/include/httplib.h "$src/external/cpp-httplib/httplib.h"
    ln -sfn /usr/include "$src/external/simdjson/include"

    # The router links libwazuhext.so. Configured on its own: Wazuh's top-level CMake needs the
    # http-request submodule, which the source archive lacks. Debian's cpp-httplib is a
    # compiled library: the defines of its cpp-httplib.pc keep the header matching it.
    wazuh_make libwazuhext.so
    cmake -S "$src/shared_modules/router" -B "$src/build/shared_modules/router" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CXX_FLAGS="-DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT -DCPPHTTPLIB_BROTLI_SUPPORT" \
        -DCMAKE_CXX_STANDARD_LIBRARIES=-lcpp-httplib >/dev/null
    make -C "$src/build/shared_modules/router" -j"${JOBS:-2}" router >/dev/null
fi

wazuh_make wazuh-analysisd wazuh-integratord wazuh-execd wazuh-db wazuh-remoted wazuh-authd \
    libwazuhshared.so default-firewall-drop host-deny
