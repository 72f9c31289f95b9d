"""The actx Python API over one backend.

This file is loaded once per backend (as actx._core_cffi, actx._core_swig)
with _BACKEND set by the loader in actx/__init__.py; the package re-exports
the selected one.  See the package docstring for the design.
"""
import collections
import concurrent.futures
import errno as _errno
import heapq
import importlib
import operator
import os
import sys as _sys
import threading
import time as _time

from . import _asyncio
from . import _common
from ._common import CancelledError, DeadlockError

B = importlib.import_module('actx._backend_' + _BACKEND)  # noqa: F821
_this = _sys.modules[__name__]

__all__ = [
    'push', 'pop', 'context_id', 'async_context', 'BottomHalf', 'submit',
    'pread', 'pwrite', 'fsync', 'Request', 'poll', 'flush', 'run', 'stop',
    'current_context', 'ContextHandle', 'stats', 'DeadlockError',
    'CancelledError', 'asyncio_bridge', 'AsyncioBridge', 'backend_fd',
    'backend_timeout_ms', 'thread_shutdown', 'process_queue',
    'time', 'call_later', 'call_at', 'Timer', 'add_reader', 'remove_reader',
    'add_writer', 'remove_writer', 'set_poll_max_ns',
]

BACKEND = B.NAME

_get_ident = _common.get_ident
_states = _common.states
_pending = _common.pending
_raise_pending = _common.raise_pending
_store = _common.store_exception
_Token = _common.Token
_current_task = _common.current_task
# asyncio is loaded with the package (the bridge): the running loop of
# this thread, cheaply (a C function), and its task.
_get_running_loop = _asyncio.asyncio.events._get_running_loop
_task_of = _asyncio.asyncio.current_task
_bridges = _common.bridges

_push = B.push
_pop = B.pop
_poll_nb = B.poll_nb
_poll_block = B.poll_block
_main_ident = threading.main_thread().ident
_can_progress = B.can_progress
_flush_slice = B.flush_slice
_poll_timeout = B.poll_timeout
_timeout_ms = B.backend_timeout_ms
_backend_fd = B.backend_fd
_ctx_call = B.ctx_call
_bh_schedule = B.bh_schedule
_bh_schedule_idle = B.bh_schedule_idle

# Longest single sleep in a blocking call: bounds the latency of Ctrl-C
# (a signal that lands just before the sleep starts) and of timeouts.
_SLICE_MS = 50
_SLICE_NS = _SLICE_MS * 1000000


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


def _release_thread(st):
    """Before the thread's runtime shuts down: delete its live BHs, cancel
    its timers, remove its fd handlers (their Python objects go now)."""
    for bh in list(st.bhs):
        bh.delete()
    _timers_release(st)
    for fd in list(st.fds):
        _remove_fd(st, fd, True, True)


def _shutdown_thread():
    st = _states.get(_get_ident())
    if st is not None:
        _release_thread(st)
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
    t = _Token(_current_task())
    st.stack.append(t)
    st.top = t
    return r


