#!/bin/bash
# Proves the installed library is usable from outside the tree, as a user
# gets it: header, pkg-config files, soname, exported symbols, programs
# that run with no environment variables (the .pc file's rpath), static
# linking, actx-uv.h, and the man pages (one per exported function, each
# read by `man -l`, found by `man` through MANPATH).  The C
# program of README.md ("A minimal C program") is extracted from README.md
# and built and run as the README says, so the README cannot drift.
#
#   tests/install-check.sh PREFIX [DESTDIR]
#       check an install into PREFIX (a private prefix outside the system
#       library path), and, with DESTDIR, a staged install made with
#       `DESTDIR=DESTDIR PREFIX=/usr` (scons test does both)
#   tests/install-check.sh
#       install into a temporary prefix first, then check it
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "install-check: $*" >&2; exit 1; }

if [ $# -ge 1 ]; then
    prefix=$1
    destdir=${2:-}
else
    prefix=$work/prefix
    destdir=
    (cd "$top" && scons -Q install PREFIX="$prefix" >/dev/null)
fi
pcdir=$prefix/lib/pkgconfig
# Programs must find libactx.so.1 by themselves.
unset LD_LIBRARY_PATH

flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs actx)
case " $flags " in
*-Wl,-rpath,"$prefix"/lib*) ;;
*) fail "actx.pc of a private prefix carries no rpath: $flags" ;;
esac

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
    if (actx_version() != ((ACTX_VERSION_MAJOR << 16) |
                           (ACTX_VERSION_MINOR << 8) | ACTX_VERSION_PATCH)) {
        fprintf(stderr, "install-check: header and library disagree: %s\n",
                actx_version_string());
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
    fail "binary does not depend on libactx.so.1"
fi
"$work/check"

# README.md's example, byte for byte: the first ```c block after the
# heading "## A minimal C program", built with the README's command line.
awk '/^## A minimal C program/ { sec = 1; next }
     sec && /^```c$/ { code = 1; next }
     code && /^```$/ { exit }
     code { print }' "$top/README.md" >"$work/prog.c"
[ -s "$work/prog.c" ] || fail "no C example found in README.md"
# shellcheck disable=SC2046  # as the README writes it
(cd "$work" && ${CC:-cc} prog.c $(PKG_CONFIG_PATH=$pcdir pkg-config \
    --cflags --libs actx) -o prog)
out=$("$work/prog")
[ "$out" = 42 ] || fail "README example printed '$out', not 42"

# libactx-glib, where it was built: a GSource drives a timer.
if [ -f "$pcdir/actx-glib.pc" ]; then
    cat >"$work/glib.c" <<'C'
#include <actx-glib.h>

static void fire(void *opaque)
{
    g_main_loop_quit(opaque);
}

int main(void)
{
    GMainLoop *ml = g_main_loop_new(NULL, FALSE);
    GSource *src = actx_g_source_new();
    actx_timer *t = actx_timer_new(fire, ml);

    g_source_attach(src, NULL);
    actx_timer_mod(t, actx_now_ns() + 1000000);
    g_main_loop_run(ml); /* returns once the actx timer fired */
    actx_timer_free(t);
    g_source_destroy(src);
    g_source_unref(src);
    g_main_loop_unref(ml);
    return 0;
}
C
    # shellcheck disable=SC2046
    (cd "$work" && ${CC:-cc} -Wall -Wextra -Werror glib.c -o glib \
        $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs actx-glib))
    "$work/glib"
fi

# Static linking as docs/building.md gives it: libactx.a named, the
# private libraries from pkg-config --static; the program needs no
# libactx at run time.
# shellcheck disable=SC2046
(cd "$work" && ${CC:-cc} check.c -o check-static $(PKG_CONFIG_PATH=$pcdir \
    pkg-config --cflags actx) $(PKG_CONFIG_PATH=$pcdir pkg-config --static \
    --libs actx | sed 's/-lactx\b/-l:libactx.a/'))
if readelf -d "$work/check-static" | grep -q 'NEEDED.*libactx'; then
    fail "the statically linked program still needs libactx.so"
fi
"$work/check-static"

# actx-uv.h, installed beside actx.h: a libuv program drives an actx timer.
if pkg-config --exists libuv; then
    cat >"$work/uv.c" <<'C'
#include <actx-uv.h>

static void fire(void *opaque)
{
    actx_uv_close(opaque);
}

int main(void)
{
    uv_loop_t *loop = uv_default_loop();
    actx_uv glue;
    actx_timer *t = actx_timer_new(fire, &glue);

    if (actx_uv_start(&glue, loop) < 0) {
        return 1;
    }
    actx_timer_mod(t, actx_now_ns() + 1000000);
    uv_run(loop, UV_RUN_DEFAULT); /* returns once the glue is closed */
    actx_timer_free(t);
    return uv_loop_close(loop) != 0;
}
C
    # shellcheck disable=SC2046
    (cd "$work" && ${CC:-cc} -Wall -Wextra -Werror uv.c -o uv \
        $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs actx libuv))
    "$work/uv"
fi

# Man pages: one per exported function, each readable by `man -l` without
# a warning, and found by name through MANPATH.
mandir=$prefix/share/man
[ -f "$mandir/man3/actx.3" ] || fail "no man page actx.3 in $mandir/man3"
for sym in $(nm -D --defined-only "$prefix/lib/libactx.so.1" |
             awk '$2 == "T" { print $3 }'); do
    [ -f "$mandir/man3/$sym.3" ] || fail "no man page for $sym"
done
for page in "$mandir"/man3/*.3; do
    case $(basename "$page") in
    actx*.3 | ACTX_*.3) ;;
    *) fail "man page not named after actx: $page" ;;
    esac
    err=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null) ||
        fail "man -l $page failed: $err"
    [ -z "$err" ] || fail "man -l $page: $err"
done
# man-db's lookup by name (no database needed for a MANPATH directory).
found=$(MANPATH=$mandir man -w actx_push)
[ "$found" = "$mandir/man3/actx_push.3" ] ||
    fail "MANPATH=$mandir man -w actx_push found '$found'"
page=$(MANPATH=$mandir MANWIDTH=80 man actx_push 2>/dev/null)
case $page in
*'Owner thread'*) ;;
*) fail "man actx_push does not state its thread rule" ;;
esac

# DESTDIR staging: files under DESTDIR/usr, and the files name /usr (no
# staging path, and no rpath for a system library directory).
if [ -n "$destdir" ]; then
    for f in usr/lib/libactx.so.1 usr/lib/libactx.a usr/include/actx.h \
        usr/include/actx-uv.h usr/share/man/man3/actx_push.3 \
        usr/lib/pkgconfig/actx.pc; do
        [ -e "$destdir/$f" ] || fail "DESTDIR install lacks $f"
    done
    pc=$destdir/usr/lib/pkgconfig/actx.pc
    grep -qx 'prefix=/usr' "$pc" || fail "$pc: prefix is not /usr"
    if grep -q -e "$destdir" -e rpath "$destdir"/usr/lib/pkgconfig/*.pc; then
        fail "a staged .pc names the staging directory or an rpath"
    fi
fi
echo "install-check: OK ($prefix: $flags${destdir:+; DESTDIR staging})"
