/*
 * actx.i - the SWIG backend of the actx Python package.
 *
 * Wraps the public header (runtime/include/actx.h) for the plain calls and
 * the C helpers shared with the cffi binding (bindings/common/actx_py.h)
 * for everything that takes a callback or an object:
 *   - pointers cross into Python as integers (typemaps below), which is
 *     several times cheaper than SWIG pointer proxies on the hot paths; a
 *     NULL pointer result raises OSError(errno);
 *   - a Python object passed as a one-shot callback's opaque is INCREF'd
 *     for as long as C can call back with it (ACTX_PY_KEEP): until the call
 *     ran, the done callback ran or was refused; a BH's, a timer's and an
 *     fd entry's opaque is owned by its Python object;
 *   - each way into Python takes the GIL with PyGILState_Ensure (so it
 *     works on the owner thread, whose wrapper may or may not hold the
 *     GIL, and on pool threads); an exception raised by an owner-thread
 *     callback is handed to actx's store hook, which keeps it for
 *     re-raising when the C call returns.
 *
 * Threads: the module is built with threads="1" so blocking wrappers
 * (actx_flush, actx_thread_shutdown, actx_py_poll_block, actx_poll_timeout,
 * actx_py_flush_slice, actx_cancel_context) release the GIL; every call that cannot block is
 * %nothread (keeps the GIL: ~60% cheaper, and callbacks run inside a
 * non-blocking poll do not have to take it again).
 */
%module(package="actx._impl", threads="1") actx_swig

%{
#include "actx.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static PyObject *actx_py_drain_hook; /* drain(poster) */
static PyObject *actx_py_rerun_hook; /* rerun_nested(run, args) */

/* Defined by actx_py.h, with the request hooks. */
static void actx_py_check(PyObject *r);

/* o is (fn, args). */
static void actx_py_run_tuple(PyObject *o)
{
    actx_py_check(PyObject_Call(PyTuple_GET_ITEM(o, 0),
                                PyTuple_GET_ITEM(o, 1), NULL));
}

static void actx_py_enter_call(void *opaque)
{
    PyGILState_STATE g = PyGILState_Ensure();

    actx_py_run_tuple((PyObject *)opaque);
    Py_DECREF((PyObject *)opaque);
    PyGILState_Release(g);
}

/*
 * A BH's (run, args) (or a C timer's) raised RuntimeError (set): a run
 * nested in a run of the same BH, which its Context's run refused, runs
 * again in a copy of that Context (_common.rerun_nested, python/actx/_impl/_common.py);
 * else the error stands.  Only this error path pays for the check.
 */
static PyObject *actx_py_rerun(PyObject *o)
{
    PyObject *et, *ev, *tb, *r;

    PyErr_Fetch(&et, &ev, &tb);
    r = PyObject_CallFunctionObjArgs(actx_py_rerun_hook,
                                     PyTuple_GET_ITEM(o, 0),
                                     PyTuple_GET_ITEM(o, 1), NULL);
    if (r == NULL || r == Py_True) {
        /* The rerun's own error, or it ran: the refusal is no error. */
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(tb);
        return r;
    }
    Py_DECREF(r);
    PyErr_Restore(et, ev, tb);
    return NULL;
}

/* Hold one more reference while it runs (it may delete its own BH). */
static void actx_py_enter_bh(void *opaque)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *o = (PyObject *)opaque, *r;

    Py_INCREF(o);
    r = PyObject_Call(PyTuple_GET_ITEM(o, 0), PyTuple_GET_ITEM(o, 1), NULL);
    if (r == NULL && actx_py_rerun_hook &&
        PyErr_ExceptionMatches(PyExc_RuntimeError)) {
        r = actx_py_rerun(o);
    }
    actx_py_check(r);
    Py_DECREF(o);
    PyGILState_Release(g);
}

/* py: the queue's Python poster, alive while the queue is. */
static void actx_py_enter_drain(void *py)
{
    PyGILState_STATE g = PyGILState_Ensure();

    actx_py_check(PyObject_CallOneArg(actx_py_drain_hook, (PyObject *)py));
    PyGILState_Release(g);
}

