"""Requests: submit, pread, pwrite, fsync."""
import concurrent.futures
import contextvars
import errno as _errno
import operator
import os
import threading

from ._backend import B
from . import _common
from ._common import CancelledError, DeadlockError
from ._thread import (
    _bridge_of, _can_progress, context_timeout, _fd, _get_ident, _here, int_arg,
    _Ended, _main_ident, _nested, _oserror, _pending, _poll_block,
    _poll_timeout,
    _pool_states, _raise_pending, _SLICE_NS, _state, _state_of, timed_out,
    _timeout_ns)
from ._context import context_id
from ._asyncio import asyncio

__all__ = ['Request', 'fsync', 'new_request', 'pread', 'pwrite', 'submit']

# --------------------------------------------------------------------------
# Requests

_SUBMIT, _PREAD, _PWRITE, _FSYNC, _NEW = range(5)
_KINDS = ('submit', 'pread', 'pwrite', 'fsync', 'new_request')
_ECANCELED = _errno.ECANCELED


_Future = concurrent.futures.Future
_f_init = _Future.__init__
_f_set_result = _Future.set_result
_f_set_exception = _Future.set_exception
_f_cancel = _Future.cancel
_f_notify_cancel = _Future.set_running_or_notify_cancel
_f_add_done_callback = _Future.add_done_callback
_InvalidStateError = concurrent.futures.InvalidStateError
_copy_context = contextvars.copy_context
_claim_lock = threading.Lock()
_cb_lock = threading.Lock()  # Request._cbs
_init_lock = threading.Lock()
# What Future.__init__ makes (Request._future).
_FUTURE_STATE = frozenset(vars(_Future()))


class _FutureState:
    """A name Future.__init__ sets (concurrent.futures.wait() and
    as_completed() read them directly), made on first use: the class
    attribute finds it missing from the instance, runs Request._future(),
    and from then on the instance's own value hides it.  (A __getattr__
    would do the same, but it keeps CPython from specialising every other
    attribute access on requests: 10% of a submit.)"""
    __slots__ = ('name',)

    def __init__(self, name):
        self.name = name

    def __get__(self, req, cls=None):
        if req is None:
            return self
        req._future()
        try:
            return req.__dict__[self.name]
        except KeyError:
            raise AttributeError('%r object has no attribute %r'
                                 % (type(req).__name__, self.name)) from None


