"""The actx Python API over one backend.

This file is loaded once per backend (as actx._core_cffi, actx._core_swig)
with _BACKEND set by the loader in actx/__init__.py; the package re-exports
the selected one.  See the package docstring for the design.
"""
import errno as _errno
import importlib
import operator
import os
import select
import threading

from . import _common
from ._common import CancelledError, DeadlockError

B = importlib.import_module('actx._backend_' + _BACKEND)  # noqa: F821

__all__ = [
    'push', 'pop', 'context_id', 'async_context', 'BottomHalf', 'submit',
    'pread', 'pwrite', 'fsync', 'Request', 'poll', 'flush', 'run', 'stop',
    'current_context', 'ContextHandle', 'stats', 'DeadlockError',
    'CancelledError', 'asyncio_bridge', 'AsyncioBridge', 'backend_fd',
    'backend_timeout_ms', 'thread_shutdown', 'process_queue',
    'set_poll_max_ns',
]

BACKEND = B.NAME

_get_ident = _common.get_ident
_states = _common.states
_pending = _common.pending
_raise_pending = _common.raise_pending
_Token = _common.Token
_bridges = _common.bridges

_push = B.push
_pop = B.pop
_poll_nb = B.poll_nb
_poll_block = B.poll_block
_main_ident = threading.main_thread().ident
_can_progress = B.can_progress
_timeout_ms = B.backend_timeout_ms
_backend_fd = B.backend_fd
_ctx_call = B.ctx_call
_bh_schedule = B.bh_schedule
_bh_schedule_idle = B.bh_schedule_idle

# Longest single sleep in a blocking call: bounds the latency of Ctrl-C
# (a signal that lands just before the sleep starts) and of timeouts.
_SLICE_MS = 50


def _kick():
    # The runtime wakes an embedding loop (backend fd) only for posts from
    # other threads; work made on the owner thread itself must tell the
    # asyncio bridge directly.
    br = _bridges.get(_get_ident())
    if br is not None:
        br._kick()


def _state():
    st = _states.get(_get_ident())
    if st is None:
        st = _common.new_state(_shutdown_thread)
    return st


def _shutdown_thread():
    B.thread_shutdown()


def _oserror(r):
    return OSError(-r, os.strerror(-r))


# --------------------------------------------------------------------------
# Context stack

def push() -> int:
    """Enter a new context; return its id (its depth, >= 1).

    From now on only callbacks of the new context run on this thread until
    the matching pop().  Prefer ``with async_context():``.
    """
    r = _push()
    if r < 0:
        raise _oserror(r)
    st = _state()
    t = _Token()
    st.stack.append(t)
    st.top = t
    return r


def pop() -> None:
    """Leave the current context.

    Runs its scheduled bottom halves first (their exceptions propagate from
    here), then re-homes everything still alive in it to the parent.
    Raises OSError(EINVAL) at the root context.
    """
    r = _pop()
    if r < 0:
        if _pending:
            _raise_pending()
        raise _oserror(r)
    st = _state()
    stack = st.stack
    if len(stack) > 1:
        t = stack.pop()
        t.fwd = st.top = stack[-1]
        if st.stops:
            st.stops.discard(t)
    if _pending:
        _raise_pending()


def context_id() -> int:
    """Depth of the current context (the root is 0)."""
    return B.context_id()


class async_context:
    """``with async_context() as ctx:`` pushes a context on entry and pops
    it on exit, also when the block raises.  ``ctx.id`` is its depth.

    The same object may be entered again while active (each entry pushes
    one more context; exits pop in reverse order).
    """
    __slots__ = ('_toks', '_ids')

    def __init__(self):
        self._toks = []
        self._ids = []

    def __enter__(self):
        r = _push()
        if r < 0:
            raise _oserror(r)
        st = _states.get(_get_ident()) or _state()
        t = _Token()
        st.stack.append(t)
        st.top = t
        self._toks.append(t)
        self._ids.append(r)
        return self

    def __exit__(self, et, ev, tb):
        t = self._toks.pop()
        self._ids.pop()
        st = _states.get(_get_ident())
        if st is None or st.top is not t:
            raise RuntimeError('async_context exited while another context '
                               'is current (unbalanced push/pop in the '
                               'block, or exited on another thread)')
        pop()
        return False

    @property
    def id(self) -> int:
        """Depth of the context this object pushed last."""
        if not self._ids:
            raise RuntimeError('async_context is not active')
        return self._ids[-1]

    def __repr__(self):
        return '<actx.async_context ids=%r>' % (self._ids,)


# --------------------------------------------------------------------------
# Running the loop