/* opaque: a (read, write) pair of callables taking no argument. */
static void actx_py_enter_fd(void *opaque, int wr)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *fn = PyTuple_GET_ITEM((PyObject *)opaque, wr);

    Py_INCREF(fn);
    actx_py_check(PyObject_CallNoArgs(fn));
    Py_DECREF(fn);
    PyGILState_Release(g);
}

static PyObject *actx_py_log_hook; /* log(level, msg) */

static void actx_py_enter_log(int level, const char *msg)
{
    PyGILState_STATE g = PyGILState_Ensure();

    if (actx_py_log_hook) {
        PyObject *r = PyObject_CallFunction(actx_py_log_hook, "is", level,
                                            msg);
        if (r) {
            Py_DECREF(r);
        } else {
            PyErr_WriteUnraisable(actx_py_log_hook);
        }
    }
    PyGILState_Release(g);
}

#define ACTX_PY_KEEP(o) Py_INCREF((PyObject *)(o))
#define ACTX_PY_DROP(o) Py_DECREF((PyObject *)(o))

#include "actx_py.h"

static void actx_py_set_hooks(PyObject *store, PyObject *done, PyObject *work,
                              PyObject *refused, PyObject *drain,
                              PyObject *log, PyObject *rerun)
{
    Py_XINCREF(rerun);
    actx_py_rerun_hook = rerun;
    Py_XINCREF(log);
    actx_py_log_hook = log;
    actx_py_install_log();
    Py_XINCREF(drain);
    actx_py_drain_hook = drain;
    actx_py_set_req_hooks(store, done, work, refused);
    actx_py_install_refused();
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

/* Pointers as integers; a NULL result is OSError(errno). */
%define ACTX_PY_PTR(T)
%typemap(in) T {
    $1 = ($1_ltype)PyLong_AsVoidPtr($input);
    if (PyErr_Occurred()) {
        SWIG_fail;
    }
}
%typemap(out) T {
    if (!$1) {
        PyErr_SetFromErrno(PyExc_OSError);
        SWIG_fail;
    }
    $result = PyLong_FromVoidPtr($1);
}
%enddef
ACTX_PY_PTR(actx_ctx *)
ACTX_PY_PTR(actx_bh *)
ACTX_PY_PTR(actx_timer *)
ACTX_PY_PTR(actx_req *)
ACTX_PY_PTR(struct actx_py_q *)

/* The helpers' opaque objects pass through as they are. */
%typemap(in) void *obj, void *py "$1 = (void *)$input;"

/* A buffer the request keeps alive (and never resizes) until done. */
%typemap(in) (void *buf, size_t n) (Py_buffer view) {
    if (PyObject_GetBuffer($input, &view, PyBUF_WRITABLE) < 0) {
        SWIG_fail;
    }
    $1 = view.buf;
    $2 = (size_t)view.len;
    PyBuffer_Release(&view);
}
%typemap(in) (const void *buf, size_t n) (Py_buffer view) {
    if (PyObject_GetBuffer($input, &view, PyBUF_SIMPLE) < 0) {
        SWIG_fail;
    }
    $1 = view.buf;
    $2 = (size_t)view.len;
    PyBuffer_Release(&view);
}

/* Everything below keeps the GIL except the calls that may block. */
%nothread;
%thread actx_flush;
%thread actx_thread_shutdown;
%thread actx_py_poll_block;
%thread actx_py_flush_slice;
%thread actx_poll_timeout;
%thread actx_cancel_context;

/* Calls that take C callbacks go through the shared helpers. */
%ignore actx_bh_new;
%ignore actx_req_new;
%ignore actx_set_refused_hook;
%ignore actx_set_log_handler;
%ignore actx_submit;
%ignore actx_aio_pread;
%ignore actx_aio_pwrite;
%ignore actx_aio_fsync;
%ignore actx_run;
%ignore actx_ctx_call;
%ignore actx_set_fd_handler;
%ignore actx_timer_new;
%ignore actx_stats;
%ignore actx_stats_size;
%ignore actx_dump;
%ignore actx_py_key;
%ignore actx_py_q;

%include "actx.h"
%include "actx_py.h"

void actx_py_set_hooks(PyObject *store, PyObject *done, PyObject *work,
                       PyObject *refused, PyObject *drain, PyObject *log,
                       PyObject *rerun);
PyObject *actx_py_stats(void);
