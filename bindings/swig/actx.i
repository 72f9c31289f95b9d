/*
 * actx.i - the SWIG backend of the actx Python package.
 *
 * Wraps the public header (runtime/include/actx.h) for the plain calls and
 * adds small C helpers (actx_py_*) for everything that takes a callback or
 * an object pointer:
 *   - pointers cross into Python as integers (unsigned long long), which is
 *     several times cheaper than SWIG pointer proxies on the hot paths;
 *   - a Python object passed as a callback's opaque is INCREF'd for as long
 *     as C can call back with it: until the call ran (actx_ctx_call), the
 *     done callback ran (requests) or the BH was deleted;
 *   - one trampoline per callback kind takes the GIL with
 *     PyGILState_Ensure (so it works on the owner thread, whose wrapper may
 *     or may not hold the GIL, and on pool threads); an exception raised by
 *     an owner-thread callback is handed to actx's store hook, which keeps
 *     it for re-raising when the C call returns;
 *   - after actx's atexit hook ran, no trampoline enters Python.
 *
 * Threads: the module is built with threads="1" so blocking wrappers
 * (actx_flush, actx_thread_shutdown, actx_py_poll_block, actx_poll_timeout,
 * actx_py_flush_slice) release the GIL; every call that
 * cannot block is %nothread (keeps the GIL: ~60% cheaper, and callbacks run
 * inside a non-blocking poll do not have to take it again).
 */
%module(package="actx", threads="1") actx_swig

