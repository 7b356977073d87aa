#!/bin/sh
# Compiles Wazuh's manager daemons from Wazuh's source with Wazuh's own src/Makefile rules.
# Runs inside the image's build stage (Dockerfile), from the archives build.sh verified.
#
#   compile.sh VERSION      ->  /build/wazuh-VERSION/src with the programs below built
#
# `make deps` would download prebuilt libraries from Wazuh's servers. The programs built here
# link only their objects, libwazuh.a and libwazuhext.so; the libwazuh.a objects they use need
# cJSON (built from its pinned source by Wazuh's own rule) and OpenSSL, zlib, SQLite, libyaml,
# PCRE2, curl, msgpack, bzip2 and libaudit, taken from Debian's -dev packages through LIBS=.
set -eu
version=$1
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

# wm_syscollector.c (in libwazuh.a) includes <schema>_schema.h, which Wazuh's CMake build
# writes from schemas/<schema>.fbs (shared_modules/utils/flatbuffers/schemas/CMakeLists.txt):
# the schema's words on one line in a #define. 4.7 has no such step.
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

make -C "$src" -j"${JOBS:-2}" TARGET=server INSTALLDIR=/var/ossec \
    EXTERNAL_LIBS=external/cJSON/libcjson.a \
    LIBS="-lssl -lcrypto -lz -lsqlite3 -lyaml -lpcre2-8 -lcurl -lmsgpackc -lbz2 -laudit -lpthread" \
    wazuh-analysisd wazuh-integratord wazuh-execd libwazuhshared.so default-firewall-drop host-deny