def _wait_fd(st, t, cap_ms):
    """One bounded sleep on the backend fd, without the GIL, after
    backend_timeout_ms() returned t (!= 0).  True when the runtime's own
    timeout (idle BHs, timers) elapsed."""
    fd = _backend_fd()
    if fd != st.pfd:
        st.poller = select.poll()
        st.poller.register(fd, select.POLLIN)
        st.pfd = fd
    if 0 < t <= cap_ms:
        return not st.poller.poll(t)
    st.poller.poll(cap_ms)
    return False


def poll(block: bool = False) -> bool:
    """Run one iteration of the current context: arrived completions and
    calls, scheduled bottom halves, ready fd handlers and due timers of the
    current context only.  True if anything but an idle BH ran.

    With block=True and nothing to run, sleep (GIL released) until
    something of the current context can run, and run it; with only idle
    BHs scheduled, sleep at most 10 ms, run them and return False; return
    False at once when nothing can ever make progress in the current
    context.  Interruptible by Ctrl-C.  The first exception raised by a
    callback propagates from here after the iteration finished.
    """
    if not block or _get_ident() != _main_ident:
        # Off the main thread no signal handler ever runs: the runtime's
        # own blocking poll (which also tells the pool that a worker
        # waits, so nested pool work cannot deadlock it).
        r = _poll_block() if block else _poll_nb()
        if _pending:
            _raise_pending()
        return bool(r)
    st = None
    while True:
        # Arms the wake-up first, so nothing posted from here on is missed.
        t = _timeout_ms()
        natural = False
        if t != 0:
            if not _can_progress():
                _poll_nb()  # disarm
                if _pending:
                    _raise_pending()
                return False
            if st is None:
                st = _states.get(_get_ident()) or _state()
            natural = _wait_fd(st, t, _SLICE_MS)
        r = _poll_nb()
        if _pending:
            _raise_pending()
        if r:
            return True
        if natural:
            return False


def set_poll_max_ns(ns: int) -> None:
    """Adaptive polling for the calling thread's loop: before the runtime's
    own blocking waits sleep (flush(), run(), poll(block=True) off the main
    thread), poll for work for up to an adaptive window of at most ns
    nanoseconds.  0 (the default) turns it off.  Never changes what runs.
    Raises OSError(EINVAL) for a negative ns.
    """
    r = B.set_poll_max_ns(ns)
    if r < 0:
        raise _oserror(r)


def process_queue() -> bool:
    """Run the arrived completions and calls of the current context."""
    r = B.process_queue()
    if _pending:
        _raise_pending()
    return bool(r)


def flush() -> None:
    """Poll until the current context has no outstanding request and no
    scheduled non-idle BH.  Requests of other contexts are not waited for.

    Raises DeadlockError if that can never happen.  Runs in C with the GIL
    released; it is not interrupted by Ctrl-C (it waits only for work that
    is already running or queued).
    """
    r = B.flush()
    if _pending:
        _raise_pending()
    if r < 0:
        if r == -_errno.EDEADLK:
            raise DeadlockError('flush: the current context can never be '
                                'idle')
        raise _oserror(r)


def run() -> None:
    """Poll, blocking, in the current context until stop() is called for it
    or nothing can make progress any more.  Interruptible by Ctrl-C."""
    st = _state()
    me = st.top
    stops = st.stops
    while True:
        # Busy: non-blocking iterations; idle: one blocking poll.
        r = _poll_nb()
        if _pending:
            _raise_pending()
        if not r:
            r = poll(True)
        if stops and me in stops:
            stops.discard(me)
            return
        if not r and not _can_progress():
            return


def _stop_here():
    st = _state()
    st.stops.add(st.top)


def stop(handle: 'ContextHandle') -> None:
    """Make run() in the handle's context (or the one it was re-homed to)
    return.  Any thread.  A stop that arrives while that context is not in
    run() makes its next run() return after one iteration."""
    if not isinstance(handle, ContextHandle):
        raise TypeError('stop() takes a handle from current_context(), not '
                        '%s' % type(handle).__name__)
    handle._live()
    r = handle._post((_stop_here, ()))
    if r < 0:
        raise _oserror(r)
    if _bridges:
        _kick()


def backend_fd() -> int:
    """The fd to wait on when embedding this thread's loop elsewhere."""
    r = _backend_fd()
    if r < 0:
        raise _oserror(r)
    return r


def backend_timeout_ms() -> int:
    """How long the embedding loop may sleep on backend_fd() (-1: no
    limit).  Declares that the caller is about to wait on the fd."""
    return _timeout_ms()


