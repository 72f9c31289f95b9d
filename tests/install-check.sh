#!/bin/bash
# Proves the installed library is usable from outside the tree: header,
# pkg-config file, soname and exported symbols.
#
#   tests/install-check.sh PREFIX   check an existing install (scons test)
#   tests/install-check.sh          install into a temp prefix first
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ $# -ge 1 ]; then
    prefix=$1
else
    prefix=$work/prefix
    (cd "$top" && scons -Q install PREFIX="$prefix" >/dev/null)
fi

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs actx)

# Built in a directory of its own so no header of the tree can leak in.
cat >"$work/check.c" <<'C'
#include <actx.h>
#include <stdio.h>

int main(void)
{
    int id = actx_push();
    int depth = actx_context_id();
    int pop = actx_pop();
    int root = actx_context_id();

    if (id != 1 || depth != 1 || pop != 0 || root != 0) {
        fprintf(stderr, "install-check: push %d depth %d pop %d root %d\n",
                id, depth, pop, root);
        return 1;
    }
    return 0;
}
C
# shellcheck disable=SC2086  # $flags must split into words
(cd "$work" && ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror check.c -o check \
    $flags -pthread)

# The binary must have recorded the soname, not the versioned file name.
if ! readelf -d "$work/check" | grep -q 'NEEDED.*\[libactx\.so\.1\]'; then
    echo "install-check: binary does not depend on libactx.so.1" >&2
    exit 1
fi

LD_LIBRARY_PATH=$prefix/lib "$work/check"
echo "install-check: OK ($prefix: $flags)"
