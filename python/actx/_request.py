"""Requests: submit, pread, pwrite, fsync."""
import concurrent.futures
import errno as _errno
import operator
import os
import threading

from ._backend import B
from . import _common
from ._common import CancelledError, DeadlockError
from ._thread import (_SLICE_NS, _bridges, _can_progress, _fd, _get_ident,
    _main_ident, _oserror, _pending, _poll_block, _poll_timeout,
    _raise_pending, _state, _states)
from ._context import context_id

__all__ = ['Request', 'fsync', 'pread', 'pwrite', 'submit']

# --------------------------------------------------------------------------
# Requests

_SUBMIT, _PREAD, _PWRITE, _FSYNC = range(4)
_ECANCELED = _errno.ECANCELED


_cf = concurrent.futures
_FINISHED = _cf._base.FINISHED
_CANCELLED = _cf._base.CANCELLED_AND_NOTIFIED
_RUNNING = _cf._base.RUNNING
_lock_lock = threading.Lock()
_RLock = threading.RLock


class _Waiters(list):
    """A Request's concurrent.futures waiters.  Only the owner thread can
    complete a request, so the owner blocking in concurrent.futures.wait()
    or as_completed() on a pending one would never wake: refused."""
    __slots__ = ('req',)

    def append(self, waiter):
        req = self.req
        if not req._done and _get_ident() == req._owner:
            raise DeadlockError(
                'concurrent.futures.wait()/as_completed() on the owner '
                'thread of a pending actx Request would never return (it '
                'completes only while this thread polls): use result(), '
                'flush() or asyncio here, those functions on other threads')
        list.append(self, waiter)


class Request(_cf.Future):
    """An asynchronous request of the context that was current when it was
    made (submit, pread, pwrite, fsync): a concurrent.futures.Future.

    It completes only on its owner thread (the one that made it), while its
    context (or the one that context was re-homed to) is current: inside
    poll / flush / run / result there, or the asyncio bridge's poll.
    result(), exception() and cancel() are owner-thread only; done
    callbacks run on the owner thread, in the request's context.  Other
    threads may wait for it with concurrent.futures.wait() /
    as_completed() or asyncio.wrap_future() (the owner must keep polling);
    on the owner thread those raise DeadlockError while it is pending.
    set_result() and set_exception() are refused: actx completes it."""
    __slots__ = ('_p', '_kind', '_fn', '_args', '_buf', '_cbuf', '_value',
                 '_exc', '_done', '_cancelled', '_callbacks', '_tok',
                 '_owner', '_lock', '_wl')

    def __init__(self):
        raise TypeError('actx.Request is made by submit(), pread(), '
                        'pwrite() and fsync()')

    def _init(self, kind, st):
        self._p = None
        self._kind = kind
        self._fn = self._args = self._buf = self._cbuf = None
        self._value = self._exc = None
        self._done = self._cancelled = False
        self._callbacks = None
        self._tok = st.top
        self._owner = st.ident
        self._lock = self._wl = None

    def __repr__(self):
        state = ('cancelled' if self._cancelled else
                 'done' if self._done else 'pending')
        return '<actx.Request %s %s>' % (
            ('submit', 'pread', 'pwrite', 'fsync')[self._kind], state)

    # concurrent.futures.wait() and as_completed() use these three.  The
    # lock exists once another thread (or a done callback) is involved;
    # _complete sets _done before it looks for the lock, and a waiter reads
    # the state after making the lock and under it, so no completion is
    # missed.
    @property
    def _condition(self):
        c = self._lock
        if c is None:
            with _lock_lock:
                c = self._lock
                if c is None:
                    c = self._lock = _RLock()
        return c

    @property
    def _state(self):
        if self._done:
            return _CANCELLED if self._cancelled else _FINISHED
        return _RUNNING

    @property
    def _waiters(self):
        w = self._wl  # read and made under _condition
        if w is None:
            w = self._wl = _Waiters()
            w.req = self
        return w

    # Owner thread, from the done trampoline.
    def _complete(self, ret):
        self._p = None
        kind = self._kind
        if ret == -_ECANCELED:
            # Work functions report through _value/_exc (ret 0 or -1), so
            # -ECANCELED is always actx_req_cancel's.
            self._cancelled = True
        elif kind == _SUBMIT:
            pass  # _value / _exc were set by the work function
        elif ret < 0:
            self._exc = OSError(-ret, os.strerror(-ret))
        elif kind == _PREAD:
            self._value = memoryview(self._buf)[:ret].tobytes()
        elif kind == _PWRITE:
            self._value = ret
        self._fn = self._args = self._buf = self._cbuf = None
        self._done = True
        lock = self._lock
        if lock is None:
            return
        with lock:
            cbs = self._callbacks
            self._callbacks = None
            for w in self._wl or ():
                if self._cancelled:
                    w.add_cancelled(self)
                elif self._exc is not None:
                    w.add_exception(self)
                else:
                    w.add_result(self)
        if cbs:
            for cb in cbs:
                try:
                    cb(self)
                except BaseException as e:
                    _common.store_exception(e)

    def done(self) -> bool:
        """True once its done callback ran (completed, failed or
        cancelled).  Any thread."""
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def running(self) -> bool:
        return not self._done

    def cancel(self) -> bool:
        """Cancel work that has not started: True if cancelled (the request
        then completes with CancelledError at the next poll of its
        context); False if it started, finished or has no pool work.
        Owner thread only."""
        p = self._p
        if p is None:
            return self._cancelled
        self._check_owner('cancel')
        r = B.req_cancel(p)
        return r == 0

    def set_result(self, result):
        raise RuntimeError('an actx Request is completed by actx only')

    def set_exception(self, exception):
        raise RuntimeError('an actx Request is completed by actx only')

    def set_running_or_notify_cancel(self):
        raise RuntimeError('an actx Request is completed by actx only')

    def _check_owner(self, what):
        if _get_ident() != self._owner:
            raise RuntimeError('Request.%s() on a thread other than its '
                               'owner: it completes only there' % what)

    def _check_current(self, st):
        """DeadlockError unless the request's context (or the one it was
        re-homed to) is the current one."""
        t = self._tok
        while t.fwd is not None:
            t = t.fwd
        self._tok = t
        if t is not st.top:
            raise DeadlockError(
                'the request belongs to an outer context: it cannot '
                'complete while context %d is current' % context_id())

    def _wait(self, timeout):
        # The runtime's blocking poll: on the main thread or with a timeout
        # in slices (actx_poll_timeout; between them Python runs its signal
        # handlers and the deadline is checked), else in one call.
        self._check_owner('result')
        st = _states.get(self._owner) or _state()
        deadline = None
        if timeout is not None:
            deadline = B.now_ns() + int(timeout * 1e9)
        sliced = deadline is not None or st.ident == _main_ident
        while not self._done:
            self._check_current(st)
            if sliced:
                ns = _SLICE_NS
                if deadline is not None:
                    left = deadline - B.now_ns()
                    if left <= 0:
                        raise TimeoutError()
                    ns = min(ns, left)
                r = _poll_timeout(ns)
            else:
                r = _poll_block()
            if _pending:
                _raise_pending()
            if r == 0 and not self._done and not _can_progress():
                raise DeadlockError('nothing in the current context can '
                                    'make progress')
            if r < 0 and r != -_errno.ETIMEDOUT and r != -_errno.EINTR:
                raise _oserror(r)

    def result(self, timeout: float = None):
        """Poll this context until the request is done, then return its
        value: fn's return value (submit), the bytes read (pread), the
        byte count written (pwrite), None (fsync).  Re-raises the work
        function's exception, OSError for an I/O error, CancelledError if
        cancelled, DeadlockError at once if it belongs to an outer context
        or can never complete, TimeoutError after timeout seconds."""
        if not self._done:
            self._wait(timeout)
        if self._cancelled:
            raise CancelledError()
        if self._exc is not None:
            raise self._exc
        return self._value

    def exception(self, timeout: float = None):
        """Like result() but returns the exception (None on success)."""
        if not self._done:
            self._wait(timeout)
        if self._cancelled:
            raise CancelledError()
        return self._exc

    def add_done_callback(self, fn) -> None:
        """Call fn(request) when it is done: on the owner thread, in the
        request's context; at once (on the calling thread) if it already
        is.  Any thread."""
        if not callable(fn):
            raise TypeError('%r is not callable' % (fn,))
        if not self._done:
            with self._condition:
                if not self._done:
                    if self._callbacks is None:
                        self._callbacks = [fn]
                    else:
                        self._callbacks.append(fn)
                    return
        fn(self)

    def __await__(self):
        if not self._done:
            import asyncio
            loop = asyncio.get_running_loop()
            br = _bridges.get(_get_ident())
            if br is None or br._loop is not loop:
                raise RuntimeError('await on an actx Request needs '
                                   'actx.asyncio_bridge() on this loop')
            fut = loop.create_future()

            def wake(_req, fut=fut):
                if not fut.done():
                    fut.set_result(None)
            self.add_done_callback(wake)
            yield from fut.__await__()
        return self.result()


