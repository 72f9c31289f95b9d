#!/bin/bash
# The first thing to run: installs what is missing, builds, runs the demos.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
exec scons -j2 demo "$@"