@_common.loop_bound
class Request(_Future):
    """An asynchronous request of the context that was current when it was
    made (submit, pread, pwrite, fsync, new_request): a
    concurrent.futures.Future.

    It completes only on its owner thread (the one that made it), while its
    context (or the one that context was re-homed to) is current: inside
    poll / flush / run / result there, or the asyncio bridge's poll.
    result(), exception() and cancel() of a request made by submit, pread,
    pwrite or fsync are owner-thread only; done callbacks run on the owner
    thread, in the request's context, each in a copy of the contextvars
    context current when it was added (also those of a cancelled request:
    when its completion, -ECANCELED, runs there).  Other threads may wait
    for it with concurrent.futures.wait() / as_completed() or ``await``
    (the owner must keep polling; on the owner thread those would wait
    for ever).  ``await`` of a cancelled request cancels the awaiting
    task (asyncio.CancelledError), as for a cancelled asyncio future.
    set_result() and set_exception() complete a new_request() request
    (any thread, once); actx completes the others."""
    __slots__ = ('_p', '_kind', '_fn', '_args', '_buf', '_cbuf', '_value',
                 '_exc', '_fin', '_cancelled', '_claimed', '_tok', '_owner',
                 '_cx', '_inited', '_published', '_cbs', '_shared',
                 '_done_ran')

    def __init__(self):
        raise TypeError('actx.Request is made by submit(), pread(), '
                        'pwrite(), fsync() and new_request()')

    def _init(self, kind, st):
        # Future.__init__ (a Condition) waits for the first use of the
        # Future machinery (_future): most requests are only ever polled
        # for by their owner.
        self._p = None
        self._kind = kind
        self._fn = self._args = self._buf = self._cbuf = self._cx = None
        self._value = self._exc = None
        self._fin = self._cancelled = self._claimed = False
        self._inited = self._published = False
        # The done callbacks (add_done_callback) are the request's own,
        # not its Future part's: they run when its completion runs on the
        # owner (_done_ran), also a cancelled request's.  _shared: one was
        # added by another thread (then both sides take the list under
        # _cb_lock; see add_done_callback).
        self._cbs = None
        self._shared = self._done_ran = False
        self._tok = st.top
        self._owner = st.ident

    def _future(self):
        """Initialise the Future part (once, any thread); a request that
        is already complete is published to it at once."""
        with _init_lock:
            if self._inited:
                return
            _f_init(self)
            self._inited = True
        if self._fin:
            self._publish()

    def _publish(self):
        """The request is complete (_fin): complete its Future part, once.
        That wakes concurrent.futures waiters, result() on other threads
        and awaiting tasks (_Waker, the only callbacks its Future part
        has); its done callbacks are the request's own (_run_callbacks)."""
        with _init_lock:
            if self._published:
                return
            self._published = True
        if self._cancelled:
            _f_cancel(self)
            # Wakes concurrent.futures.wait()/as_completed() waiters, as
            # an executor does for a cancelled future (returns False).
            _f_notify_cancel(self)
        elif self._exc is not None:
            _f_set_exception(self, self._exc)
        else:
            _f_set_result(self, self._value)

    def _run_callbacks(self):
        """The done callbacks added so far, in order (each in its copy of
        the contextvars context; its exception stored for the API call)."""
        with _cb_lock:
            cbs, self._cbs = self._cbs, None
        if cbs:
            for cb in cbs:
                cb(self)

    def __repr__(self):
        state = ('cancelled' if self._cancelled else
                 'done' if self._fin else 'pending')
        return '<actx.Request %s %s>' % (_KINDS[self._kind], state)

    # Owner thread, from the done trampoline.
    def _complete(self, ret):
        self._p = None
        buf, self._buf = self._buf, None
        self._fn = self._args = self._cbuf = self._cx = None
        kind = self._kind
        if kind == _NEW:
            st = _state_of(self._owner)
            if st is not None:
                st.newreqs.pop(self, None)
        if self._fin:
            # Cancelled already (cancel() returned True): its done
            # callbacks waited for this.
            self._callbacks_now()
            return
        if ret == -_ECANCELED:
            # Work functions and new_request() report through
            # _value/_exc (ret 0), so -ECANCELED is always a cancel.
            self._value = self._exc = None
            self._cancelled = True
        elif kind == _SUBMIT or kind == _NEW:
            pass  # _value / _exc were set by the work function or setter
        elif ret < 0:
            self._exc = OSError(-ret, os.strerror(-ret))
        elif kind == _PREAD:
            self._value = memoryview(buf)[:ret].tobytes()
        elif kind == _PWRITE:
            self._value = ret
        self._fin = True
        if self._inited:
            self._publish()
        # (As _callbacks_now, inlined: the path of every completion.)
        self._done_ran = True
        if self._cbs is not None or self._shared:
            self._run_callbacks()

    def _loop_gone(self):
        """Its loop was shut down before its completion ran (any thread:
        the refused hook, or the shutdown itself for a new_request()
        nobody completed): it fails with DeadlockError, which wakes its
        waiters on other threads.  Its done callbacks run here, as
        concurrent.futures runs them on the thread that completes a future:
        the owner, where they would have run, has no loop left, and a done
        future whose callbacks never run hangs asyncio.wrap_future() and
        any other waiter that uses add_done_callback().  One added from
        now on runs at once where it is added, as for any done request."""
        self._p = None
        self._fn = self._args = self._buf = self._cbuf = self._cx = None
        published = self._fin  # cancelled already, and published so
        if not published:
            self._value = None
            self._exc = _gone_error()
            self._fin = True
        # Before waiters wake and the list is taken: an adder woken by
        # this failure, or that finds the list taken, runs its own at
        # once (add_done_callback).
        self._done_ran = True
        if not published and self._inited:
            self._publish()
        with _cb_lock:
            cbs, self._cbs = self._cbs, None
        for cb in cbs or ():
            try:
                cb.cx.run(cb.fn, self)
            except BaseException as e:
                # No API call of this thread is the callback's caller.
                _common._unraisable(e, 'done callback of a request whose '
                                    'loop shut down', self)

    def _abandon(self):
        """A new_request() request nobody completed when its loop shut
        down: complete it now (C refuses it and frees it; the refused hook
        fails it), so that nothing waits for it for ever; a later
        set_result() finds it complete.  One that another thread claimed
        first (its set_result(), set_exception() or cancel() is under
        way) is left to that completion, which C refuses in turn: the
        refused hook fails it then, and _p must stay until it is read."""
        if self._claim():
            B.req_complete(self._p, -_ECANCELED)  # refused: -EPIPE
            self._loop_gone()

    def _callbacks_now(self):
        """Owner, its completion ran: the done callbacks run now; any
        added from here on run at once where they are added."""
        self._done_ran = True
        # After that store: an adder on another thread that was not seen
        # here (_shared still False) sees _done_ran and runs its own.
        if self._cbs is not None or self._shared:
            self._run_callbacks()

    def done(self) -> bool:
        """True once it completed (or was cancelled).  Any thread."""
        return self._fin

    def cancelled(self) -> bool:
        return self._cancelled

    def running(self) -> bool:
        return False

    def cancel(self) -> bool:
        """Cancel a request whose work has not started (a new_request()
        one: not completed yet): True if cancelled, False if it started,
        finished or has no pool work, or if its loop was shut down
        (thread_shutdown(), the thread's end) before it completed.  On
        another thread than its owner (a new_request() request aside:
        any thread) it cannot cancel: False, and a request of a
        LoopThread's root context is cancelled there soon (as when a
        task awaiting it is cancelled).

        When it returns True, cancelled() and done() are True at once,
        result() raises CancelledError, concurrent.futures.wait() and
        as_completed() see it done, and a task awaiting it is cancelled
        (``await`` raises asyncio.CancelledError, as for a cancelled
        asyncio future and as asyncio.wrap_future(request)).  Its
        done callbacks (also those added from now until then) run later,
        as any request's: on the owner thread, in the request's context,
        when its completion (-ECANCELED) runs there (poll, flush, run,
        result, or the pop that makes its context current)."""
        if self._fin:
            return self._cancelled
        if self._tok.live().__class__ is _Ended:
            return False  # its loop was shut down (C may have freed it)
        if self._kind == _NEW:
            return self._cancel_new() or self._cancelled
        p = self._p
        if p is None:
            return False
        if _get_ident() != self._owner:
            # actx_req_cancel() is owner-thread only.  False, not an
            # exception, as concurrent.futures.Future.cancel() on any
            # thread (asyncio.wrap_future() cancels its source from the
            # awaiting loop's thread); the owner cancels it when it is a
            # LoopThread's root request, as for an awaiting task.
            self._cancel_at_owner()
            return False
        if B.req_cancel(p) != 0:
            return False
        return self._cancelled_now()

    def _cancel_new(self):
        """Cancel a new_request() request unless it was completed (any
        thread): True if this call cancelled it."""
        if not self._claim():
            return False
        # Its completion (-ECANCELED) goes to the owner as any other.  A
        # refused one (its loop shut down meanwhile) cancels nothing: the
        # refused hook failed the request (cancel() never raises).
        if B.req_complete(self._p, -_ECANCELED) < 0:
            return False
        return self._cancelled_now()

    def _cancelled_now(self):
        """cancel() succeeded: cancelled() and done() are True from now on.
        The done (-ECANCELED) still comes at a later poll on the owner; it
        runs the done callbacks and releases the request then.  True."""
        self._cancelled = True
        self._fin = True
        if self._inited:
            self._publish()
        return True

    def _cancel_at_owner(self):
        h = _common.loop_handles.get(self._owner)
        st = _state_of(self._owner)
        if h is None or st is None:
            return
        if self._tok.live() is st.stack[0]:
            try:
                h.call_soon(self._cancel_if_pending)
            except (OSError, RuntimeError):
                pass  # the loop ended meanwhile

    def _cancel_if_pending(self):
        if not self._fin and self._p is not None:
            self.cancel()

    def _claim(self):
        with _claim_lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def _complete_c(self, ret):
        r = B.req_complete(self._p, ret)
        if r < 0:
            raise _oserror(r)

    def set_result(self, result) -> None:
        """Complete a new_request() request with result (any thread, at
        most once: InvalidStateError after that)."""
        self._check_new()
        self._claim_new('set_result')
        self._value = result
        self._complete_c(0)

    def set_exception(self, exception) -> None:
        """Complete a new_request() request with exception, an exception
        instance or class (any thread, at most once: InvalidStateError
        after that).  A call that raises TypeError (not an exception)
        completes nothing."""
        self._check_new()
        # Checked before the claim: a refused call is no completion.
        if isinstance(exception, type) and \
                issubclass(exception, BaseException):
            exception = exception()
        if not isinstance(exception, BaseException):
            raise TypeError('set_exception: %r is not an exception'
                            % (exception,))
        self._claim_new('set_exception')
        self._exc = exception
        self._complete_c(0)

    def _check_new(self):
        if self._kind != _NEW:
            raise RuntimeError('an actx Request of %s() is completed by '
                               'actx only' % _KINDS[self._kind])

    def _claim_new(self, what):
        if not self._claim():
            raise _InvalidStateError('%s: the request is already complete'
                                     % what)

    def set_running_or_notify_cancel(self):
        raise RuntimeError('an actx Request is completed by actx only')

    def _check_owner(self, what):
        if _get_ident() != self._owner:
            raise RuntimeError('Request.%s() on a thread other than its '
                               'owner: it completes only there' % what)

    def _check_current(self, st):
        """DeadlockError unless the request's context (or the one it was
        re-homed to) is the current one."""
        t = self._tok = self._tok.live()
        if t is not st.top:
            if t.__class__ is _Ended:
                raise _gone_error()
            raise DeadlockError(
                'the request belongs to an outer context: it cannot '
                'complete while context %d is current' % context_id())

    def _wait(self, timeout):
        # The runtime's blocking poll: on the main thread or with a timeout
        # in slices (actx_poll_timeout; between them Python runs its signal
        # handlers and the deadline is checked), else in one call.
        if _pending and _get_ident() in _pending:
            return _nested(self._wait, timeout)
        self._check_owner('result')
        st = _state_of(self._owner) or _state()
        deadline = None
        if timeout is not None:
            deadline = B.now_ns() + _timeout_ns(timeout)
        sliced = deadline is not None or st.ident == _main_ident
        while not self._fin:
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
            if r == 0 and not self._fin and not _can_progress():
                raise DeadlockError('nothing in the current context can '
                                    'make progress')
            if (r == 0 or r == -_errno.ETIMEDOUT) and not self._fin and \
                    timed_out():
                raise context_timeout()
            if r < 0 and r != -_errno.ETIMEDOUT and r != -_errno.EINTR:
                raise _oserror(r)

    def result(self, timeout: float = None):
        """Poll this context until the request is done, then return its
        value: fn's return value (submit), the bytes read (pread), the
        byte count written (pwrite), None (fsync).  Re-raises the work
        function's exception, OSError for an I/O error, CancelledError if
        cancelled, DeadlockError at once if it belongs to an outer context
        or can never complete, TimeoutError after timeout seconds,
        ContextTimeout once the current context's deadline passed."""
        if not self._fin:
            self._wait(timeout)
        if self._cancelled:
            raise CancelledError()
        if self._exc is not None:
            raise self._exc
        return self._value

    def exception(self, timeout: float = None):
        """Like result() but returns the exception (None on success)."""
        if not self._fin:
            self._wait(timeout)
        if self._cancelled:
            raise CancelledError()
        return self._exc

    def add_done_callback(self, fn) -> None:
        """Call fn(request) when it is done: on the owner thread, in the
        request's context, in a copy of the contextvars context current
        now; at once (on the calling thread) if it already is.  Any
        thread.  Its exception is raised by the call that ran it.  (A
        request cancelled whose completion has not run yet is done, but
        its callbacks wait for that completion: fn joins them.  One whose
        loop shut down before its completion ran fails on the thread that
        learns it, and its callbacks run there: _loop_gone.)"""
        if not callable(fn):
            raise TypeError('%r is not callable' % (fn,))
        if self._done_ran:
            # In a copy, as every done callback: a var fn sets stays its.
            _copy_context().run(fn, self)
            return
        cb = _DoneCallback(fn, _copy_context())
        other = _get_ident() != self._owner
        if other:
            # Marked before it is added; the owner sets _done_ran, then
            # reads _shared: one of the two sees the other's store.
            self._shared = True
        with _cb_lock:
            if self._cbs is None:
                self._cbs = [cb]
            else:
                self._cbs.append(cb)
        if self._done_ran:
            # The owner (or the failure of a request whose loop shut down,
            # on any thread: _loop_gone) may have run the list before this
            # one was in it: what is left runs here (each is taken once,
            # under the lock).
            self._run_callbacks()

    def __await__(self):
        if not self._fin:
            loop = asyncio.get_running_loop()
            me = _get_ident()
            if me == self._owner:
                br = _bridge_of(me)
                if br is None or br._loop is not loop:
                    raise RuntimeError('await on an actx Request on its '
                                       'owner thread needs '
                                       'actx.asyncio_bridge() on this loop')
                self._check_current(_here() or _state())
            fut = loop.create_future()
            self._inited or self._future()
            _f_add_done_callback(self, _Waker(fut, loop, me))
            try:
                yield from fut.__await__()
            except BaseException:
                # wait_for() timing out, the task cancelled: the request
                # is cancelled too - here if this thread may, else by its
                # owner when it is a LoopThread and the request belongs
                # to its root context (its handle reaches it there).
                if fut.cancelled() and not self._fin:
                    if me == self._owner or self._kind == _NEW:
                        self.cancel()
                    else:
                        self._cancel_at_owner()
                raise
        if self._cancelled:
            # As asyncio for a cancelled future (and asyncio.wrap_future):
            # the awaiting task is cancelled, not failed.
            raise asyncio.CancelledError()
        return self.result()


