#!/bin/sh
# Lays out /var/ossec of the TEST STAND-IN image with the official paths, owners and modes
# (wazuh-contract.md sections 2, 6 and 7). Run once by the Dockerfile.
set -eu
src=/opt/standin-src
O=/var/ossec

groupadd --system wazuh
useradd --system --gid wazuh --home-dir "$O" --shell /usr/sbin/nologin wazuh

d() { install -d -o "$1" -g "$2" -m "$3" "$4"; }
f() { install -o "$1" -g "$2" -m "$3" "$4" "$5"; }

d root wazuh 0750 "$O"
for sub in bin standin; do d root root 0750 "$O/$sub"; done
d root wazuh 0770 "$O/etc"
d root wazuh 0770 "$O/etc/rules"
d root wazuh 0770 "$O/etc/decoders"
d root wazuh 0750 "$O/ruleset"
d root wazuh 0750 "$O/ruleset/rules"
d root wazuh 0750 "$O/ruleset/decoders"
d root wazuh 0750 "$O/integrations"
d wazuh wazuh 0770 "$O/logs"
d wazuh wazuh 0750 "$O/logs/alerts"
d root wazuh 0750 "$O/queue"
d wazuh wazuh 0770 "$O/queue/sockets"
d root wazuh 0770 "$O/var"
d root wazuh 0770 "$O/var/run"
d root wazuh 0750 "$O/framework"
d root wazuh 0750 "$O/framework/python"
d root wazuh 0750 "$O/framework/python/bin"

f root wazuh 0660 "$src/etc/ossec.conf" "$O/etc/ossec.conf"
f wazuh wazuh 0660 "$src/etc/local_rules.xml" "$O/etc/rules/local_rules.xml"
f root wazuh 0640 "$src/ruleset/0490-virustotal_rules.xml" "$O/ruleset/rules/0490-virustotal_rules.xml"
f root root 0750 "$src/standin.py" "$O/standin/standin.py"
for p in wazuh-control wazuh-analysisd wazuh-integratord; do ln -s ../standin/standin.py "$O/bin/$p"; done

# Wazuh's embedded Python: here Debian's python3 with python3-requests.
ln -s /usr/bin/python3 "$O/framework/python/bin/python3"

for log in logs/alerts/alerts.json:0640 logs/ossec.log:0660 logs/integrations.log:0640; do
    install -o wazuh -g wazuh -m "${log#*:}" /dev/null "$O/${log%:*}"
done
echo "TEST STAND-IN for wazuh/wazuh-manager:4.14 - not Wazuh" > "$O/STANDIN"
