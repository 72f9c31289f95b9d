#!/bin/bash
# Installs the actx Python package the ways a user would, from a clean copy
# of the tree, and checks each (part of `scons test` in debug, see
# bindings/SConscript):
#   1. pip: `pip install --no-build-isolation .` in a fresh
#      `venv --system-site-packages` builds a wheel that carries libactx.so.1
#      (liburing linked in; every library stripped, no build path);
#      the build writes nothing outside build/; `import actx` works with no
#      environment variables on both backends, from the venv's own copy;
#      then the whole pytest suite runs against that installed copy.
#   2. scons: `scons install PREFIX=<a venv>` (no mode=) builds and
#      installs the release build and puts the package where that prefix's
#      Python looks (it imports with no PYTHONPATH) and its extensions load
#      PREFIX/lib/libactx.so.1 (RUNPATH); a debug build's abort on one
#      actx_ctx_unref too many is not in what it installed.
#   3. one runtime per process: a C library linked against the installed
#      libactx.so.1, loaded after `import actx` (ctypes), and a C program
#      linked against it that embeds Python and imports the pip-installed
#      actx, each share one runtime (one libactx mapped, one context stack).
#
#   tests/python-install-check.sh
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONDONTWRITEBYTECODE=1
unset PYTHONPATH LD_LIBRARY_PATH LD_PRELOAD ACTX_BACKEND

say() { echo "python-install-check: $*"; }
fail() { echo "python-install-check: FAILED: $*" >&2; exit 1; }

# --- a clean copy: the files git would commit, as they are now -----------
src=$work/src
mkdir "$src"
(cd "$top" && git ls-files -z --cached --others --exclude-standard) |
    while IFS= read -r -d '' f; do
        if [ -e "$top/$f" ]; then
            printf '%s\0' "$f"
        fi
    done | (cd "$top" && xargs -0 cp --parents -t "$src")
(cd "$src" && find . -type f | sort) >"$work/before"

# --- 1. pip ----------------------------------------------------------------
venv=$work/venv
$py -m venv --system-site-packages "$venv"
(cd "$src" && "$venv/bin/pip" install --quiet --no-index \
    --no-build-isolation .) || fail "pip install"
(cd "$src" && find . -type f | sort) >"$work/after"
stray=$(comm -13 "$work/before" "$work/after" | grep -v '^\./build/' || true)
[ -z "$stray" ] || fail "pip's build left files outside build/: $stray"
platlib='import sysconfig; print(sysconfig.get_path("platlib"))'
site=$("$venv/bin/python" -c "$platlib")
# METADATA: the long description is README.md (the tree names no project
# URL, so there is none to give).
meta=$(echo "$site"/actx-*.dist-info/METADATA)
grep -q '^Description-Content-Type: text/markdown' "$meta" &&
    grep -qxF "$(head -n 1 "$src/README.md")" "$meta" ||
    fail "METADATA lacks the long description (README.md)"
# What the wheel ships: liburing linked into libactx.so.1 (no liburing.so.2
# needed where it is installed), and every library stripped, naming no
# path of the tree it was built in.
if readelf -d "$site/actx/_impl/libactx.so.1" | grep -q 'NEEDED.*liburing'; then
    fail "the wheel's libactx.so.1 needs liburing.so (not in the wheel)"