def thread_shutdown() -> None:
    """Shut this thread's runtime down now (it also happens when a Python
    thread ends): pop every context, run what was already accepted, delete
    this thread's live BottomHalf objects, refuse later posts (EPIPE)."""
    st = _state()
    for bh in list(st.bhs):
        bh.delete()
    B.thread_shutdown()
    _common.reset_state(st.ident)
    if _pending:
        _raise_pending()


# --------------------------------------------------------------------------
# Bottom halves

class BottomHalf:
    """``BottomHalf(fn, *args)``: a bottom half of the current context.

    schedule() (any thread) makes fn(*args) run once at the next poll of
    its context; schedule_idle() within 10 ms without waking the loop;
    cancel() (any thread) unschedules it; delete() (owner thread) frees it.
    It stays alive until delete() or until its thread's runtime shuts
    down; as a context manager it is deleted on exit.  Do not race
    delete() with schedule() from another thread (as in C).
    """
    __slots__ = ('_p', '_keep', '_owner', '__weakref__')

    def __init__(self, fn, *args):
        if not callable(fn):
            raise TypeError('BottomHalf: %r is not callable' % (fn,))
        st = _state()
        self._p, self._keep = B.bh_new((fn, args))
        self._owner = st.ident
        st.bhs.add(self)

    def _ptr(self):
        p = self._p
        if p is None:
            raise RuntimeError('BottomHalf was deleted')
        return p

    def schedule(self) -> None:
        """Run fn(*args) once at the next poll of its context.  Any
        thread; a no-op if already scheduled."""
        p = self._p
        if p is None:
            raise RuntimeError('BottomHalf was deleted')
        _bh_schedule(p)
        if _bridges:
            _kick()

    def schedule_idle(self) -> None:
        """Like schedule() but without waking the loop: runs within 10 ms
        or sooner when the loop iterates anyway.  Any thread."""
        p = self._p
        if p is None:
            raise RuntimeError('BottomHalf was deleted')
        _bh_schedule_idle(p)
        if _bridges:
            _kick()

    def cancel(self) -> None:
        """Unschedule.  Any thread."""
        B.bh_cancel(self._ptr())

    def delete(self) -> None:
        """Cancel and free; legal from its own callback; idempotent.
        Owner thread only."""
        p = self._p
        if p is None:
            return
        if _get_ident() != self._owner:
            raise RuntimeError('BottomHalf.delete() on a thread other than '
                               'its owner')
        self._p = None
        B.bh_delete(p, self._keep)
        self._keep = None
        st = _states.get(self._owner)
        if st is not None:
            st.bhs.discard(self)

    @property
    def deleted(self) -> bool:
        return self._p is None

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        self.delete()
        return False


# --------------------------------------------------------------------------
# Requests

_SUBMIT, _PREAD, _PWRITE, _FSYNC = range(4)
_ECANCELED = _errno.ECANCELED


class Request:
    """An asynchronous request of the context that was current when it was
    made (submit, pread, pwrite, fsync).  Owner thread only, like
    concurrent.futures.Future where it can be."""
    __slots__ = ('_p', '_kind', '_fn', '_args', '_buf', '_cbuf', '_value',
                 '_exc', '_done', '_cancelled', '_callbacks', '_tok',
                 '_owner', '__weakref__')

    def _init(self, kind, st):
        self._p = None
        self._kind = kind
        self._fn = self._args = self._buf = self._cbuf = None
        self._value = self._exc = None
        self._done = self._cancelled = False
        self._callbacks = None
        self._tok = st.top
        self._owner = st.ident

    def __repr__(self):
        state = ('cancelled' if self._cancelled else
                 'done' if self._done else 'pending')
        return '<actx.Request %s %s>' % (
            ('submit', 'pread', 'pwrite', 'fsync')[self._kind], state)

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
        self._done = True
        self._fn = self._args = self._buf = self._cbuf = None
        cbs = self._callbacks
        if cbs:
            self._callbacks = None
            for cb in cbs:
                try:
                    cb(self)
                except BaseException as e:
                    _common.store_exception(e)

    def done(self) -> bool:
        """True once its done callback ran (completed, failed or
        cancelled)."""
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def running(self) -> bool:
        return not self._done

    def cancel(self) -> bool:
        """Cancel work that has not started: True if cancelled (the request
        then completes with CancelledError at the next poll of its
        context); False if it started, finished or has no pool work."""
        p = self._p
        if p is None:
            return self._cancelled
        self._check_owner('cancel')
        r = B.req_cancel(p)
        return r == 0

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
        self._check_owner('result')
        st = _states.get(self._owner) or _state()
        deadline = None
        if timeout is not None:
            deadline = B.now_ns() + int(timeout * 1e9)
        elif st.ident != _main_ident:
            return self._wait_c(st)
        while not self._done:
            self._check_current(st)
            r = _poll_nb()
            if _pending:
                _raise_pending()
            if self._done or r:
                continue
            if not _can_progress():
                raise DeadlockError('nothing in the current context can '
                                    'make progress')
            t = _timeout_ms()
            if t == 0:
                continue
            cap = _SLICE_MS
            if deadline is not None:
                left = (deadline - B.now_ns()) / 1e6
                if left <= 0:
                    raise TimeoutError()
                cap = max(1, min(cap, int(left + 0.999)))
            _wait_fd(st, t, cap)

    def _wait_c(self, st):
        # Not the main thread, no timeout: the runtime's blocking poll.
        while not self._done:
            self._check_current(st)
            r = _poll_block()
            if _pending:
                _raise_pending()
            if not r and not self._done and not _can_progress():
                raise DeadlockError('nothing in the current context can '
                                    'make progress')

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
        """Call fn(request) on the owner thread, in the request's context,
        when it is done; at once if it already is."""
        if not callable(fn):
            raise TypeError('%r is not callable' % (fn,))
        if self._done:
            fn(self)
        elif self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)

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


