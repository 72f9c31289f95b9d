"""Generate the C source of actx's cffi backend (API mode, out-of-line).

Usage: build_actx.py ACTX_H ACTX_PY_H OUT_C

The cdef is taken from the public header itself (every ACTX_EXTERN
declaration that cffi can express, and struct actx_stats), so the one
header stays the single description of the C API; the generated C includes
actx.h, so the compiler checks every declaration against it.

The extension is compiled and linked by SCons against the shared
libactx.so.1 (never the static library: one copy of the runtime's
thread-local state per process).

Callbacks: the C helpers and trampolines are bindings/common/actx_py.h,
shared with the SWIG binding; here only how they enter Python (the
`extern "Python+C"` functions defined with @ffi.def_extern in
actx/_impl/_backend_cffi.py).
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


def helpers_cdef(text):
    '''The ACTX_PY_API declarations of bindings/common/actx_py.h (the C
    helpers both bindings share) and its struct actx_py_q.'''
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    out = [re.search(r'struct actx_py_q\s*\{.*?\};', text,
                     flags=re.S).group(0)]
    for m in re.finditer(r'^ACTX_PY_API\s+([^;]*;)', text, flags=re.S | re.M):
        out.append(' '.join(m.group(1).split()))
    return '\n'.join(out)


# How the shared helpers enter Python: cffi's extern "Python" functions
# (defined with @ffi.def_extern in actx/_impl/_backend_cffi.py; cffi takes the
# GIL itself, also on pool threads).  A one-shot opaque is a handle that
# Python keeps in a set, so C holds no reference of its own.  Requests are
# the shared helpers' own (Request objects, made through the functions
# actx_py_export adds to this module: no cffi call, the GIL kept).
MODULE = 'actx._impl._actx_cffi'
TRAMPOLINES_CDEF = '''
int actx_py_export(void);
extern "Python+C" void _actx_py_call(void *opaque);
extern "Python+C" void _actx_py_bh(void *opaque);
extern "Python+C" void _actx_py_drain(void *opaque);
extern "Python+C" void _actx_py_fd_read(void *opaque);
extern "Python+C" void _actx_py_fd_write(void *opaque);
extern "Python+C" void _actx_py_log(int level, const char *msg);
'''

TRAMPOLINES_C = r'''
#include "actx.h"

#define ACTX_PY_CFFI_MODULE "%s"

static void _actx_py_call(void *opaque);
static void _actx_py_bh(void *opaque);
static void _actx_py_drain(void *opaque);
static void _actx_py_fd_read(void *opaque);
static void _actx_py_fd_write(void *opaque);
static void _actx_py_log(int level, const char *msg);

#define actx_py_enter_call _actx_py_call
#define actx_py_enter_bh _actx_py_bh
#define actx_py_enter_drain _actx_py_drain
#define actx_py_enter_log _actx_py_log
#define actx_py_enter_fd(o, wr) \
    ((wr) ? _actx_py_fd_write(o) : _actx_py_fd_read(o))
#define ACTX_PY_KEEP(o) ((void)(o))
#define ACTX_PY_DROP(o) ((void)(o))

#include "actx_py.h"
''' % MODULE


def main():
    hdr, helpers, out = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(hdr) as f:
        cdef = header_cdef(f.read())
    with open(helpers) as f:
        cdef += '\n' + helpers_cdef(f.read())
    ffi = cffi.FFI()
    ffi.cdef(cdef + TRAMPOLINES_CDEF)
    ffi.set_source(MODULE, TRAMPOLINES_C)
    ffi.emit_c_code(out)


if __name__ == '__main__':
    main()
