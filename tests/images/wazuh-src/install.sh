#!/bin/sh
# Installs the compiled manager or agent into /var/ossec with Wazuh's own installer functions
# (src/init/inst-functions.sh: InstallServer or InstallAgent, which run InstallCommon), the way
# Wazuh's install.sh does after its build. Runs in the image's build stages after compile.sh.
#
#   install.sh VERSION server|agent
#
# Wazuh's code decides every directory, owner and mode. Two things differ, both printed:
#   - a program this partial build does not make is skipped (bin/install beside this file) and
#     listed in /var/ossec/NOT-BUILT; wazuh-control's daemon list is cut to the programs built;
#   - MAKEBIN=true skips the three make calls that install the embedded Python, the framework
#     and the API (their sources need downloads); the image links Debian's python3 instead.
# The configuration is the package's: gen_ossec.sh for this Debian release, then
# add_localfiles.sh, as wazuh-packages' postinst writes it. The manager gets authd's
# certificate as install.sh makes it (SSL_CERT=yes).
set -eu
version=$1
target=$2
top=/build/wazuh-$version
here=$(cd "$(dirname "$0")" && pwd)
case $target in
    server) control=init/wazuh-server.sh; type=manager ;;
    agent) control=init/wazuh-client.sh; type=agent ;;
    *) echo "install.sh: server or agent, not '$target'" >&2; exit 2 ;;
esac

# The daemons wazuh-control starts: its own list, cut to what was built, order kept.
cd "$top/src"
built=""
# The list is one line; its words are the daemons.
# shellcheck disable=SC2013
for daemon in $(sed -n 's/^DAEMONS="\(.*\)"$/\1/p' "$control"); do
    if [ -x "$daemon" ]; then built="$built $daemon"; fi
done
built=${built# }
[ -n "$built" ] || { echo "install.sh: no daemon was built" >&2; exit 1; }
sed -i "s/^DAEMONS=\".*\"$/DAEMONS=\"$built\"/" "$control"
grep -q "^DAEMONS=\"$built\"$" "$control"
echo "install.sh: wazuh-control manages: $built"

# The agent reads sshd's log (add_localfiles.sh adds the logs that exist, as on a Debian host
# with rsyslog).
if [ "$target" = agent ]; then
    mkdir -p /var/log && touch /var/log/auth.log
fi
cd "$top"
. /etc/os-release
./gen_ossec.sh conf "$type" debian "$VERSION_ID" /var/ossec > etc/ossec.mc
./add_localfiles.sh /var/ossec >> etc/ossec.mc

# As install.sh: its helpers are sourced from the top, then it enters src/ to install.
# Wazuh's installer is not written for `set -eu`; what it installed is checked after it.
set +eu
: > "$here/not-built"
export NOT_BUILT_LIST="$here/not-built"
PATH="$here/bin:$PATH"
# The installer's own variables, read by its functions sourced below (from Wazuh's tree, not
# visible to the linter).
# shellcheck disable=SC2034
{
    MAKEBIN=true
    NUNAME=$(uname)
    update_only=no
    DOWNLOAD_CONTENT=no
    SSL_CERT=yes
}
# shellcheck source=/dev/null
. ./src/init/dist-detect.sh
# shellcheck source=/dev/null
. ./src/init/shared.sh
# shared.sh sets these to a manager in /var/ossec: set them after it.
# shellcheck disable=SC2034
{
    INSTYPE=$target
    INSTALLDIR=/var/ossec
}
# shellcheck source=/dev/null
. ./src/init/inst-functions.sh
# shellcheck source=/dev/null
. ./src/init/wazuh/wazuh.sh
cd src
if [ "$target" = server ]; then InstallServer; else InstallAgent; fi
set -eu
case $target in
    server) programs="bin/wazuh-analysisd bin/wazuh-integratord bin/wazuh-db bin/wazuh-remoted bin/wazuh-authd
                      lib/libwazuhext.so etc/sslmanager.cert etc/sslmanager.key" ;;
    agent) programs="bin/wazuh-agentd bin/wazuh-logcollector bin/agent-auth" ;;
esac
for program in bin/wazuh-control bin/wazuh-execd lib/libwazuhshared.so active-response/bin/firewall-drop \
               active-response/bin/host-deny etc/ossec.conf $programs; do
    [ -e "/var/ossec/$program" ] || { echo "install.sh: the installer left no /var/ossec/$program" >&2; exit 1; }
done
sort -u "$here/not-built" | install -m 0440 -o root -g wazuh /dev/stdin /var/ossec/NOT-BUILT
/var/ossec/bin/wazuh-control info