def _popped(st):
    """The C pop succeeded: the same on Python's stack; let the bridge run
    what became runnable in the parent."""
    stack = st.stack
    if len(stack) > 1:
        t = stack.pop()
        t.fwd = st.top = stack[-1]
        if t.timers is not None:
            _timers_popped(t, st.top)
        if st.stops:
            st.stops.discard(t)
    if _bridges:
        _kick()


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
    _popped(_state())
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

    An exit pops only the context its own entry pushed, and only when that
    context is the current one on the calling thread: an exit on another
    thread, or while a context entered later (by the same code or by
    another asyncio task) is still current, raises RuntimeError and
    changes nothing (the stack and this object stay as they were; the
    correct exit later works).  In asyncio, the context stack belongs to
    the thread, not to the task: a context held across an ``await`` is
    current for every task that runs meanwhile (see the package help).
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
        loop = _get_running_loop()
        t = _Token(None if loop is None else _task_of(loop))
        st.stack.append(t)
        st.top = t
        self._toks.append(t)
        self._ids.append(r)
        return self

    def __exit__(self, et, ev, tb):
        toks = self._toks
        st = _states.get(_get_ident())
        i = len(toks) - 1
        # Fast path: the last entry, made outside asyncio, is current here.
        if i < 0 or st is None or toks[i] is not st.top or \
                toks[i].task is not None or _get_running_loop() is not None:
            i = self._which(st)
        r = _pop()
        if r < 0:  # Python's and C's stacks disagree: say so, change nothing
            if _pending:
                _raise_pending()
            raise _oserror(r)
        del toks[i]
        del self._ids[i]
        stack = st.stack  # _popped(st), inlined
        t = stack.pop()
        t.fwd = st.top = stack[-1]
        if t.timers is not None:
            _timers_popped(t, st.top)
        if st.stops:
            st.stops.discard(t)
        if _bridges:
            _kick()
        if _pending:
            _raise_pending()
        return False

    def _which(self, st):
        """The index of the entry this exit closes (the caller's task's
        latest one), or RuntimeError when it is not the current context."""
        toks = self._toks
        if not toks:
            raise RuntimeError('async_context exited but not entered')
        stack = st.stack if st is not None else ()
        mine = [i for i, t in enumerate(toks)
                if any(t is s for s in stack)]
        if not mine:
            raise RuntimeError(
                'async_context exited on a thread other than the one that '
                'entered it; nothing was popped (exit it on its own thread)')
        task = _current_task()
        own = [i for i in mine if toks[i].task is task] or \
            [i for i in mine if toks[i].task is None]
        if not own:
            raise RuntimeError(
                'async_context exited by a task that did not enter it; '
                'nothing was popped')
        i = own[-1]
        if toks[i] is not st.top:
            raise RuntimeError(
                'async_context exited while context %d, entered later, is '
                'still current (by another asyncio task, or an unbalanced '
                'push/pop in the block); nothing was popped: contexts of a '
                'thread must be exited in the reverse order of entry, also '
                'across tasks (see help(actx))' % (len(stack) - 1))
        return i

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
    # The main thread: the runtime's blocking poll (adaptive polling
    # included, see set_poll_max_ns), without the GIL, in slices of at most
    # _SLICE_MS; between slices, and when a signal interrupts the sleep,
    # Python runs its signal handlers (Ctrl-C raises here).
    while True:
        r = _poll_timeout(_SLICE_NS)
        if _pending:
            _raise_pending()
        if r >= 0:
            return bool(r)
        if r != -_errno.ETIMEDOUT and r != -_errno.EINTR:
            raise _oserror(r)


def set_poll_max_ns(ns: int) -> None:
    """Adaptive polling for the calling thread's loop: before the runtime's
    own blocking waits sleep (run(), poll(block=True), flush() and
    Request.result(), on any thread), poll for work -
    arrived completions and calls, BHs, due timers and ready fd handlers
    (add_reader/add_writer) of the current context - for up to an adaptive
    window of at most ns nanoseconds (e.g. 50_000 to 100_000 for a loop
    that answers requests or fds quickly).  The window grows while waits
    are short and drops to nothing while the loop is idle.  0 (the
    default) turns it off.  Never changes what runs.  Raises
    OSError(EINVAL) for a negative ns.
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

    Raises DeadlockError if that can never happen.  Sleeps with the GIL
    released; interruptible by Ctrl-C (KeyboardInterrupt, the runtime stays
    usable: the work goes on and a later flush() waits for it).
    """
    if _get_ident() != _main_ident:
        # No signal handler runs off the main thread: the runtime's flush.
        _flush_done(B.flush())
        return
    # The main thread: the flush runs in C in slices of at most _SLICE_MS
    # of sleep; between slices (and when a signal interrupts the sleep)
    # Python runs its signal handlers: Ctrl-C raises here.
    ident = _get_ident()
    while True:
        r = _flush_slice(_SLICE_MS)
        if r <= 0:
            break
        if _pending and not isinstance(_pending.get(ident), Exception):
            _raise_pending()  # KeyboardInterrupt, SystemExit: at once
    _flush_done(r)


