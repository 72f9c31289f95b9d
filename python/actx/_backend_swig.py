"""The SWIG backend: thin functions over the SWIG extension _actx_swig.

The generated shadow module actx_swig is imported (it loads _actx_swig),
but the hot calls go to the extension's functions directly: the shadow
functions only add a Python frame.  Pointers are integers; objects handed
to C are INCREF'd by the helpers in bindings/swig/actx.i until C is done.
"""
import functools
import os

from . import actx_swig  # noqa: F401  (loads the extension)
from . import _actx_swig as _m
from . import _common

NAME = 'swig'

_m.actx_py_set_hooks(_common.store_exception, _common.run_done,
                     _common.run_work)


def _oserror(e):
    return OSError(e, os.strerror(e))


def _ptr(r):
    if r <= 0:
        raise _oserror(-r)
    return r


push = _m.actx_push
pop = _m.actx_pop
context_id = _m.actx_context_id
process_queue = _m.actx_process_queue
flush = _m.actx_flush
flush_slice = _m.actx_py_flush_slice
poll_timeout = _m.actx_poll_timeout
can_progress = _m.actx_can_progress
backend_fd = _m.actx_backend_fd
backend_timeout_ms = _m.actx_backend_timeout_ms
thread_shutdown = _m.actx_thread_shutdown
thread_init = _m.actx_thread_init
pool_set_size = _m.actx_pool_set_size
set_poll_max_ns = _m.actx_set_poll_max_ns
set_exiting = _m.actx_py_set_exiting
now_ns = _m.actx_now_ns
bh_schedule = _m.actx_py_bh_schedule
bh_schedule_idle = _m.actx_py_bh_schedule_idle
bh_cancel = _m.actx_py_bh_cancel
req_cancel = _m.actx_py_req_cancel
ctx_unref = _m.actx_py_ctx_unref
ctx_id = _m.actx_py_ctx_id
ctx_call = _m.actx_py_ctx_call
stop = _m.actx_py_stop
stats = _m.actx_py_stats
strerror = _m.actx_strerror
_poll = _m.actx_poll


def poll_nb():
    return _poll(False)


poll_block = _m.actx_py_poll_block


def bh_new(fnargs):
    return _ptr(_m.actx_py_bh_new(fnargs)), fnargs


bh_delete = _m.actx_py_bh_delete


def ctimer_new(fn):
    """A disarmed C timer of the current context whose expiry calls fn();
    (pointer, keep)."""
    return _ptr(_m.actx_py_ctimer_new(fn)), fn


ctimer_mod = _m.actx_py_ctimer_mod
ctimer_del = _m.actx_py_ctimer_del
ctimer_free = _m.actx_py_ctimer_free


def fd_opaque(entry):
    """What C holds for an fd entry (kept alive by the entry)."""
    return (entry._read, entry._write)


set_fd = _m.actx_py_set_fd


def submit(req):
    return _ptr(_m.actx_py_submit(req))


def pread(fd, buf, off, req):
    return _ptr(_m.actx_py_pread(fd, buf, off, req))


def pwrite(fd, data, off, req):
    return _ptr(_m.actx_py_pwrite(fd, data, off, req))


def fsync(fd, req):
    return _ptr(_m.actx_py_fsync(fd, req))


def ctx_current():
    return _ptr(_m.actx_py_ctx_current())


class _Poster:
    __slots__ = ('post',)

    def __init__(self, p):
        self.post = functools.partial(_m.actx_py_ctx_call, p)

    def close(self):
        pass


def make_poster(p):
    """Calls on a handle: one actx_ctx_call each (no GIL hand-off: the
    wrapper keeps the GIL)."""
    return _Poster(p)


def ctx_key(p):
    return p


_common.exit_hooks.append(set_exiting)
