#!/bin/sh
# wazuh-clusterd in localhost/wazuh-manager-src:<version>-cluster (Dockerfile, stages
# build-cluster and cluster; build.sh --cluster). Wazuh's framework and API are Python: they are
# installed as Wazuh's src/Makefile installs them (install_framework, install_api: the packages
# `wazuh` and `api` into the framework's Python; `make -C framework install`: the scripts and
# their bin/ wrappers, wazuh-clusterd among them), with two differences, both ours:
#   - the framework's Python is a venv of Debian's python3 that sees Debian's packages
#     (python3-requests, which the integration uses), not Wazuh's embedded CPython, holding the
#     libraries of requirements.txt, which build.sh installed from hash-pinned wheels;
#   - asyncio-coroutine.patch, so that clusterd imports on Python 3.11 and later.
#
#   install.sh build VERSION   in the build stage: /build/cluster.tar, the files to add
#   install.sh runtime         in the image: unpack them beside the manager's, owners and modes
#                              as Wazuh's, and wazuh-clusterd in wazuh-control's daemons
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=/var/ossec/framework/python
site=$python/lib/python3.13/site-packages

case ${1:-} in
build)
    version=$2
    cd /build
    # the framework from Wazuh's archive, the API from its own (it unpacks over the first)
    tar -xJf "$here/sources/wazuh-$version-src.tar.xz" "wazuh-$version/framework"
    tar -xJf "$here/sources/wazuh-$version-api.tar.xz" "wazuh-$version/api"
    patch -d "wazuh-$version" -p1 --forward --quiet < "$here/asyncio-coroutine.patch"
    # The framework's Python runs as $python/bin/python3 (Wazuh's wrappers): a venv's
    # interpreter finds its venv by that path, so the venv is made where it will run.
    python3 -m venv --without-pip --system-site-packages "$python"
    [ -d "$site" ] || { echo "install.sh: the venv has no $site (not Python 3.13?)" >&2; exit 1; }
    cp -r "$here/site-packages/." "$site/"
    # setup.py's packages (find_namespace_packages without the tests) and their data files
    cp -r "wazuh-$version/framework/wazuh" "wazuh-$version/api/api" "$site/"
    find "$site/wazuh" "$site/api" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} +
    # Wazuh's own `make install` of the framework's scripts and their bin/ wrappers
    groupadd --system wazuh
    install -d -o root -g wazuh -m 0750 /var/ossec/bin      # (the manager's installer made it)
    make -s -C "wazuh-$version/framework" install INSTALLDIR=/var/ossec
    [ -x /var/ossec/bin/wazuh-clusterd ] || { echo "install.sh: make install left no wazuh-clusterd" >&2; exit 1; }
    tar -C / -cf /build/cluster.tar var/ossec
    ;;
runtime)
    # the manager's framework/python was a link to Debian's python3: the venv replaces it. Files
    # the manager already has stay its own (--skip-old-files): only the framework is added.
    rm -rf "$python"
    tar -C / --skip-old-files -xpf /tmp/cluster.tar
    # (tar restores the group by its name; Wazuh's install_framework: root:wazuh, o=-)
    chown -R root:wazuh /var/ossec/framework
    chmod -R o=- /var/ossec/framework
    # wazuh-control's list, cut to what was built (../install.sh), gains clusterd where Wazuh's
    # own list has it: first (it is started last and stopped first)
    control=/var/ossec/bin/wazuh-control
    grep -q '^DAEMONS="wazuh-clusterd ' "$control" || sed -i 's/^DAEMONS="/DAEMONS="wazuh-clusterd /' "$control"
    grep -q '^DAEMONS="wazuh-clusterd ' "$control"
    "$python/bin/python3" -c 'import wazuh.core.cluster.master, wazuh.core.cluster.worker'
    echo "install.sh: wazuh-clusterd installed; wazuh-control manages: $(sed -n 's/^DAEMONS="\(.*\)"$/\1/p' "$control")"
    ;;
*)
    echo "install.sh: build VERSION | runtime" >&2
    exit 2
    ;;
esac
