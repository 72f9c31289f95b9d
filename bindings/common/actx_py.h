/*
 * actx_py.h - the C helpers of the actx Python package, written once for
 * both bindings: the cffi extension includes it in its generated source
 * (bindings/cffi/build_actx.py, which also takes its cdef from the
 * ACTX_PY_API declarations below) and the SWIG extension both includes it
 * and wraps its declarations (bindings/swig/actx.i, %include).
 *
 * The binding provides, before including this file, how C enters Python
 * for everything but requests (each called with the exit flag clear, on a
 * thread that has a Python thread state - pinned below if Python did not
 * start the thread; each takes the GIL itself):
 *   actx_py_enter_call(o)       a one-shot (fn, args), then release o;
 *   actx_py_enter_bh(o)         a BH's or a C timer's (fn, args);
 *   actx_py_enter_drain(o)      a coalesced queue's drain;
 *   actx_py_enter_fd(o, wr)     an fd entry's reader (0) or writer (1);
 *   actx_py_enter_log(lv, msg)  a runtime diagnostic (any thread);
 * and ACTX_PY_KEEP(o) / ACTX_PY_DROP(o), the reference a one-shot call's
 * opaque holds while C may call back with it (SWIG: the object's
 * refcount, GIL held; cffi: nothing, Python keeps the handle in a set).
 *
 * Requests are the same in both bindings (below, "Requests"): the opaque
 * is the Request object itself, with a reference, and the functions that
 * make one are called with the GIL held - under cffi not as cffi calls
 * (which drop the GIL) but as functions of the module's own
 * (actx_py_export).
 *
 * After actx's atexit hook ran (actx_py_set_exiting) no trampoline enters
 * Python: finalization must not race with a pool thread or a daemon
 * thread's loop.
 */
#ifndef ACTX_PY_H
#define ACTX_PY_H

#ifdef SWIG
#define ACTX_PY_API
#define ACTX_PY_REQ_API
#else
#define ACTX_PY_API static
#define ACTX_PY_REQ_API static
#include "actx.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#endif

/*
 * Coalesced cross-thread calls (ContextHandle.call_soon), the same for
 * both bindings: a handle keeps its calls in a Python deque and posts one
 * drain call (actx_ctx_call) for many of them.  The state word says
 * whether a drain is accepted and has not started yet:
 *   IDLE    nothing posted: the next call_soon must post (kick);
 *   POSTED  a drain is accepted by the runtime and will take every call
 *           appended before it starts: call_soon needs no post;
 *   DEAD    a post was refused (EPIPE): the owner's runtime shut down;
 *   other   the address of a kick in progress, which holds the right to
 *           post: others wait for its outcome, so nobody is told
 *           "accepted" before the runtime accepted.
 * The drain resets the word to IDLE *before* it takes calls, so a call
 * appended after that finds IDLE and posts again.  It does so in Python,
 * with the GIL: the queue is freed only while the word is IDLE or DEAD,
 * i.e. never while a drain is accepted and has not reset it.
 */
struct actx_py_q {
    intptr_t state;
    actx_ctx *ctx;
    void *py;
};

ACTX_PY_API void actx_py_set_exiting(void);
ACTX_PY_API int actx_py_exiting(void);
ACTX_PY_API struct actx_py_q *actx_py_q_new(actx_ctx *ctx, void *py);
ACTX_PY_API void actx_py_q_free(struct actx_py_q *q);
ACTX_PY_API int actx_py_q_state(struct actx_py_q *q);
ACTX_PY_API int actx_py_q_kick(struct actx_py_q *q);
ACTX_PY_API void actx_py_q_reset(struct actx_py_q *q);
ACTX_PY_API actx_bh *actx_py_bh_new(void *obj);
ACTX_PY_API actx_timer *actx_py_timer_new(void *obj);
ACTX_PY_API int actx_py_set_fd(int fd, void *obj, int rd, int wr);
ACTX_PY_API int actx_py_ctx_call(actx_ctx *ctx, void *obj);
/*
 * The request makers: obj is the Request object, called with the GIL held
 * (SWIG wraps them %nothread; cffi gets them through actx_py_export, not
 * its cdef, which takes only the ACTX_PY_API lines).
 */