def _new_request(kind):
    st = _states.get(_get_ident()) or _state()
    req = Request.__new__(Request)
    req._init(kind, st)
    return req


def submit(fn, *args) -> Request:
    """Run fn(*args) on a pool thread (it takes the GIL there); the
    returned Request completes in the current context."""
    if not callable(fn):
        raise TypeError('submit: %r is not callable' % (fn,))
    req = _new_request(_SUBMIT)
    req._fn = fn
    req._args = args
    req._p = B.submit(req)
    return req


def pread(fd, n: int, offset: int = 0) -> Request:
    """Read up to n bytes at offset on the pool; result() is the bytes read
    (short at end of file)."""
    fd = _fd(fd)
    n = operator.index(n)
    offset = operator.index(offset)
    if n < 0:
        raise ValueError('pread: negative size')
    req = _new_request(_PREAD)
    buf = req._buf = bytearray(n)
    req._p = B.pread(fd, buf, offset, req)
    return req


def pwrite(fd, data, offset: int = 0) -> Request:
    """Write data (any bytes-like object) at offset on the pool; result()
    is the byte count written."""
    fd = _fd(fd)
    offset = operator.index(offset)
    if not isinstance(data, bytes):
        if isinstance(data, str):
            raise TypeError('pwrite: data must be bytes-like, not str')
        data = memoryview(data).tobytes()
    req = _new_request(_PWRITE)
    req._buf = data
    req._p = B.pwrite(fd, data, offset, req)
    return req


def fsync(fd) -> Request:
    """fsync(fd) on the pool; result() is None."""
    fd = _fd(fd)
    req = _new_request(_FSYNC)
    req._p = B.fsync(fd, req)
    return req