for _name in _FUTURE_STATE:
    setattr(Request, _name, _FutureState(_name))
del _name


class _DoneCallback:
    """A done callback in the copy of the contextvars context current when
    it was added; its exception is raised by the API call that ran it."""
    __slots__ = ('fn', 'cx')

    def __init__(self, fn, cx):
        self.fn = fn
        self.cx = cx

    def __call__(self, req):
        try:
            self.cx.run(self.fn, req)
        except BaseException as e:
            _common.store_exception(e)


class _Waker:
    """Wakes an awaiting coroutine: directly on the loop's thread, else
    through call_soon_threadsafe (as asyncio.wrap_future)."""
    __slots__ = ('fut', 'loop', 'ident')

    def __init__(self, fut, loop, ident):
        self.fut = fut
        self.loop = loop
        self.ident = ident

    def __call__(self, req):
        if _get_ident() == self.ident:
            # A loop closed with the task still waiting: nobody awaits
            # any more (as asyncio.wrap_future; set_result would raise).
            if not self.loop.is_closed():
                _wake(self.fut)
        else:
            try:
                self.loop.call_soon_threadsafe(_wake, self.fut)
            except RuntimeError:
                pass  # the loop closed: nobody awaits any more


def _gone_error():
    return DeadlockError('the request can never complete: its loop was shut '
                         'down (thread_shutdown(), or its thread ended) '
                         'before it completed')