ACTX_PY_REQ_API actx_req *actx_py_submit(void *obj);
ACTX_PY_REQ_API actx_req *actx_py_pread(int fd, void *buf, size_t n,
                                        long long off, void *obj);
ACTX_PY_REQ_API actx_req *actx_py_pwrite(int fd, const void *buf, size_t n,
                                         long long off, void *obj);
ACTX_PY_REQ_API actx_req *actx_py_fsync(int fd, void *obj);
ACTX_PY_REQ_API actx_req *actx_py_req_new(void *obj);
ACTX_PY_API void actx_py_install_refused(void);
ACTX_PY_API void actx_py_install_log(void);
ACTX_PY_API int actx_py_flush_slice(int slice_ms);
ACTX_PY_API int actx_py_poll_block(void);
ACTX_PY_API uintptr_t actx_py_key(void *p);

#ifndef SWIG

#define ACTX_PY_Q_IDLE 0
#define ACTX_PY_Q_POSTED 2
#define ACTX_PY_Q_DEAD 3

/* Set once by the exit hook, read by any thread entering Python. */
static _Atomic int actx_py_exiting_flag;

static void actx_py_set_exiting(void)
{
    actx_py_exiting_flag = 1;
}

static int actx_py_exiting(void)
{
    return actx_py_exiting_flag;
}

/*
 * Threads Python did not start (pool workers, a C thread's loop) keep one
 * Python thread state for their life.  PyGILState_Ensure/Release on such
 * a thread, with no state kept in between, create one and delete it again
 * at every call (a malloc, an mmap of its frame stack, a gettid, and a
 * munmap whose TLB shoot-down interrupts the other CPUs): per submitted
 * job, more than the job.  cffi's callbacks keep a state of their own
 * but free a dead thread's only when a new thread first calls into
 * Python, so its threading.local() data (a per-thread connection) would
 * outlive a retired worker.  So before C first enters Python on such a
 * thread, both bindings pin a state here: one PyGILState_Ensure that is
 * never released (the GIL is dropped, the state kept); later calls only
 * take and drop the GIL.  A thread-specific key's destructor deletes the
 * state when the thread ends; once Python is exiting it leaves the state
 * to finalization.
 */
#ifdef Py_LIMITED_API
/*
 * cffi compiles against the limited API, which leaves this out; every
 * CPython since 3.9 (the package's oldest) exports it.
 */
PyAPI_FUNC(void) PyThreadState_DeleteCurrent(void);
#endif
static pthread_key_t actx_py_pin_key;
static int actx_py_pin_ok; /* the key exists */
static pthread_once_t actx_py_pin_once = PTHREAD_ONCE_INIT;

/*
 * The key's destructor, at thread exit.  The state is the key's value:
 * glibc clears every thread-specific value before it calls destructors,
 * CPython's own (PyGILState_GetThisThreadState) included.
 */
static void actx_py_unpin(void *ts)
{
    if (actx_py_exiting_flag || !Py_IsInitialized()) {
        return;
    }
    PyEval_RestoreThread((PyThreadState *)ts);
    PyThreadState_Clear((PyThreadState *)ts);
    PyThreadState_DeleteCurrent(); /* and drops the GIL */
}

static void actx_py_pin_init(void)
{
    actx_py_pin_ok = pthread_key_create(&actx_py_pin_key, actx_py_unpin) == 0;
}

/* A thread with no Python state, GIL not held: make and pin its state. */
static void actx_py_pin(void)
{
    pthread_once(&actx_py_pin_once, actx_py_pin_init);
    if (!actx_py_pin_ok) {
        return; /* no destructor would drop it: no pin */
    }
    (void)PyGILState_Ensure(); /* makes the state; never released */
    if (pthread_setspecific(actx_py_pin_key, PyEval_SaveThread()) != 0) {
        PyEval_RestoreThread(PyGILState_GetThisThreadState());
        PyGILState_Release(PyGILState_UNLOCKED); /* deletes it again */
    }
}

/*
 * Before C enters Python on this thread: false once Python is exiting;
 * else the thread has a Python state (pinned if Python did not start it).
 */