%{
#include "actx.h"
#include "actx_py_flush.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static PyObject *actx_py_store_hook; /* store_exception(exc) */
static PyObject *actx_py_done_hook;  /* run_done(request, ret) */
static PyObject *actx_py_work_hook;  /* run_work(request) -> int */
static volatile int actx_py_exiting_flag;

#define PTR(x) ((void *)(uintptr_t)(x))
#define INT(p) ((long long)(uintptr_t)(p))

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
        r = PyObject_CallOneArg(actx_py_store_hook, v);
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

/* o is (fn, args). */
static void actx_py_run_tuple(PyObject *o)
{
    PyObject *r = PyObject_Call(PyTuple_GET_ITEM(o, 0), PyTuple_GET_ITEM(o, 1),
                                NULL);
    if (r) {
        Py_DECREF(r);
    } else {
        actx_py_report();
    }
}

/* actx_ctx_call: owns one reference to opaque. */
static void actx_py_tramp_call(void *opaque)
{
    PyGILState_STATE g;

    if (actx_py_exiting_flag) {
        return;
    }
    g = PyGILState_Ensure();
    actx_py_run_tuple((PyObject *)opaque);
    Py_DECREF((PyObject *)opaque);
    PyGILState_Release(g);
}

/* BH: the BH owns the reference; hold one more while the callback runs
 * (it may delete its own BH). */
static void actx_py_tramp_bh(void *opaque)
{
    PyGILState_STATE g;

    if (actx_py_exiting_flag) {
        return;
    }
    g = PyGILState_Ensure();
    Py_INCREF((PyObject *)opaque);
    actx_py_run_tuple((PyObject *)opaque);
    Py_DECREF((PyObject *)opaque);
    PyGILState_Release(g);
}

/* Request done: owns the reference taken at submission. */
static void actx_py_tramp_done(void *opaque, long ret)
{
    PyGILState_STATE g;
    PyObject *r;

    if (actx_py_exiting_flag) {
        return;
    }
    g = PyGILState_Ensure();
    r = PyObject_CallFunction(actx_py_done_hook, "Ol", (PyObject *)opaque,
                              ret);
    if (r) {
        Py_DECREF(r);
    } else {
        actx_py_report();
    }
    Py_DECREF((PyObject *)opaque);
    PyGILState_Release(g);
}

/* Pool thread: the request's reference is held until done. */
static long actx_py_tramp_work(void *opaque)
{
    PyGILState_STATE g;
    PyObject *r;
    long v = -1;

    if (actx_py_exiting_flag) {
        return -ECANCELED;
    }
    g = PyGILState_Ensure();
    r = PyObject_CallOneArg(actx_py_work_hook, (PyObject *)opaque);
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

/*
 * A completion refused because its owner thread's runtime shut down: done
 * never runs, so drop the reference it would have dropped.  Other done
 * functions (the cffi backend's, a C user's) go to the previous hook.
 */
static actx_refused_fn *actx_py_prev_refused;

static void actx_py_tramp_refused(actx_done_fn *done, void *opaque, long ret)
{
    PyGILState_STATE g;

    if (done != actx_py_tramp_done) {
        if (actx_py_prev_refused) {
            actx_py_prev_refused(done, opaque, ret);
        }
        return;
    }
    if (actx_py_exiting_flag) {
        return;
    }
    g = PyGILState_Ensure();
    Py_DECREF((PyObject *)opaque);
    PyGILState_Release(g);
}

static void actx_py_set_hooks(PyObject *store, PyObject *done, PyObject *work)
{
    Py_XINCREF(store);
    Py_XINCREF(done);
    Py_XINCREF(work);
    actx_py_store_hook = store;
    actx_py_done_hook = done;
    actx_py_work_hook = work;
    if (!actx_py_prev_refused) {
        actx_py_prev_refused = actx_set_refused_hook(actx_py_tramp_refused);
    }
}

static void actx_py_set_exiting(void)
{
    actx_py_exiting_flag = 1;
}

/* Pointer results: the pointer as an integer, or -errno. */
static long long actx_py_bh_new(PyObject *obj)
{
    actx_bh *bh = actx_bh_new(actx_py_tramp_bh, obj);

    if (!bh) {
        return -errno;
    }
    Py_INCREF(obj);
    return INT(bh);
}

static void actx_py_bh_schedule(unsigned long long bh)
{
    actx_bh_schedule(PTR(bh));
}

static void actx_py_bh_schedule_idle(unsigned long long bh)
{
    actx_bh_schedule_idle(PTR(bh));
}

static void actx_py_bh_cancel(unsigned long long bh)
{
    actx_bh_cancel(PTR(bh));
}

static void actx_py_bh_delete(unsigned long long bh, PyObject *obj)
{
    actx_bh_delete(PTR(bh));
    Py_DECREF(obj);
}

static long long actx_py_req_result(actx_req *req, PyObject *obj)
{
    if (!req) {
        int e = errno;

        Py_DECREF(obj);
        return -e;
    }
    return INT(req);
}

static long long actx_py_submit(PyObject *req)
{
    Py_INCREF(req);
    return actx_py_req_result(actx_submit(actx_py_tramp_work,
                                          actx_py_tramp_done, req), req);
}

/* buf: a bytearray the request keeps alive and never resizes. */
static long long actx_py_pread(int fd, PyObject *buf, long long off,
                               PyObject *req)
{
    if (!PyByteArray_Check(buf)) {
        return -EINVAL;
    }
    Py_INCREF(req);
    return actx_py_req_result(
        actx_aio_pread(fd, PyByteArray_AS_STRING(buf),
                       (size_t)PyByteArray_GET_SIZE(buf), (off_t)off,
                       actx_py_tramp_done, req), req);
}

/* data: a bytes object the request keeps alive. */
static long long actx_py_pwrite(int fd, PyObject *data, long long off,
                                PyObject *req)
{
    if (!PyBytes_Check(data)) {
        return -EINVAL;
    }
    Py_INCREF(req);
    return actx_py_req_result(
        actx_aio_pwrite(fd, PyBytes_AS_STRING(data),
                        (size_t)PyBytes_GET_SIZE(data), (off_t)off,
                        actx_py_tramp_done, req), req);
}

static long long actx_py_fsync(int fd, PyObject *req)
{
    Py_INCREF(req);
    return actx_py_req_result(actx_aio_fsync(fd, actx_py_tramp_done, req),
                              req);
}

/* actx_poll(true), releasing the GIL (actx_poll itself keeps it). */
static int actx_py_poll_block(void)
{
    return actx_poll(true);
}

static int actx_py_req_cancel(unsigned long long req)
{
    return actx_req_cancel(PTR(req));
}

static long long actx_py_ctx_current(void)
{
    actx_ctx *c = actx_ctx_current();

    return c ? INT(c) : -errno;
}

static void actx_py_ctx_unref(unsigned long long c)
{
    actx_ctx_unref(PTR(c));
}

static int actx_py_ctx_id(unsigned long long c)
{
    return actx_ctx_id(PTR(c));
}

static int actx_py_ctx_call(unsigned long long c, PyObject *obj)
{
    int r;

    Py_INCREF(obj);
    r = actx_ctx_call(PTR(c), actx_py_tramp_call, obj);
    if (r < 0) {
        Py_DECREF(obj);
    }
    return r;
}

/* Timers and fd handlers: opaque is a callable taking no argument (a
 * context's timers' _fire; an fd entry's _read or _write), owned by its Python
 * object; one more reference is held while it runs (it may free itself). */
static void actx_py_tramp_noargs(PyObject *fn)
{
    PyGILState_STATE g;
    PyObject *r;

    if (actx_py_exiting_flag) {
        return;
    }
    g = PyGILState_Ensure();
    Py_INCREF(fn);
    r = PyObject_CallNoArgs(fn);
    if (r) {
        Py_DECREF(r);
    } else {
        actx_py_report();
    }
    Py_DECREF(fn);
    PyGILState_Release(g);
}

/* call_later/call_at: one C timer per context (its heap of Python timers
 * is python/actx/_core.py's _Timers); its expiry calls fn(). */
static void actx_py_tramp_ctimer(void *opaque)
{
    actx_py_tramp_noargs(opaque);
}

static void actx_py_tramp_fd_read(void *opaque)
{
    actx_py_tramp_noargs(PyTuple_GET_ITEM((PyObject *)opaque, 0));
}

static void actx_py_tramp_fd_write(void *opaque)
{
    actx_py_tramp_noargs(PyTuple_GET_ITEM((PyObject *)opaque, 1));
}

/* A disarmed timer of the current context that calls fn() when it
 * expires, holding a reference to fn until actx_py_ctimer_free; or -errno. */
static long long actx_py_ctimer_new(PyObject *fn)
{
    actx_timer *t = actx_timer_new(actx_py_tramp_ctimer, fn);

    if (!t) {
        return -errno;
    }
    Py_INCREF(fn);
    return INT(t);
}

static void actx_py_ctimer_mod(unsigned long long t, unsigned long long ns)
{
    actx_timer_mod(PTR(t), ns);
}

static void actx_py_ctimer_del(unsigned long long t)
{
    actx_timer_del(PTR(t));
}

static void actx_py_ctimer_free(unsigned long long t, PyObject *fn)
{
    actx_timer_free(PTR(t));
    Py_DECREF(fn);
}

/* pair: a (read, write) tuple its fd entry keeps alive while registered. */
static int actx_py_set_fd(int fd, PyObject *pair, int rd, int wr)
{
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        return -EINVAL;
    }
    return actx_set_fd_handler(fd, rd ? actx_py_tramp_fd_read : NULL,
                               wr ? actx_py_tramp_fd_write : NULL, pair);
}

static int actx_py_stop(unsigned long long c)
{
    return actx_stop(PTR(c));
}

static PyObject *actx_py_stats(void)
{
    struct actx_stats st;

    actx_stats(&st);
    return Py_BuildValue(
        "{s:i,s:l,s:k,s:k,s:k,s:k,s:k,s:k,s:k,s:k,s:k,s:l,s:k,s:k,s:i}",
        "depth", st.depth, "live_bhs", st.live_bhs, "bh_runs", st.bh_runs,
        "completions_run", st.completions_run, "completions_deferred",
        st.completions_deferred, "calls_run", st.calls_run, "mailbox_msgs",
        st.mailbox_msgs, "wakeups", st.wakeups, "sleeps", st.sleeps,
        "posts_refused", st.posts_refused, "posts_refused_all",
        st.posts_refused_all, "outstanding", st.outstanding, "fd_errors",
        st.fd_errors, "timers_fired", st.timers_fired, "io_backend",
        st.io_backend);
}
%}