def _wake(fut):
    if not fut.done():
        fut.set_result(None)


def _new_request(kind):
    st = _state_of(_get_ident())
    if st is None or _pool_states:  # _here(), inlined
        st = _here() or _state()
    req = Request.__new__(Request)
    req._init(kind, st)
    return req


def new_request() -> Request:
    """A request of the current context that any thread completes, once,
    with set_result(value) or set_exception(exc); it completes (its done
    callbacks run, result() returns) on this thread like any other."""
    st = _state_of(_get_ident())
    if st is None or _pool_states:  # _here(), inlined
        st = _here() or _state()
    req = Request.__new__(Request)
    req._init(_NEW, st)
    req._p = B.req_new(req)
    st.newreqs[req] = None  # cancelling its context cancels it
    return req


def submit(fn, *args) -> Request:
    """Run fn(*args) on a pool thread (it takes the GIL there), in a copy
    of the caller's contextvars context; the returned Request completes in
    the current context."""
    if not callable(fn):
        raise TypeError('submit: %r is not callable' % (fn,))
    req = _new_request(_SUBMIT)
    req._fn = fn
    req._args = args
    # None for an empty copy: run_work runs fn in a new empty Context
    # (as _common.Poster's calls: nothing tells the two apart).
    cx = _copy_context()
    req._cx = cx if cx else None
    req._p = B.submit(req)
    return req


def pread(fd, n: int, offset: int = 0) -> Request:
    """Read up to n bytes at offset on the pool; result() is the bytes read
    (short at end of file)."""
    fd = _fd(fd)
    n = operator.index(n)
    offset = int_arg(offset, -(1 << 63), (1 << 63) - 1, 'offset')
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
    offset = int_arg(offset, -(1 << 63), (1 << 63) - 1, 'offset')
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
