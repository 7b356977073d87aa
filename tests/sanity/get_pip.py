"""Ours, not pip's: what ansible-test runs in place of get-pip.py, which it downloads from
ci-files.testing.ansible.com (unreachable here) to put pip into the empty virtual environments
its sanity tests create. It takes get-pip.py's command line (pip install options and packages,
plus get-pip's own --no-setuptools/--no-wheel) and installs exactly the packages asked for
(ansible-test pins pip==<version>) from the configured package index, with a pip first taken
from the interpreter's own ensurepip. tests/ansible_sanity.py copies it to the name ansible-test
looks for in its cache (~/.ansible/test/cache/get_pip_<version>.py)."""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}       # get-pip.py's own flags: no such packages wanted

# In its own process: ensurepip switches pip's configuration off (PIP_CONFIG_FILE=/dev/null),
# and the install must see the machine's package index.
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install",
                          *(arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY)]))