static inline bool actx_py_may_enter(void)
{
    if (actx_py_exiting_flag) {
        return false;
    }
    if (PyGILState_GetThisThreadState() == NULL) {
        actx_py_pin();
    }
    return true;
}

static inline uintptr_t actx_py_key(void *p)
{
    return (uintptr_t)p;
}

static void actx_py_call_c(void *opaque)
{
    if (actx_py_may_enter()) {
        actx_py_enter_call(opaque);
    }
}

static void actx_py_bh_c(void *opaque)
{
    if (actx_py_may_enter()) {
        actx_py_enter_bh(opaque);
    }
}

/*
 * Requests.  The opaque is the Request object, one reference held from
 * the request maker until done ran (or was refused); done and work enter
 * Python through the hooks actx_py_set_req_hooks installs:
 *   store(exc)          keeps an exception for the API call to raise;
 *   done(request, ret)  a request's done, on its owner thread;
 *   work(request)       a submit work function, on a pool thread: 0, or
 *                       -1 when it raised (kept on the request);
 *   refused(request)    its completion was refused (its owner's runtime
 *                       shut down first), on the completing thread: done
 *                       will never run, so the request fails there.
 * Everything here uses only the limited API cffi compiles against.
 */
static PyObject *actx_py_store_hook;
static PyObject *actx_py_done_hook;
static PyObject *actx_py_work_hook;
static PyObject *actx_py_refused_hook;

static void actx_py_set_req_hooks(PyObject *store, PyObject *done,
                                  PyObject *work, PyObject *refused)
{
    Py_XINCREF(store);
    Py_XINCREF(done);
    Py_XINCREF(work);
    Py_XINCREF(refused);
    actx_py_store_hook = store;
    actx_py_done_hook = done;
    actx_py_work_hook = work;
    actx_py_refused_hook = refused;
}

/* fn(arg), GIL held. */
static inline PyObject *actx_py_call1(PyObject *fn, PyObject *arg)
{
#ifdef Py_LIMITED_API
    return PyObject_CallFunctionObjArgs(fn, arg, NULL);
#else
    return PyObject_CallOneArg(fn, arg);
#endif
}

/* GIL held, an exception set: hand it to the store hook (or report it). */
static void actx_py_report(void)
{
    PyObject *t, *v, *tb, *r = NULL;

    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v && tb) {
        PyException_SetTraceback(v, tb);
    }
    if (v && actx_py_store_hook) {
        r = actx_py_call1(actx_py_store_hook, v);
    }
    if (!r) {
        if (!PyErr_Occurred()) {
            PyErr_Restore(t, v, tb);
            t = v = tb = NULL;
        }
        PyErr_WriteUnraisable(actx_py_store_hook);
    }
    Py_XDECREF(r);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
}

/* GIL held; r: a call's result. */
static void actx_py_check(PyObject *r)
{
    if (r) {
        Py_DECREF(r);
    } else {
        actx_py_report();
    }
}

static void actx_py_done_c(void *opaque, long ret)
{
    PyGILState_STATE g;

    if (!actx_py_may_enter()) {
        return;
    }
    g = PyGILState_Ensure();
    actx_py_check(PyObject_CallFunction(actx_py_done_hook, "Ol",
                                        (PyObject *)opaque, ret));
    Py_DECREF((PyObject *)opaque);
    PyGILState_Release(g);
}

static long actx_py_work_c(void *opaque)
{
    PyGILState_STATE g;
    PyObject *r;
    long v = -1;

    if (!actx_py_may_enter()) {
        return -ECANCELED;
    }
    g = PyGILState_Ensure();
    r = actx_py_call1(actx_py_work_hook, (PyObject *)opaque);
    if (r) {
        v = PyLong_AsLong(r);
        Py_DECREF(r);
    }
    if (PyErr_Occurred()) {
        PyErr_WriteUnraisable(actx_py_work_hook);
        v = -1;
    }
    PyGILState_Release(g);
    return v;
}

static void actx_py_fd_read_c(void *opaque)
{
    if (actx_py_may_enter()) {
        actx_py_enter_fd(opaque, 0);
    }
}