def _fd(fd):
    if not isinstance(fd, int):
        if hasattr(fd, 'fileno'):
            return fd.fileno()
        return operator.index(fd)
    return fd


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


# --------------------------------------------------------------------------
# Cross-thread handles

class ContextHandle:
    """A counted reference to one context (current_context()), usable from
    any thread.  call_soon(fn, *args) runs fn(*args) once on the owner
    thread while that context (or the one it was re-homed to) is current.
    While a handle is held, a blocking wait in its context keeps waiting
    for calls.  close() (or garbage collection) drops the reference."""
    __slots__ = ('_p', '_poster', '_post', '__weakref__')

    def __init__(self):
        _state()
        self._p = None
        p = B.ctx_current()
        self._poster = B.make_poster(p)
        self._post = self._poster.post
        self._p = p

    def _live(self):
        p = self._p
        if p is None:
            raise RuntimeError('ContextHandle is closed')
        return p

    def call_soon(self, fn, *args) -> None:
        """Run fn(*args) on the owner thread in this context; never inline.
        Any thread.  OSError(EPIPE) once the owner's runtime shut down.
        Calls from one thread through one handle run in the order made."""
        if not callable(fn):
            raise TypeError('call_soon: %r is not callable' % (fn,))
        if self._p is None:
            raise RuntimeError('ContextHandle is closed')
        r = self._post((fn, args))
        if r:
            raise _oserror(r)
        if _bridges:
            _kick()

    @property
    def id(self) -> int:
        """The id the context had while it was on its stack."""
        return B.ctx_id(self._live())

    def close(self) -> None:
        """Drop the reference now (also done by garbage collection).  Must
        not race with call_soon() on the same object in another thread."""
        p = self._p
        if p is not None:
            self._p = None
            self._poster.close()
            self._post = None
            B.ctx_unref(p)

    def __del__(self):
        if self._p is not None:
            self.close()

    def __eq__(self, other):
        return (isinstance(other, ContextHandle) and
                self._p is not None and other._p is not None and
                B.ctx_key(self._p) == B.ctx_key(other._p))

    def __hash__(self):
        return hash(B.ctx_key(self._live()))

    def __repr__(self):
        if self._p is None:
            return '<actx.ContextHandle closed>'
        return '<actx.ContextHandle id=%d>' % self.id


def current_context() -> ContextHandle:
    """A handle on the current context, usable from any thread."""
    return ContextHandle()


def stats() -> dict:
    """The calling thread's runtime counters (struct actx_stats)."""
    return B.stats()


# --------------------------------------------------------------------------
# asyncio

def asyncio_bridge(loop=None) -> 'AsyncioBridge':
    """Drive this thread's actx loop (its current context, normally the
    root) from an asyncio event loop running on this thread, and let
    coroutines ``await`` actx Requests.  Close it with close() or use it
    as a context manager."""
    from ._asyncio import AsyncioBridge
    return AsyncioBridge(_this, loop)


def __getattr__(name):
    if name == 'AsyncioBridge':
        from ._asyncio import AsyncioBridge
        return AsyncioBridge
    raise AttributeError(name)


import sys as _sys  # noqa: E402
_this = _sys.modules[__name__]
