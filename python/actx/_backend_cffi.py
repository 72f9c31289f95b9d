"""The cffi backend: thin functions over the API-mode extension _actx_cffi.

Objects handed to C as an opaque pointer are ffi.new_handle() handles.
A one-shot handle (a call, a request) sits in _keep until its callback ran;
a BH's handle is kept by its BottomHalf until delete().  cffi releases the
GIL around every C call and takes it again in each callback.
"""
import collections
import os

from ._actx_cffi import ffi, lib
from . import _common

NAME = 'cffi'

_keep = set()
_new_handle = ffi.new_handle
_from_handle = ffi.from_handle
_store = _common.store_exception
_run_done = _common.run_done
_run_work = _common.run_work
_NULL = ffi.NULL
_CALL_C = ffi.addressof(lib, 'actx_py_call_c')
_BH_C = ffi.addressof(lib, 'actx_py_bh_c')
_DONE_C = ffi.addressof(lib, 'actx_py_done_c')
_WORK_C = ffi.addressof(lib, 'actx_py_work_c')
_set_fd = lib.actx_py_set_fd


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


@ffi.def_extern(onerror=_onerror)
def _actx_py_bh(p):
    o = _from_handle(p)
    try:
        o[0](*o[1])
    except BaseException as e:
        _store(e)


@ffi.def_extern(onerror=_onerror)
def _actx_py_done(p, ret):
    o = _from_handle(p)
    _keep.discard(p)
    _run_done(o, ret)


@ffi.def_extern(onerror=_onerror)
def _actx_py_fd_read(p):
    # _FdEntry._read, inlined: a Python frame less per ready fd.
    try:
        r = _from_handle(p).reader
        if r is not None:
            r[0](*r[1])
    except BaseException as e:
        _store(e)


@ffi.def_extern(onerror=_onerror)
def _actx_py_fd_write(p):
    try:
        w = _from_handle(p).writer
        if w is not None:
            w[0](*w[1])
    except BaseException as e:
        _store(e)


@ffi.def_extern()
def _actx_py_work(p):
    return _run_work(_from_handle(p))


@ffi.def_extern()
def _actx_py_refused(p):
    """The owner thread died with this request in flight: C will never call
    done, so the request is released here (on the completing thread)."""
    _keep.discard(p)


@ffi.def_extern(onerror=_onerror)
def _actx_py_drain(p):
    po = _from_handle(p)
    _reset(po.q)
    dq = po.dq
    take = dq.popleft
    for _ in range(len(dq)):
        try:
            fn, args = take()
        except IndexError:  # a refused kick took its call back
            break
        try:
            fn(*args)
        except BaseException as e:
            _store(e)
    if po.closing and po.q.state == 0:
        po._release()


class _Poster:
    """One ContextHandle's coalesced calls (see actx_py_q_kick)."""
    __slots__ = ('q', 'word', 'dq', 'h', 'closing')

    def __init__(self, p):
        self.q = ffi.new('struct actx_py_q *')
        self.q.ctx = p
        self.word = ffi.cast('intptr_t *', self.q)
        self.dq = collections.deque()
        self.h = _new_handle(self)
        self.q.py = self.h
        self.closing = False
        _posters.add(self)

    def post(self, fnargs):
        self.dq.append(fnargs)
        if self.word[0] == 2:  # POSTED: the pending drain takes it
            return 0
        r = _kick(self.q)
        if r:
            try:
                self.dq.remove(fnargs)
            except ValueError:
                return 0  # a drain took it before the refusal: it runs
        return r

    def close(self):
        """The handle is gone; free once no drain is pending."""
        self.closing = True
        if self.q.state in (0, 3):
            self._release()

    def _release(self):
        _posters.discard(self)
        self.h = None
        self.q.py = _NULL


_posters = set()
_kick = lib.actx_py_q_kick
_reset = lib.actx_py_q_reset


def make_poster(p):
    return _Poster(p)


def _oserror(e):
    return OSError(e, os.strerror(e))


