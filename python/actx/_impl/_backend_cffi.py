"""The cffi backend: the API-mode extension _actx_cffi under the names of
actx/_impl/_backend.py's INTERFACE.

Objects handed to C as an opaque pointer are ffi.new_handle() handles,
except requests.  A one-shot handle (a call) sits in _keep until its
callback ran; a BH's, a timer's or an fd entry's handle is kept by its
Python object.  cffi releases the GIL around every C call and takes it
again in each callback.

Requests are made as under SWIG, by the shared helpers
(bindings/common/actx_py.h): the Request object is the opaque, with a
reference C holds until done ran or was refused, and the makers are
functions the helpers add to the extension module (actx_py_export), called
with the GIL held: through a cffi call, every submit would let a pool
thread waiting for the GIL take it.  Their pointers are ints.
"""
import functools
import operator
import os

from ._actx_cffi import ffi, lib
from . import _actx_cffi as _ext
from . import _common

C = lib
NAME = 'cffi'

_keep = set()
_new_handle = ffi.new_handle
_from_handle = ffi.from_handle
_store = _common.store_exception
_rerun_nested = _common.rerun_nested
_NULL = ffi.NULL


def _onerror(et, ev, tb):
    """An exception escaped a trampoline's Python function (a signal's
    KeyboardInterrupt raised before its try, say): keep it for the API
    call like any callback exception, never print-and-forget."""
    if ev is not None:
        _store(ev.with_traceback(tb))


@ffi.def_extern(onerror=_onerror)
def _actx_py_call(p):
    o = _from_handle(p)
    _keep.discard(p)
    try:
        o[0](*o[1])
    except BaseException as e:
        _store(e)


def _rerun(run, args, e):
    """run(*args) raised RuntimeError e: a nested run of a BH or an fd
    handler runs again in a copy of its Context (_common.rerun_nested),
    else e is the callback's.  Called outside the except clause, so that
    an exception of the rerun does not chain to e."""
    try:
        if _rerun_nested(run, args):
            return
    except BaseException as e2:
        e = e2
    _store(e)


@ffi.def_extern(onerror=_onerror)
def _actx_py_bh(p):
    o = _from_handle(p)
    try:
        o[0](*o[1])
        return
    except RuntimeError as e:
        err = e
    except BaseException as e:
        _store(e)
        return
    _rerun(o[0], o[1], err)


@ffi.def_extern(onerror=_onerror)
def _actx_py_fd_read(p):
    # _FdEntry._read, inlined: a Python frame less per ready fd.
    try:
        r = _from_handle(p).reader
        if r is None:
            return
        r[0](*r[1])
        return
    except RuntimeError as e:
        err = e
    except BaseException as e:
        _store(e)
        return
    _rerun(r[0], r[1], err)


@ffi.def_extern(onerror=_onerror)
def _actx_py_fd_write(p):
    try:
        w = _from_handle(p).writer
        if w is None:
            return
        w[0](*w[1])
        return
    except RuntimeError as e:
        err = e
    except BaseException as e:
        _store(e)
        return
    _rerun(w[0], w[1], err)


@ffi.def_extern()
def _actx_py_log(level, msg):
    _common.log(level, ffi.string(msg))


@ffi.def_extern(onerror=_onerror)
def _actx_py_drain(p):
    _from_handle(p).drain()


class _Poster(_common.Poster):
    """The coalesced queue, its state word read without a C call (a cffi
    call drops the GIL)."""
    __slots__ = ('word', 'h')

    def __init__(self, ctx):
        # The queue's memory belongs to this object: a thread still inside
        # a kick holds the object (post's frame), so the memory outlives
        # every kick, also one that ends after close().
        q = ffi.new('struct actx_py_q *')
        q.ctx = ctx
        self.h = q.py = _new_handle(self)
        _common.Poster.__init__(self, q)
        self.word = ffi.cast('intptr_t *', q)
        self.state = functools.partial(operator.getitem, self.word, 0)

    _kick = staticmethod(lib.actx_py_q_kick)
    _reset = staticmethod(lib.actx_py_q_reset)

    def _free(self):
        self.q.py = _NULL
        self.h = None


def make_poster(p):
    return _Poster(p)


def _oserror(e):
    return OSError(e, os.strerror(e))


def _ptr(p):
    if p == _NULL:
        raise _oserror(ffi.errno)
    return p


_poll = lib.actx_poll


def poll_nb():
    return _poll(False)


def bh_new(fnargs):
    h = _new_handle(fnargs)
    return _ptr(lib.actx_py_bh_new(h)), h


def timer_new(fn):
    h = _new_handle((fn, ()))
    return _ptr(lib.actx_py_timer_new(h)), h


def fd_opaque(entry):
    return _new_handle(entry)


if lib.actx_py_export() < 0:
    raise ImportError('actx: the cffi extension cannot add its functions')
_ext.py_set_req_hooks(_store, _common.run_done, _common.run_work,
                      _common.run_refused)
submit = _ext.py_submit
req_new = _ext.py_req_new
fsync = _ext.py_fsync
_pread = _ext.py_pread
_pwrite = _ext.py_pwrite
_addr = functools.partial(ffi.cast, 'uintptr_t')
_req_ptr = functools.partial(ffi.cast, 'actx_req *')


def pread(fd, buf, off, req):
    cbuf = req._cbuf = ffi.from_buffer(buf)
    return _pread(fd, int(_addr(cbuf)), len(buf), off, req)


def pwrite(fd, data, off, req):
    cbuf = req._cbuf = ffi.from_buffer(data)
    return _pwrite(fd, int(_addr(cbuf)), len(data), off, req)


def req_cancel(p):
    return lib.actx_req_cancel(_req_ptr(p))


def req_complete(p, ret):
    return lib.actx_req_complete(_req_ptr(p), ret)


def ctx_current():
    return _ptr(lib.actx_ctx_current())


def ctx_key(p):
    return lib.actx_py_key(p)


_STATS = [name for name, _ in ffi.typeof('struct actx_stats').fields]


def stats():
    st = ffi.new('struct actx_stats *')
    lib.actx_stats(st)
    return {name: getattr(st, name) for name in _STATS}


def strerror(e):
    return ffi.string(lib.actx_strerror(e)).decode()


def version_string():
    return ffi.string(lib.actx_version_string()).decode()


_common.exit_hooks.append(lib.actx_py_set_exiting)
lib.actx_py_install_refused()
lib.actx_py_install_log()
