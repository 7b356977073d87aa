#!/bin/sh
# Installs the compiled manager into /var/ossec with Wazuh's own installer functions
# (src/init/inst-functions.sh: InstallServer, which runs InstallLocal and InstallCommon), the
# way Wazuh's install.sh does after its build. Runs in the image's build stage after compile.sh.
#
#   install.sh VERSION
#
# Wazuh's code decides every directory, owner and mode. Two things differ, both printed:
#   - a program this partial build does not make is skipped (bin/install beside this file) and
#     listed in /var/ossec/NOT-BUILT; wazuh-control's daemon list is cut to the programs built;
#   - MAKEBIN=true skips the three make calls that install the embedded Python, the framework
#     and the API (their sources need downloads); the image links Debian's python3 instead.
# The configuration is the package's: gen_ossec.sh for a Debian 12 manager, then
# add_localfiles.sh, as wazuh-packages' postinst writes it.
set -eu
version=$1
top=/build/wazuh-$version
here=$(cd "$(dirname "$0")" && pwd)

# The daemons wazuh-control starts: its own list, cut to what was built, order kept.
cd "$top/src"
built=""
for daemon in $(sed -n 's/^DAEMONS="\(.*\)"$/\1/p' init/wazuh-server.sh); do
    if [ -x "$daemon" ]; then built="$built $daemon"; fi
done
built=${built# }
[ -n "$built" ] || { echo "install.sh: no daemon was built" >&2; exit 1; }
sed -i "s/^DAEMONS=\".*\"$/DAEMONS=\"$built\"/" init/wazuh-server.sh
grep -q "^DAEMONS=\"$built\"$" init/wazuh-server.sh
echo "install.sh: wazuh-control manages: $built"

cd "$top"
./gen_ossec.sh conf manager debian 12 /var/ossec > etc/ossec.mc
./add_localfiles.sh /var/ossec >> etc/ossec.mc

# As install.sh: its helpers are sourced from the top, then it enters src/ to install.
# Wazuh's installer is not written for `set -eu`; what it installed is checked after it.
set +eu
: > "$here/not-built"
export NOT_BUILT_LIST="$here/not-built"
PATH="$here/bin:$PATH"
INSTYPE=server
INSTALLDIR=/var/ossec
MAKEBIN=true
NUNAME=$(uname)
update_only=no
DOWNLOAD_CONTENT=no
. ./src/init/dist-detect.sh
. ./src/init/shared.sh
. ./src/init/inst-functions.sh
. ./src/init/wazuh/wazuh.sh
cd src
InstallServer
set -eu
for program in bin/wazuh-control bin/wazuh-analysisd bin/wazuh-integratord bin/wazuh-execd \
               lib/libwazuhext.so lib/libwazuhshared.so active-response/bin/firewall-drop \
               active-response/bin/host-deny etc/ossec.conf; do
    [ -e "/var/ossec/$program" ] || { echo "install.sh: InstallServer left no /var/ossec/$program" >&2; exit 1; }
done
sort -u "$here/not-built" | install -m 0440 -o root -g wazuh /dev/stdin /var/ossec/NOT-BUILT
/var/ossec/bin/wazuh-control info
