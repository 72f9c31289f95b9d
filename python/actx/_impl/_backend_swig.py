"""The SWIG backend: the extension _actx_swig under the names of
actx/_impl/_backend.py's INTERFACE.

The generated shadow module actx_swig is imported (it loads _actx_swig),
but the calls go to the extension's functions directly: the shadow
functions only add a Python frame.  Pointers are integers; a one-shot
object handed to C is INCREF'd by the shared helpers until C is done
(bindings/common/actx_py.h, bindings/swig/actx.i).
"""
import ctypes
import functools

from . import actx_swig  # noqa: F401  (loads the extension)
from . import _actx_swig as _m
from . import _common

C = _m
NAME = 'swig'

_m.actx_py_set_hooks(_common.store_exception, _common.run_done,
                     _common.run_work, _common.run_refused,
                     _common.Poster.drain, _common.log,
                     _common.rerun_nested)

_poll = _m.actx_poll


def poll_nb():
    return _poll(False)


def bh_new(fnargs):
    return _m.actx_py_bh_new(fnargs), fnargs


def timer_new(fn):
    keep = (fn, ())
    return _m.actx_py_timer_new(keep), keep


def fd_opaque(entry):
    return (entry._read, entry._write)


pread = _m.actx_py_pread
pwrite = _m.actx_py_pwrite
submit = _m.actx_py_submit
fsync = _m.actx_py_fsync
req_new = _m.actx_py_req_new


def ctx_key(p):
    return p


class _Poster(_common.Poster):
    __slots__ = ('word',)

    def __init__(self, ctx):
        _common.Poster.__init__(self, None)
        self.q = _m.actx_py_q_new(ctx, self)
        self.state = functools.partial(_m.actx_py_q_state, self.q)
        # The word (the struct's first member) read without a C call.
        self.word = (ctypes.c_ssize_t * 1).from_address(self.q)

    _kick = staticmethod(_m.actx_py_q_kick)
    _reset = staticmethod(_m.actx_py_q_reset)

    def _free(self):
        pass  # the memory goes with the object (see __del__)

    def __del__(self, _q_free=_m.actx_py_q_free):
        # Not at close(): a thread still inside a kick holds this object
        # (post's frame), so the queue outlives every kick.
        q = self.q
        if q is not None:
            self.q = None
            _q_free(q)


def make_poster(p):
    return _Poster(p)


stats = _m.actx_py_stats
strerror = _m.actx_strerror
version_string = _m.actx_version_string

_common.exit_hooks.append(_m.actx_py_set_exiting)
