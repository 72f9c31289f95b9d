"""Generate the C source of actx's cffi backend (API mode, out-of-line).

Usage: build_actx.py ACTX_H OUT_C

The cdef is taken from the public header itself (every ACTX_EXTERN
declaration that cffi can express, and struct actx_stats), so the one
header stays the single description of the C API; the generated C includes
actx.h, so the compiler checks every declaration against it.

The extension is compiled and linked by SCons against the shared
libactx.so.1 (never the static library: one copy of the runtime's
thread-local state per process).

Callbacks: one C trampoline per callback kind.  Each checks the exit flag
(set by actx's atexit hook) before it takes the GIL, so nothing enters
Python once the interpreter has started to finalize; then it calls the
`extern "Python+C"` function defined with @ffi.def_extern in
actx/_backend_cffi.py.  cffi takes the GIL itself, also on pool threads.
"""
import re
import sys

import cffi

# Not expressible in a cdef (FILE *) or not used by the bindings.
SKIP = {'actx_dump'}


def header_cdef(text):
    """The declarations of actx.h that a cffi cdef accepts."""
    # Drop comments and preprocessor lines (the macro bodies included).
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    lines, cont = [], False
    for line in text.splitlines():
        if cont or line.lstrip().startswith('#'):
            cont = line.rstrip().endswith('\\')
            continue
        lines.append(line)
    text = '\n'.join(lines)

    out = ['typedef int... off_t;']
    for m in re.finditer(r'typedef[^;{]*;', text):
        out.append(m.group(0))
    m = re.search(r'struct actx_stats\s*\{.*?\};', text, flags=re.S)
    out.append(m.group(0))
    for m in re.finditer(r'ACTX_EXTERN\s+([^;]*;)', text, flags=re.S):
        decl = ' '.join(m.group(1).split())
        name = re.search(r'(\w+)\s*\(', decl).group(1)
        if name not in SKIP:
            out.append(decl)
    return '\n'.join(out)


TRAMPOLINES_CDEF = '''
extern "Python+C" void _actx_py_call(void *opaque);
extern "Python+C" void _actx_py_bh(void *opaque);
extern "Python+C" void _actx_py_done(void *opaque, long ret);
extern "Python+C" long _actx_py_work(void *opaque);

void actx_py_call_c(void *opaque);
void actx_py_bh_c(void *opaque);
void actx_py_done_c(void *opaque, long ret);
long actx_py_work_c(void *opaque);
void actx_py_set_exiting(void);
int actx_py_exiting(void);
uintptr_t actx_py_key(void *p);
'''

TRAMPOLINES_C = r'''
#include "actx.h"
#include <errno.h>
#include <stdint.h>

static volatile int actx_py_exiting_flag;

static void _actx_py_call(void *opaque);
static void _actx_py_bh(void *opaque);
static void _actx_py_done(void *opaque, long ret);
static long _actx_py_work(void *opaque);

/* Set by actx's atexit hook: from then on no callback enters Python. */
static void actx_py_set_exiting(void) { actx_py_exiting_flag = 1; }
static int actx_py_exiting(void) { return actx_py_exiting_flag; }
static uintptr_t actx_py_key(void *p) { return (uintptr_t)p; }

static void actx_py_call_c(void *opaque)
{
    if (!actx_py_exiting_flag) {
        _actx_py_call(opaque);
    }
}

static void actx_py_bh_c(void *opaque)
{
    if (!actx_py_exiting_flag) {
        _actx_py_bh(opaque);
    }
}

static void actx_py_done_c(void *opaque, long ret)
{
    if (!actx_py_exiting_flag) {
        _actx_py_done(opaque, ret);
    }
}

static long actx_py_work_c(void *opaque)
{
    if (actx_py_exiting_flag) {
        return -ECANCELED;
    }
    return _actx_py_work(opaque);
}
'''


def main():
    hdr, out = sys.argv[1], sys.argv[2]
    with open(hdr) as f:
        cdef = header_cdef(f.read())
    ffi = cffi.FFI()
    ffi.cdef(cdef + TRAMPOLINES_CDEF)
    ffi.set_source('actx._actx_cffi', TRAMPOLINES_C)
    ffi.emit_c_code(out)


if __name__ == '__main__':
    main()