push = lib.actx_push
pop = lib.actx_pop
context_id = lib.actx_context_id
process_queue = lib.actx_process_queue
flush = lib.actx_flush
flush_slice = lib.actx_py_flush_slice
poll_timeout = lib.actx_poll_timeout
can_progress = lib.actx_can_progress
backend_fd = lib.actx_backend_fd
backend_timeout_ms = lib.actx_backend_timeout_ms
thread_shutdown = lib.actx_thread_shutdown
thread_init = lib.actx_thread_init
pool_set_size = lib.actx_pool_set_size
set_poll_max_ns = lib.actx_set_poll_max_ns
set_exiting = lib.actx_py_set_exiting
now_ns = lib.actx_now_ns
bh_schedule = lib.actx_bh_schedule
bh_schedule_idle = lib.actx_bh_schedule_idle
bh_cancel = lib.actx_bh_cancel
req_cancel = lib.actx_req_cancel
ctx_unref = lib.actx_ctx_unref
ctx_id = lib.actx_ctx_id
stop = lib.actx_stop
_poll = lib.actx_poll


def poll_nb():
    return _poll(False)


def poll_block():
    return _poll(True)


def bh_new(fnargs):
    h = _new_handle(fnargs)
    p = lib.actx_bh_new(_BH_C, h)
    if p == _NULL:
        raise _oserror(ffi.errno)
    return p, h


def bh_delete(p, keep):
    lib.actx_bh_delete(p)


def ctimer_new(fn):
    """A disarmed C timer of the current context whose expiry calls fn()
    (through the BH trampoline); (pointer, keep)."""
    h = _new_handle((fn, ()))
    p = lib.actx_timer_new(_BH_C, h)
    if p == _NULL:
        raise _oserror(ffi.errno)
    return p, h


ctimer_mod = lib.actx_timer_mod
ctimer_del = lib.actx_timer_del


def ctimer_free(p, keep):
    lib.actx_timer_free(p)


def fd_opaque(entry):
    """What C holds for an fd entry (kept alive by the entry)."""
    return _new_handle(entry)


def set_fd(fd, opaque, rd, wr):
    return _set_fd(fd, opaque, rd, wr)


def _req(p, h):
    if p == _NULL:
        e = ffi.errno
        _keep.discard(h)
        raise _oserror(e)
    return p


def submit(req):
    h = _new_handle(req)
    _keep.add(h)
    return _req(lib.actx_submit(_WORK_C, _DONE_C, h), h)


def pread(fd, buf, off, req):
    h = _new_handle(req)
    _keep.add(h)
    cbuf = ffi.from_buffer(buf)
    req._cbuf = cbuf
    return _req(lib.actx_aio_pread(fd, cbuf, len(buf), off,
                                   _DONE_C, h), h)


def pwrite(fd, data, off, req):
    h = _new_handle(req)
    _keep.add(h)
    cbuf = ffi.from_buffer(data)
    req._cbuf = cbuf
    return _req(lib.actx_aio_pwrite(fd, cbuf, len(data), off,
                                    _DONE_C, h), h)


def fsync(fd, req):
    h = _new_handle(req)
    _keep.add(h)
    return _req(lib.actx_aio_fsync(fd, _DONE_C, h), h)


def ctx_current():
    p = lib.actx_ctx_current()
    if p == _NULL:
        raise _oserror(ffi.errno)
    return p


def ctx_call(p, fnargs, _call=lib.actx_ctx_call, _tramp=_CALL_C):
    h = _new_handle(fnargs)
    _keep.add(h)
    r = _call(p, _tramp, h)
    if r:
        _keep.discard(h)
    return r


def ctx_key(p):
    return lib.actx_py_key(p)


_STATS = [name for name, _ in ffi.typeof('struct actx_stats').fields]


def stats():
    st = ffi.new('struct actx_stats *')
    lib.actx_stats(st)
    return {name: getattr(st, name) for name in _STATS}


def strerror(e):
    return ffi.string(lib.actx_strerror(e)).decode()


_common.exit_hooks.append(set_exiting)
lib.actx_py_install_refused(_DONE_C)