def _flush_done(r: int) -> None:
    """What a flush that returned r raises: a pending callback exception
    first, then DeadlockError or OSError for a negative r."""
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
    thread ends): delete this thread's live BottomHalf objects, cancel its
    timers and remove its fd handlers, pop every context, run what was
    already accepted, refuse later posts (EPIPE)."""
    st = _state()
    _release_thread(st)
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
# Timers and fd handlers (asyncio-like)

_ctimer_new = B.ctimer_new
_ctimer_mod = B.ctimer_mod
_ctimer_del = B.ctimer_del
_ctimer_free = B.ctimer_free
_monotonic_ns = _time.monotonic_ns  # CLOCK_MONOTONIC, as actx_now_ns()
_NS_MAX = (1 << 64) - 1
_new_timer = object.__new__
_heappush = heapq.heappush
_heappop = heapq.heappop


def time() -> float:
    """The runtime's clock: actx_now_ns() (CLOCK_MONOTONIC) in seconds;
    call_at() deadlines are on this clock.  Any thread."""
    return B.now_ns() / 1e9


# Design: the timers of one context live in its token's _Timers, over ONE
# C timer of that context (actx_timer_*) armed at the earliest deadline.
# The C timer gives every rule of the runtime (runs only while its context
# is current, on the owner thread; counted by run()/flush(); re-homed at
# pop).  Python keeps the order, cheaply for both ends:
#   - buckets: deadline >> _SHIFT (65.5 us slots) -> list of Timers in
#     creation order, and a heap of the bucket numbers: call_later is a
#     list append (a heappush for a new bucket), with a C call only when
#     the new timer is the earliest;
#   - firing: the due buckets are sorted by deadline (a stable sort, so
#     equal deadlines run in creation order; cheap on the mostly-sorted
#     lists appends make), their due part moves to `ready`, and one C
#     callback runs `ready` in order.  A timer made due by a callback runs
#     at the next poll (what a round runs is fixed when it starts), and a
#     poll nested in a callback runs the rest of `ready` (the C timer is
#     armed at 0 while any is left).
# A cancel leaves its entry behind (skipped; compacted once most entries
# are dead); the last pending timer's cancel disarms the C timer, so run()
# does not wait for it.  At a pop the child's pending timers move into the
# parent's, so the due timers of a context always run earliest first, as
# C timers do.
_SHIFT = 16
_when_of = operator.attrgetter('_when')


class _Timers:
    """The pending call_later/call_at timers of one context."""
    __slots__ = ('bk', 'heap', 'ready', 'live', 'dead', 'p', 'keep', 'armed',
                 'ident')

    def __init__(self, ident):
        # Made while its context is current: the C timer belongs to it.
        self.bk = {}      # bucket -> [Timer, ...] (may hold dead ones)
        self.heap = []    # the buckets of bk
        self.ready = collections.deque()  # due, being run, in order
        self.live = 0     # pending timers (not run, not cancelled)
        self.dead = 0     # cancelled ones still in bk or ready
        self.armed = -1   # the C timer's deadline; -1: disarmed
        self.ident = ident
        self.p, self.keep = _ctimer_new(self._fire)

    def _add(self, t, w):
        b = w >> _SHIFT
        lst = self.bk.get(b)
        if lst is None:
            self.bk[b] = [t]
            _heappush(self.heap, b)
        else:
            lst.append(t)
        self.live += 1
        if w < self.armed or self.armed < 0:
            self._arm_at(w)

    def _arm_at(self, w):
        self.armed = w
        _ctimer_mod(self.p, w)

    def _head(self):
        """The earliest pending deadline in the buckets, or -1; sorts the
        first bucket and drops what is dead at its front."""
        heap, bk = self.heap, self.bk
        while heap:
            lst = bk[heap[0]]
            lst.sort(key=_when_of)
            i = 0
            for t in lst:
                if t._tok is self:
                    break
                i += 1
            if i:
                del lst[:i]
                self.dead -= i
            if lst:
                return lst[0]._when
            del bk[_heappop(heap)]
        return -1

    def _arm(self):
        """Arm the C timer at the earliest pending deadline (0 while ready
        holds any), or disarm it."""
        if self.p is None:
            return
        w = 0 if self.ready else self._head()
        if w < 0:
            if self.armed >= 0:
                self.armed = -1
                _ctimer_del(self.p)
        elif w != self.armed:
            self.armed = w
            _ctimer_mod(self.p, w)

    def _collect(self, now):
        """Move what is due at now from the buckets to ready, in order."""
        heap, bk, ready = self.heap, self.bk, self.ready
        while heap and heap[0] << _SHIFT <= now:
            b = heap[0]
            lst = bk[b]
            lst.sort(key=_when_of)
            lo, hi = 0, len(lst)
            while lo < hi:  # the first entry not due
                mid = (lo + hi) >> 1
                if lst[mid]._when <= now:
                    lo = mid + 1
                else:
                    hi = mid
            if lo == len(lst):
                ready.extend(lst)
                del bk[_heappop(heap)]
            else:
                ready.extend(lst[:lo])
                del lst[:lo]
                break

    def _fire(self):
        """The C timer fired (and is disarmed)."""
        self.armed = -1
        ready = self.ready
        if not ready:
            self._collect(_monotonic_ns())
        popleft = ready.popleft
        while ready:
            t = popleft()
            if t._tok is not self:
                self.dead -= 1
                continue  # cancelled
            t._tok = None
            self.live -= 1
            if self.armed < 0 and ready:
                # More are due: a poll nested in fn must find them too.
                self.armed = 0
                _ctimer_mod(self.p, 0)
            try:
                t._fn(*t._args)
            except BaseException as exc:
                _store(exc)
        self._arm()

    def _compact(self):
        bk, heap = self.bk, self.heap
        for b in list(bk):
            lst = [t for t in bk[b] if t._tok is self]
            if lst:
                bk[b] = lst
            else:
                del bk[b]
        heap[:] = bk
        heapq.heapify(heap)
        live = [t for t in self.ready if t._tok is self]
        self.ready.clear()
        self.ready.extend(live)
        self.dead = 0

    def _pending(self):
        """Every pending Timer (the ready ones first)."""
        out = [t for t in self.ready if t._tok is self]
        for lst in self.bk.values():
            out += [t for t in lst if t._tok is self]
        return out

    def _release(self, tok):
        """Forget every entry; free the C timer (the token's timers go)."""
        tok.timers = None
        self.bk.clear()
        self.heap.clear()
        self.ready.clear()
        self.live = self.dead = 0
        p, self.p = self.p, None
        if p is not None:
            _ctimer_free(p, self.keep)
        self.keep = None


def _timers_here(st):
    tok = st.top
    tm = tok.timers
    if tm is None:
        tm = tok.timers = _Timers(st.ident)
    return tm


def _timers_popped(child, parent):
    """child was popped (re-homed to parent, now current): its pending
    timers join parent's; its C timer goes."""
    tm = child.timers
    moved = tm._pending()
    tm._release(child)
    if moved:
        ptm = parent.timers
        if ptm is None:
            ptm = parent.timers = _Timers(tm.ident)
        for t in moved:
            t._tok = ptm
            ptm._add(t, t._when)
        ptm._arm()


def _timers_release(st):
    """Thread shutdown: every pending timer of the thread is cancelled."""
    for tok in st.stack:
        tm = tok.timers
        if tm is not None:
            for t in tm._pending():
                t._tok = False
                t._fn = t._args = None
            tm._release(tok)


class Timer:
    """A pending call made by call_later() / call_at(): fn(*args) runs once,
    on this thread, in the context that was current when it was made (or
    the one that context was re-homed to at its pop), at a poll of that
    context at or after when().  Timers due at the same poll run earliest
    first (equal deadlines: in the order they were made).  Its exception
    is raised by the call that ran it (poll, run, flush, pop, ...).  Owner
    thread only."""
    # _tok: the _Timers holding it while pending; None once run; False
    # once cancelled.
    __slots__ = ('_fn', '_args', '_when', '_tok', '__weakref__')

    def when(self) -> float:
        """The deadline, on the clock of actx.time()."""
        return self._when / 1e9

    def cancel(self) -> None:
        """Unless it has run: it never will.  Idempotent.  Owner thread
        only."""
        tm = self._tok
        if not tm:
            return
        if _get_ident() != tm.ident:
            raise RuntimeError('Timer.cancel() on a thread other than its '
                               'owner')
        self._tok = False
        self._fn = self._args = None
        tm.live -= 1
        tm.dead += 1
        if not tm.live:
            # Nothing pending: forget the dead, disarm (run() need not
            # wait for a cancelled timer).
            tm.bk.clear()
            tm.heap.clear()
            tm.ready.clear()
            tm.dead = 0
            tm._arm()
        elif tm.dead > 64 and tm.dead > tm.live:
            tm._compact()

    def cancelled(self) -> bool:
        return self._tok is False

    def __repr__(self):
        tok = self._tok
        state = ('cancelled' if tok is False else
                 'done' if tok is None else 'pending')
        return '<actx.Timer when=%.6f %s>' % (self._when / 1e9, state)


def _timer(ns, fn, args):
    if not callable(fn):
        raise TypeError('%r is not callable' % (fn,))
    st = _states.get(_get_ident()) or _state()
    tm = st.top.timers or _timers_here(st)
    t = _new_timer(Timer)
    t._fn = fn
    t._args = args
    t._when = ns
    t._tok = tm
    tm._add(t, ns)
    if _bridges:
        _kick()
    return t


def _deadline_ns(secs, what):
    ns = secs * 1e9  # TypeError for what is not a number
    if ns != ns:
        raise ValueError('%s: NaN' % what)
    if ns <= 0:
        return 0
    if ns >= _NS_MAX:
        return _NS_MAX
    return int(ns)


def call_later(delay: float, fn, *args) -> Timer:
    """Run fn(*args) once, after delay seconds (<= 0: at the next poll),
    on this thread in the current context (see Timer)."""
    ns = delay * 1e9
    if not 0 < ns < 1e18 or not callable(fn):  # the rare cases
        ns = _deadline_ns(delay, 'call_later')
        return _timer(min(_monotonic_ns() + ns, _NS_MAX), fn, args)
    # _timer(), inlined: the common case in one Python frame.
    st = _states.get(_get_ident()) or _state()
    tm = st.top.timers or _timers_here(st)
    t = _new_timer(Timer)
    t._fn = fn
    t._args = args
    t._when = ns = _monotonic_ns() + int(ns)
    t._tok = tm
    lst = tm.bk.get(ns >> _SHIFT)  # tm._add(t, ns), inlined
    if lst is None:
        tm.bk[ns >> _SHIFT] = [t]
        _heappush(tm.heap, ns >> _SHIFT)
    else:
        lst.append(t)
    tm.live += 1
    if ns < tm.armed or tm.armed < 0:
        tm._arm_at(ns)  # a method: tm may be of the other backend's core
    if _bridges:
        _kick()
    return t


def call_at(when: float, fn, *args) -> Timer:
    """Run fn(*args) once at when, a time on the clock of actx.time(), on
    this thread in the current context (see Timer)."""
    return _timer(_deadline_ns(when, 'call_at'), fn, args)


class _FdEntry:
    """One fd's handlers on its thread: C holds one opaque for both."""
    __slots__ = ('fd', 'reader', 'writer', 'opaque', '__weakref__')

    def __init__(self, fd):
        self.fd = fd
        self.reader = self.writer = None
        self.opaque = B.fd_opaque(self)

    def _read(self):
        r = self.reader
        if r is not None:
            r[0](*r[1])

    def _write(self):
        w = self.writer
        if w is not None:
            w[0](*w[1])


def _add_fd(fd, fn, args, reader):
    if not callable(fn):
        raise TypeError('%r is not callable' % (fn,))
    fd = _fd(fd)
    st = _states.get(_get_ident()) or _state()
    e = st.fds.get(fd)
    new = e is None
    if new:
        e = _FdEntry(fd)
    old = e.reader, e.writer
    if reader:
        e.reader = (fn, args)
    else:
        e.writer = (fn, args)
    r = B.set_fd(fd, e.opaque, e.reader is not None, e.writer is not None)
    if r < 0:
        e.reader, e.writer = old
        raise _oserror(r)
    if new:
        st.fds[fd] = e


def _remove_fd(st, fd, reader, writer):
    e = st.fds.get(fd) if st is not None else None
    if e is None:
        return False
    had = (reader and e.reader is not None) or \
        (writer and e.writer is not None)
    if reader:
        e.reader = None
    if writer:
        e.writer = None
    if e.reader is None and e.writer is None:
        del st.fds[fd]
        B.set_fd(fd, e.opaque, False, False)  # an fd closed meanwhile: gone
    elif had:
        r = B.set_fd(fd, e.opaque, e.reader is not None,
                     e.writer is not None)
        if r < 0:
            del st.fds[fd]
            raise _oserror(r)
    return had


def add_reader(fd, fn, *args) -> None:
    """Run fn(*args) whenever fd (an int or an object with fileno()) is
    readable (or reports hang-up or an error), on this thread while the
    current context is current.  Replaces a reader fd already had on this
    thread; moves fd's writer, if any, to the current context too.  fd must
    be pollable (not a regular file: OSError EPERM) and open (EBADF);
    remove the handler before closing fd.  Handlers re-home with their
    context at pop."""
    _add_fd(fd, fn, args, True)


def add_writer(fd, fn, *args) -> None:
    """Like add_reader() for writability."""
    _add_fd(fd, fn, args, False)


def remove_reader(fd) -> bool:
    """Stop watching fd for reading on this thread; True if it was.  A
    writer it keeps moves to the current context."""
    return _remove_fd(_states.get(_get_ident()), _fd(fd), True, False)


def remove_writer(fd) -> bool:
    """Stop watching fd for writing on this thread; True if it was.  A
    reader it keeps moves to the current context."""
    return _remove_fd(_states.get(_get_ident()), _fd(fd), False, True)


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

AsyncioBridge = _asyncio.bridge_class(_this, """\
``AsyncioBridge(loop=None)``: drive the calling thread's actx loop (its
current context) from the asyncio event loop ``loop`` (default: the
running one) running on this thread, so that actx callbacks run and
coroutines can ``await`` actx Requests (or
``asyncio.wrap_future(request)``).  One bridge per thread; close() it or
use it as a context manager.  Exceptions from actx callbacks go to the
asyncio loop's exception handler (KeyboardInterrupt and SystemExit
propagate).""")


def asyncio_bridge(loop=None) -> AsyncioBridge:
    """Same as AsyncioBridge(loop)."""
    return AsyncioBridge(loop)



# help(actx) shows the public names as actx's own.
for _n in __all__:
    _o = globals()[_n]
    if getattr(_o, '__module__', None) == __name__:
        _o.__module__ = 'actx'
del _n, _o