%include <stdint.i>

/* Everything below keeps the GIL except the calls that may block. */
%nothread;
%thread actx_flush;
%thread actx_thread_shutdown;
%thread actx_py_poll_block;
%thread actx_py_flush_slice;
%thread actx_poll_timeout;

/* Calls that take callbacks or object pointers go through the helpers. */
%ignore actx_bh_new;
%ignore actx_bh_schedule;
%ignore actx_bh_schedule_idle;
%ignore actx_bh_cancel;
%ignore actx_bh_delete;
%ignore actx_req_new;
%ignore actx_req_complete;
%ignore actx_submit;
%ignore actx_aio_pread;
%ignore actx_aio_pwrite;
%ignore actx_aio_fsync;
%ignore actx_req_cancel;
%ignore actx_run;
%ignore actx_stop;
%ignore actx_ctx_current;
%ignore actx_ctx_ref;
%ignore actx_ctx_unref;
%ignore actx_ctx_id;
%ignore actx_ctx_call;
%ignore actx_set_fd_handler;
%ignore actx_timer_new;
%ignore actx_timer_mod;
%ignore actx_timer_del;
%ignore actx_timer_free;
%ignore actx_stats;
%ignore actx_dump;

%include "actx.h"

void actx_py_set_hooks(PyObject *store, PyObject *done, PyObject *work);
void actx_py_set_exiting(void);
long long actx_py_bh_new(PyObject *obj);
void actx_py_bh_schedule(unsigned long long bh);
void actx_py_bh_schedule_idle(unsigned long long bh);
void actx_py_bh_cancel(unsigned long long bh);
void actx_py_bh_delete(unsigned long long bh, PyObject *obj);
long long actx_py_submit(PyObject *req);
long long actx_py_pread(int fd, PyObject *buf, long long off, PyObject *req);
long long actx_py_pwrite(int fd, PyObject *data, long long off,
                         PyObject *req);
long long actx_py_fsync(int fd, PyObject *req);
int actx_py_req_cancel(unsigned long long req);
int actx_py_poll_block(void);
long long actx_py_ctx_current(void);
void actx_py_ctx_unref(unsigned long long c);
int actx_py_ctx_id(unsigned long long c);
int actx_py_ctx_call(unsigned long long c, PyObject *obj);
int actx_py_stop(unsigned long long c);
long long actx_py_ctimer_new(PyObject *fn);
void actx_py_ctimer_mod(unsigned long long t, unsigned long long ns);
void actx_py_ctimer_del(unsigned long long t);
void actx_py_ctimer_free(unsigned long long t, PyObject *fn);
int actx_py_set_fd(int fd, PyObject *pair, int rd, int wr);
int actx_py_flush_slice(int slice_ms);
PyObject *actx_py_stats(void);