fi
for so in "$site"/actx/_impl/*.so*; do
    if readelf -S "$so" | grep -q -e '\.symtab' -e '\.debug_'; then
        fail "$so is not stripped"
    fi
    if grep -a -q -F -e "$src" -e "$top" "$so"; then
        fail "$so names a build path"
    fi
done
if nm -D --defined-only "$site/actx/_impl/libactx.so.1" | awk '{ print $3 }' |
        grep -v '^actx_' | grep -q .; then
    fail "the wheel's libactx.so.1 exports more than actx_* (liburing's?)"
fi

# The import check, run as `python check.py SITE LIBACTX`: actx from SITE,
# the one libactx mapped is LIBACTX, the backend asked for (or cffi).
cat >"$work/check.py" <<'PY'
import os
import sys
import warnings

warnings.simplefilter('error')  # a fallback warning would be a failure
import actx

site, lib = (os.path.realpath(p) for p in sys.argv[1:3])
assert os.path.realpath(actx.__file__) == os.path.join(
    site, 'actx', '__init__.py'), actx.__file__
with open('/proc/self/maps') as f:
    maps = {line.split()[-1] for line in f if '/libactx.so' in line}
assert {os.path.realpath(p) for p in maps} == {lib}, maps
assert actx.BACKEND == os.environ.get('ACTX_BACKEND', 'cffi'), actx.BACKEND
with actx.async_context() as ctx:
    assert actx.context_id() == ctx.id == 1
    assert actx.submit(pow, 3, 4).result() == 81
print(actx.BACKEND, actx.__version__, 'from', site)
PY
for b in cffi swig; do
    # No environment at all beyond the backend's name.
    (cd "$work" && env -i ACTX_BACKEND=$b "$venv/bin/python" check.py \
        "$site" "$site/actx/_impl/libactx.so.1") || fail "pip: import ($b)"
done
# The default (no ACTX_BACKEND) is cffi, without a warning.
(cd "$work" && env -i "$venv/bin/python" check.py "$site" \
    "$site/actx/_impl/libactx.so.1") || fail "pip: import (default)"

say "the pytest suite against the pip-installed package (each backend)"
for b in cffi swig; do
    (cd "$src" && ACTX_TEST_INSTALLED=$site ACTX_BACKEND=$b \
        ACTX_TEST_LIBACTX=$site/actx/_impl/libactx.so.1 \
        "$venv/bin/python" -m pytest -p no:cacheprovider -q tests/python) ||
        fail "pytest against the pip-installed package ($b)"
done

# --- 2. scons install into a venv's prefix --------------------------------
prefix=$work/prefix
$py -m venv --system-site-packages "$prefix"
# No mode=: `scons install` must install the release build.
(cd "$src" && scons -Q install PREFIX="$prefix" >/dev/null) ||
    fail "scons install"
[ -e "$src/build/release/runtime/libactx.a" ] && [ ! -e "$src/build/debug" ] ||
    fail "scons install did not build (only) the release build"
psite=$("$prefix/bin/python" -c "$platlib")
[ ! -e "$psite/actx/_impl/libactx.so.1" ] ||
    fail "scons install bundled a libactx.so.1 with the package"
for so in "$psite"/actx/_impl/_actx_*.so; do
    readelf -d "$so" | grep -q "RUNPATH.*\[$prefix/lib\]" ||
        fail "$so: RUNPATH is not $prefix/lib"
done
for b in cffi swig; do
    (cd "$work" && env -i ACTX_BACKEND=$b "$prefix/bin/python" check.py \
        "$psite" "$prefix/lib/libactx.so.1") || fail "scons: import ($b)"
done

# --- 3. one runtime per process -------------------------------------------
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
actx_flags=$(pkg-config --cflags --libs actx)

# The installed library is the release build: one unref too many is
# reported and the program goes on (a debug build aborts).
cat >"$work/unref.c" <<'C'
#include <actx.h>
int main(void)
{
    actx_ctx *h = actx_ctx_current();
    actx_ctx_unref(h);
    actx_ctx_unref(h);
    return 0;
}
C
# shellcheck disable=SC2086  # the flags must split into words
(cd "$work" && cc -std=gnu11 unref.c -o unref $actx_flags)
"$work/unref" 2>/dev/null || fail "the installed libactx is a debug build"

# (a) Python first: actx (the pip copy) loads its libactx.so.1, then a C
# library linked against the prefix's libactx.so.1 is loaded.
cat >"$work/peer.c" <<'C'
#include <actx.h>
int peer_push(void) { return actx_push(); }
int peer_pop(void) { return actx_pop(); }
int peer_context_id(void) { return actx_context_id(); }
C
# shellcheck disable=SC2086  # the flags must split into words
(cd "$work" && cc -std=gnu11 -Wall -Wextra -Werror -shared -fPIC peer.c \
    -o libpeer.so $actx_flags -Wl,-rpath,"$prefix/lib")
readelf -d "$work/libpeer.so" | grep -q 'NEEDED.*\[libactx\.so\.1\]' ||
    fail "libpeer.so does not depend on libactx.so.1"
cat >"$work/peer.py" <<'PY'
import ctypes
import os
import sys

import actx

peer = ctypes.CDLL(sys.argv[1])
ran = []
actx.current_context().call_soon(ran.append, 'root')  # belongs to the root
assert peer.peer_push() == 1            # C pushes on this thread's stack ...
assert actx.context_id() == 1           # ... which Python sees
actx.poll()
assert ran == [], 'a root callback ran inside the context C pushed'
with actx.async_context() as ctx:       # Python pushes on top of C's
    assert ctx.id == 2 and peer.peer_context_id() == 2
assert peer.peer_pop() == 0 and actx.context_id() == 0
actx.poll()
assert ran == ['root'], ran
with open('/proc/self/maps') as f:
    maps = {line.split()[-1] for line in f if '/libactx.so' in line}
assert len(maps) == 1, maps
print('one runtime (Python first, %s): %s' % (actx.BACKEND, maps.pop()))
PY
for b in cffi swig; do
    (cd "$work" && env -i ACTX_BACKEND=$b "$venv/bin/python" peer.py \
        "$work/libpeer.so") || fail "one runtime, Python first ($b)"
done

# (b) C first: a program linked against the prefix's libactx.so.1 pushes a
# context, then embeds Python, which imports the pip copy of actx.
cat >"$work/embed.c" <<'C'
#include <Python.h>
#include <actx.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2 || actx_push() != 1) {
        return 2;
    }
    Py_Initialize();
    FILE *f = fopen(argv[1], "r");
    int r = f ? PyRun_SimpleFileEx(f, argv[1], 1) : -1;
    if (Py_FinalizeEx() < 0 || r != 0) {
        return 1;
    }
    /* Python left one context of its own pushed on top of ours. */
    if (actx_context_id() != 2 || actx_pop() != 0 || actx_pop() != 0 ||
        actx_context_id() != 0) {
        fprintf(stderr, "embed: context stack not shared\n");
        return 1;
    }
    actx_thread_shutdown();
    return 0;
}
C
cat >"$work/embed.py" <<PY
import os, sys
sys.path.insert(0, '$site')
import actx
assert os.path.dirname(actx.__file__) == '$site/actx', actx.__file__
assert actx.context_id() == 1, actx.context_id()  # the context C pushed
assert actx.push() == 2
with open('/proc/self/maps') as f:
    maps = {line.split()[-1] for line in f if '/libactx.so' in line}
assert {os.path.realpath(p) for p in maps} == {
    os.path.realpath('$prefix/lib/libactx.so.1')}, maps
print('one runtime (C first, %s): %s' % (actx.BACKEND, maps.pop()))
PY
# shellcheck disable=SC2046,SC2086  # the flags must split into words
(cd "$work" && cc -std=gnu11 -Wall -Wextra embed.c -o embed \
    $(pkg-config --cflags --libs python3-embed) $actx_flags \
    -Wl,-rpath,"$prefix/lib")
for b in cffi swig; do
    (cd "$work" && env -i ACTX_BACKEND=$b ./embed embed.py) ||
        fail "one runtime, C first ($b)"
done

say "OK (pip wheel, scons install, one runtime per process)"
