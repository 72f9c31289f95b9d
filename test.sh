#!/bin/bash
# The project's test command: `scons test` (C and Python suites and every
# other check of the mode, see `scons -h`) in debug, then under
# ASan+UBSan, then under TSan.  Every mode runs even if an
# earlier one fails, so one run shows all failures; the exit status is
# non-zero if any mode failed.
set -uo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh || exit 1

failed=()
for mode in debug asan tsan; do
    echo "=== scons -j2 mode=$mode test"
    if ! scons -j2 mode="$mode" test; then
        failed+=("$mode")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "=== FAILED modes: ${failed[*]}"
    exit 1
fi
echo "=== all modes passed"