static void actx_py_fd_write_c(void *opaque)
{
    if (actx_py_may_enter()) {
        actx_py_enter_fd(opaque, 1);
    }
}

static void actx_py_drain_c(void *opaque)
{
    struct actx_py_q *q = opaque;

    if (q->py && actx_py_may_enter()) {
        actx_py_enter_drain(q->py);
    }
}

static struct actx_py_q *actx_py_q_new(actx_ctx *ctx, void *py)
{
    struct actx_py_q *q = calloc(1, sizeof(*q));

    if (q) {
        q->ctx = ctx;
        q->py = py;
    }
    return q;
}

static void actx_py_q_free(struct actx_py_q *q)
{
    free(q);
}

/* The state word as IDLE, POSTED or DEAD; 1 while a kick is posting. */
static int actx_py_q_state(struct actx_py_q *q)
{
    intptr_t s = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);

    if (s == ACTX_PY_Q_IDLE || s == ACTX_PY_Q_POSTED || s == ACTX_PY_Q_DEAD) {
        return (int)s;
    }
    return 1;
}

static int actx_py_q_kick(struct actx_py_q *q)
{
    for (;;) {
        intptr_t s = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);
        char me;

        if (s == ACTX_PY_Q_POSTED) {
            return 0;
        }
        if (s == ACTX_PY_Q_DEAD) {
            return -EPIPE;
        }
        if (s != ACTX_PY_Q_IDLE) {
            sched_yield(); /* another kick is posting: wait for it */
            continue;
        }
        /* Acq-rel: pairs with the drain's reset and other kicks. */
        if (!__atomic_compare_exchange_n(&q->state, &s, (intptr_t)&me, false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            continue;
        }
        int r = actx_ctx_call(q->ctx, actx_py_drain_c, q);
        if (r < 0) {
            __atomic_store_n(&q->state, ACTX_PY_Q_DEAD, __ATOMIC_RELEASE);
            return r;
        }
        /* Fails if the drain already ran and reset the word: fine. */
        s = (intptr_t)&me;
        __atomic_compare_exchange_n(&q->state, &s, ACTX_PY_Q_POSTED, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
        return 0;
    }
}

static void actx_py_q_reset(struct actx_py_q *q)
{
    intptr_t s = __atomic_load_n(&q->state, __ATOMIC_ACQUIRE);

    /* The poster's mark included: its CAS to POSTED then fails. */
    while (s != ACTX_PY_Q_DEAD &&
           !__atomic_compare_exchange_n(&q->state, &s, ACTX_PY_Q_IDLE, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}

/* A BH whose opaque (fn, args) is owned by its Python object. */
static actx_bh *actx_py_bh_new(void *obj)
{
    return actx_bh_new(actx_py_bh_c, obj);
}

/* call_later/call_at: one C timer per context, firing (fn, ()). */
static actx_timer *actx_py_timer_new(void *obj)
{
    return actx_timer_new(actx_py_bh_c, obj);
}

/* add_reader & co: one opaque (the fd's entry) for both directions. */
static int actx_py_set_fd(int fd, void *obj, int rd, int wr)
{
    return actx_set_fd_handler(fd, rd ? actx_py_fd_read_c : NULL,
                               wr ? actx_py_fd_write_c : NULL, obj);
}

static int actx_py_ctx_call(actx_ctx *ctx, void *obj)
{
    int r;

    ACTX_PY_KEEP(obj);
    r = actx_ctx_call(ctx, actx_py_call_c, obj);
    if (r < 0) {
        ACTX_PY_DROP(obj);
    }
    return r;
}

/* A request made (non-NULL) holds obj until its done ran or was refused. */
static actx_req *actx_py_req_made(actx_req *req, void *obj)
{
    if (!req) {
        int e = errno;

        Py_DECREF((PyObject *)obj);
        errno = e;
    }
    return req;
}

static actx_req *actx_py_submit(void *obj)
{
    Py_INCREF((PyObject *)obj);
    return actx_py_req_made(actx_submit(actx_py_work_c, actx_py_done_c, obj),
                            obj);
}

static actx_req *actx_py_pread(int fd, void *buf, size_t n, long long off,
                               void *obj)
{
    Py_INCREF((PyObject *)obj);
    return actx_py_req_made(
        actx_aio_pread(fd, buf, n, (off_t)off, actx_py_done_c, obj), obj);
}

static actx_req *actx_py_pwrite(int fd, const void *buf, size_t n,
                                long long off, void *obj)
{
    Py_INCREF((PyObject *)obj);
    return actx_py_req_made(
        actx_aio_pwrite(fd, buf, n, (off_t)off, actx_py_done_c, obj), obj);
}

static actx_req *actx_py_fsync(int fd, void *obj)
{
    Py_INCREF((PyObject *)obj);
    return actx_py_req_made(actx_aio_fsync(fd, actx_py_done_c, obj), obj);
}

/* actx.new_request(): completed by actx_req_complete from any thread. */
static actx_req *actx_py_req_new(void *obj)
{
    Py_INCREF((PyObject *)obj);
    return actx_py_req_made(actx_req_new(actx_py_done_c, obj), obj);
}

/*
 * A completion refused because its owner thread's runtime shut down: done
 * never runs, so the request fails here (the refused hook: its waiters on
 * other threads wake) and what done would have released is released.
 * Other done functions (the other binding's, a C user's) go to the
 * previous hook.
 */
static actx_refused_fn *actx_py_prev_refused;

static void actx_py_refused_c(actx_done_fn *done, void *opaque, long ret)
{
    if (done != actx_py_done_c) {
        if (actx_py_prev_refused) {
            actx_py_prev_refused(done, opaque, ret);
        }
        return;
    }
    if (actx_py_may_enter()) {
        PyGILState_STATE g = PyGILState_Ensure();

        if (actx_py_refused_hook) {
            PyObject *r =
                actx_py_call1(actx_py_refused_hook, (PyObject *)opaque);

            if (r) {
                Py_DECREF(r);
            } else {
                PyErr_WriteUnraisable(actx_py_refused_hook);
            }
        }
        Py_DECREF((PyObject *)opaque);
        PyGILState_Release(g);
    }
}

static void actx_py_install_refused(void)
{
    if (!actx_py_prev_refused) {
        actx_py_prev_refused = actx_set_refused_hook(actx_py_refused_c);
    }
}

/*
 * Runtime diagnostics go to Python's logging (logger "actx"), on the
 * thread that reports them; once Python is finalizing, to stderr as the
 * default handler would.
 */
static void actx_py_log_c(int level, const char *msg, void *opaque)
{
    (void)opaque;
    if (!actx_py_may_enter()) {
        if (level != ACTX_LOG_DEBUG) {
            fprintf(stderr, "actx: %s\n", msg);
        }
        return;
    }
    actx_py_enter_log(level, msg);
}

static void actx_py_install_log(void)
{
    actx_set_log_handler(actx_py_log_c, NULL);
}

/* actx_poll(true), for a binding whose plain actx_poll keeps the GIL. */
static int actx_py_poll_block(void)
{
    return actx_poll(true);
}

/*
 * actx_flush() for the main thread, where Python must get control back to
 * run its signal handlers (Ctrl-C).  It waits inside actx_poll_timeout()
 * (adaptive polling included) and returns 1 after at most slice_ms or when
 * a signal interrupted the sleep; the caller then calls again.  0 once the
 * current context has nothing left to flush, -EDEADLK when it never can,
 * -ETIMEDOUT once its effective deadline passed (actx_push_deadline).
 * Owner thread only.
 */
static int actx_py_flush_slice(int slice_ms)
{
    uint64_t end = actx_now_ns() + (uint64_t)slice_ms * 1000000u;

    for (;;) {
        uint64_t now;
        int r;

        if (!actx_flush_pending()) {
            return 0;
        }
        now = actx_now_ns();
        if (now >= end) {
            return 1;
        }
        r = actx_poll_timeout((int64_t)(end - now));
        if (r == -ETIMEDOUT && actx_now_ns() >= actx_deadline()) {
            return -ETIMEDOUT; /* the context's deadline, not the slice */
        }
        if (r == -ETIMEDOUT || r == -EINTR) {
            return 1;
        }
        if (r < 0) {
            return r;
        }
        if (r == 0 && actx_flush_pending() && !actx_can_progress()) {
            return -EDEADLK;
        }
    }
}

#ifdef ACTX_PY_CFFI_MODULE
/*
 * cffi: the request makers as functions of the extension module itself
 * (ACTX_PY_CFFI_MODULE, its import name).  A cffi call releases the GIL
 * around the C function, and a pool thread waiting for the GIL (to run
 * the previous job) takes it then: a submit loop paid a GIL hand-off per
 * submit.  These keep the GIL, as SWIG's %nothread wrappers do.  A
 * pointer comes back as an int; NULL raises OSError(errno).  Buffers come
 * as an address and a length (the caller holds the buffer, as
 * ffi.from_buffer, until done).
 */
static PyObject *actx_py_req_result(actx_req *req)
{
    if (!req) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromVoidPtr(req);
}

static PyObject *actx_py_m_submit(PyObject *self, PyObject *req)
{
    (void)self;
    return actx_py_req_result(actx_py_submit(req));
}

static PyObject *actx_py_m_req_new(PyObject *self, PyObject *req)
{
    (void)self;
    return actx_py_req_result(actx_py_req_new(req));
}

static PyObject *actx_py_m_fsync(PyObject *self, PyObject *args)
{
    PyObject *req;
    int fd;

    (void)self;
    if (!PyArg_ParseTuple(args, "iO", &fd, &req)) {
        return NULL;
    }
    return actx_py_req_result(actx_py_fsync(fd, req));
}

/* (fd, address, length, offset, request): pread or pwrite. */
static PyObject *actx_py_m_rw(PyObject *args, bool wr)
{
    unsigned long long addr;
    Py_ssize_t n;
    long long off;
    PyObject *req;
    int fd;

    if (!PyArg_ParseTuple(args, "iKnLO", &fd, &addr, &n, &off, &req)) {
        return NULL;
    }
    if (wr) {
        return actx_py_req_result(actx_py_pwrite(
            fd, (const void *)(uintptr_t)addr, (size_t)n, off, req));
    }
    return actx_py_req_result(
        actx_py_pread(fd, (void *)(uintptr_t)addr, (size_t)n, off, req));
}

static PyObject *actx_py_m_pread(PyObject *self, PyObject *args)
{
    (void)self;
    return actx_py_m_rw(args, false);
}

static PyObject *actx_py_m_pwrite(PyObject *self, PyObject *args)
{
    (void)self;
    return actx_py_m_rw(args, true);
}

static PyObject *actx_py_m_set_req_hooks(PyObject *self, PyObject *args)
{
    PyObject *store, *done, *work, *refused;

    (void)self;
    if (!PyArg_ParseTuple(args, "OOOO", &store, &done, &work, &refused)) {
        return NULL;
    }
    actx_py_set_req_hooks(store, done, work, refused);
    Py_RETURN_NONE;
}

static PyMethodDef actx_py_methods[] = {
    {"py_submit", actx_py_m_submit, METH_O, NULL},
    {"py_req_new", actx_py_m_req_new, METH_O, NULL},
    {"py_fsync", actx_py_m_fsync, METH_VARARGS, NULL},
    {"py_pread", actx_py_m_pread, METH_VARARGS, NULL},
    {"py_pwrite", actx_py_m_pwrite, METH_VARARGS, NULL},
    {"py_set_req_hooks", actx_py_m_set_req_hooks, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/*
 * A cffi call (GIL released): add actx_py_methods to the module.  0, or -1
 * with the Python error printed.
 */
static int actx_py_export(void)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *m = PyImport_ImportModule(ACTX_PY_CFFI_MODULE);
    int r = m ? 0 : -1;

    for (PyMethodDef *d = actx_py_methods; m && d->ml_name && r == 0; d++) {
        PyObject *f = PyCFunction_NewEx(d, NULL, NULL);

        r = f ? PyObject_SetAttrString(m, d->ml_name, f) : -1;
        Py_XDECREF(f);
    }
    if (r < 0) {
        PyErr_Print();
    }
    Py_XDECREF(m);
    PyGILState_Release(g);
    return r;
}
#endif /* ACTX_PY_CFFI_MODULE */

#endif /* SWIG */

#endif
