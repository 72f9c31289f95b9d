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
extern "Python+C" void _actx_py_drain(void *opaque);
extern "Python+C" void _actx_py_refused(void *opaque);
extern "Python+C" void _actx_py_fd_read(void *opaque);
extern "Python+C" void _actx_py_fd_write(void *opaque);
int actx_py_set_fd(int fd, void *opaque, int rd, int wr);
void actx_py_install_refused(actx_done_fn *done);

struct actx_py_q { intptr_t state; actx_ctx *ctx; void *py; };
int actx_py_q_kick(struct actx_py_q *q);
void actx_py_q_reset(struct actx_py_q *q);

void actx_py_call_c(void *opaque);
void actx_py_bh_c(void *opaque);
void actx_py_done_c(void *opaque, long ret);
long actx_py_work_c(void *opaque);
void actx_py_set_exiting(void);
int actx_py_exiting(void);
int actx_py_flush_slice(int slice_ms);
uintptr_t actx_py_key(void *p);
'''

TRAMPOLINES_C = r'''
#include "actx.h"
#include "actx_py_flush.h"
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static volatile int actx_py_exiting_flag;

static void _actx_py_call(void *opaque);
static void _actx_py_bh(void *opaque);
static void _actx_py_done(void *opaque, long ret);
static long _actx_py_work(void *opaque);
static void _actx_py_drain(void *opaque);
static void _actx_py_refused(void *opaque);
static void _actx_py_fd_read(void *opaque);
static void _actx_py_fd_write(void *opaque);

/*
 * Coalesced cross-thread calls (ContextHandle.call_soon).  Calling into C
 * from cffi always drops the GIL, which under contention costs a GIL
 * hand-off per call; so a handle keeps its calls in a Python deque and
 * posts one drain call (actx_ctx_call) for many of them.  The state word
 * says whether a drain is accepted and has not started yet:
 *   IDLE    nothing posted: the next call_soon must post (kick);
 *   POSTED  a drain is accepted by the runtime and will take every call
 *           appended before it starts: call_soon needs no C call at all
 *           (it reads the word through cffi, without dropping the GIL);
 *   DEAD    a post was refused (EPIPE): the owner's runtime shut down;
 *   other   the address of a kick in progress, which holds the right to
 *           post: others wait for its outcome, so nobody is told
 *           "accepted" before the runtime accepted.
 * The drain resets the word to IDLE *before* it takes calls, so a call
 * appended after that finds IDLE and posts again.  It does so in Python,
 * with the GIL: the handle's memory (owned by its Python object) is freed
 * only while the word is IDLE or DEAD, i.e. never while a drain is
 * accepted and has not reset it.
 */
#define Q_IDLE 0
#define Q_POSTED 2
#define Q_DEAD 3

struct actx_py_q { intptr_t state; actx_ctx *ctx; void *py; };

static void actx_py_drain_c(void *opaque);

static int actx_py_q_kick(struct actx_py_q *q)
{
    for (;;) {
        intptr_t s = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        char me;

        if (s == Q_POSTED) {
            return 0;
        }
        if (s == Q_DEAD) {
            return -EPIPE;
        }
        if (s != Q_IDLE) {
            sched_yield(); /* another kick is posting: wait for it */
            continue;
        }
        /* Acq-rel: pairs with the drain's reset and other kicks. */
        if (!__atomic_compare_exchange_n(&q->state, &s, (intptr_t)&me,
                                         false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            continue;
        }
        int r = actx_ctx_call(q->ctx, actx_py_drain_c, q);
        if (r < 0) {
            __atomic_store_n(&q->state, Q_DEAD, __ATOMIC_RELEASE);
            return r;
        }
        /* Fails if the drain already ran and reset the word: fine. */
        s = (intptr_t)&me;
        __atomic_compare_exchange_n(&q->state, &s, Q_POSTED, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return 0;
    }
}

static void actx_py_q_reset(struct actx_py_q *q)
{
    intptr_t s = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);

    /* The poster's mark included: its CAS to POSTED then fails. */
    while (s != Q_DEAD &&
           !__atomic_compare_exchange_n(&q->state, &s, Q_IDLE, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}

static void actx_py_drain_c(void *opaque)
{
    struct actx_py_q *q = opaque;

    if (!actx_py_exiting_flag) {
        _actx_py_drain(q->py);
    }
}
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

static void actx_py_fd_read_c(void *opaque)
{
    if (!actx_py_exiting_flag) {
        _actx_py_fd_read(opaque);
    }
}

static void actx_py_fd_write_c(void *opaque)
{
    if (!actx_py_exiting_flag) {
        _actx_py_fd_write(opaque);
    }
}

/* add_reader & co: one opaque (the fd's entry) for both directions. */
static int actx_py_set_fd(int fd, void *opaque, int rd, int wr)
{
    return actx_set_fd_handler(fd, rd ? actx_py_fd_read_c : NULL,
                               wr ? actx_py_fd_write_c : NULL, opaque);
}

static long actx_py_work_c(void *opaque)
{
    if (actx_py_exiting_flag) {
        return -ECANCELED;
    }
    return _actx_py_work(opaque);
}

/*
 * A completion refused because its owner thread's runtime shut down: done
 * never runs, so release the handle it would have released.  Other done
 * functions (the SWIG backend's, a C user's) go to the previous hook.
 */
static actx_refused_fn *actx_py_prev_refused;
static actx_done_fn *actx_py_done_ptr; /* the done Python passes to C */

static void actx_py_refused_c(actx_done_fn *done, void *opaque, long ret)
{
    if (done != actx_py_done_ptr) {
        if (actx_py_prev_refused) {
            actx_py_prev_refused(done, opaque, ret);
        }
        return;
    }
    if (!actx_py_exiting_flag) {
        _actx_py_refused(opaque);
    }
}

/* done: the pointer Python gives C as done (cffi's address of
 * actx_py_done_c, a generated wrapper, not actx_py_done_c itself). */
static void actx_py_install_refused(actx_done_fn *done)
{
    actx_py_done_ptr = done;
    actx_py_prev_refused = actx_set_refused_hook(actx_py_refused_c);
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
