#!/usr/bin/env bash
# Builds the TEST STAND-IN manager image offline: make standin-image.
# On the Debian bookworm base of ../base.sh (debootstrap + docker import), then docker build of
# Dockerfile with tests/images/ as the context (the stand-in and /init, shared with the
# from-source image). A rebuild with no change takes seconds (layer cache).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/images/base.sh
. "$here/../base.sh"
image=${STANDIN_IMAGE:-localhost/wazuh-manager-standin:4.14}

need_docker
lock_builds
ensure_base
docker build --quiet --tag "$image" --build-arg BASE="$BASE_IMAGE" -f "$here/Dockerfile" "$here/.." >/dev/null
echo "build.sh: $image built (TEST STAND-IN, not Wazuh)"
