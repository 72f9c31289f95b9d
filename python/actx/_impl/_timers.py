"""Timers: call_later, call_at (asyncio-like)."""
import collections
import contextvars
import heapq
import operator
import time as _time

from ._backend import B
from . import _common
from ._thread import (
    _bridges, _get_ident, _here, _kick, _pool_states, _state, _state_of,
    _store)

__all__ = ['Timer', 'call_at', 'call_later', 'time']

# --------------------------------------------------------------------------
# Timers and fd handlers (asyncio-like)

_ctimer_new = B.timer_new
_ctimer_mod = B.timer_mod
_ctimer_del = B.timer_del
_ctimer_free = B.timer_free
_monotonic_ns = _time.monotonic_ns  # CLOCK_MONOTONIC, as actx_now_ns()
_NS_MAX = (1 << 64) - 1
# _Timers.armed when the C timer is disarmed: above every deadline, so
# that call_later tests `ns < armed` alone.
_DISARMED = 1 << 64
_copy_context = contextvars.copy_context
_Context = contextvars.Context
_heappush = heapq.heappush
_heappop = heapq.heappop


def time() -> float:
    """The runtime's clock: actx_now_ns() (CLOCK_MONOTONIC) in seconds;
    call_at() deadlines are on this clock.  Any thread."""
    return B.now_ns() / 1e9


# Design: the timers of one context live in its token's _Timers, over ONE
# C timer of that context (actx_timer_*) armed at the earliest deadline.
# The C timer gives every rule of the runtime (runs only while its context
# is current, on the owner thread; waited for by run() and poll(True),
# not by flush(), which waits for requests and BHs only; re-homed at
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
        self.armed = _DISARMED  # the C timer's deadline, if armed
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
        if w < self.armed:
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
            if self.armed is not _DISARMED:
                self.armed = _DISARMED
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
        self.armed = _DISARMED
        ready = self.ready
        if not ready:
            self._collect(_monotonic_ns())
        while ready:
            # The timers that kept no Context (see call_later) run in a new
            # empty one, entered once for as many of them as leave it
            # empty: nothing tells them from one Context each (a copy is
            # a new object either way, and no API returns the Context code
            # runs in); _run returns when one set a var.
            cx = _Context()
            cx.run(self._run, cx)
        self._arm()

    def _run(self, empty):
        """Run the due timers in order; those that kept no Context run in
        empty (the current Context), until one leaves it not empty."""
        ready = self.ready
        popleft = ready.popleft
        while ready:
            t = popleft()
            if t._tok is not self:
                self.dead -= 1
                continue  # cancelled
            t._tok = None
            self.live -= 1
            if self.armed is _DISARMED and ready:
                # More are due: a poll nested in fn must find them too.
                self.armed = 0
                _ctimer_mod(self.p, 0)
            cx = t._cx
            if cx is None:
                try:
                    t._fn(*t._args)
                except BaseException as exc:
                    _store(exc)
                if empty:
                    return  # a var is set: the next timer needs a new one
            else:
                try:
                    if t._args:
                        cx.run(t._fn, *t._args)
                    else:  # no bound method, list and tuple for *args
                        cx.run(t._fn)
                except BaseException as exc:
                    _store(exc)

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
            _ctimer_free(p)
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


@_common.loop_bound
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
    __slots__ = ('_fn', '_args', '_when', '_tok', '_cx', '__weakref__')

    def when(self) -> float:
        """The deadline, on the clock of actx.time()."""
        return getattr(self, '_when', 0) / 1e9

    def cancel(self) -> None:
        """Unless it has run: it never will.  Idempotent.  Owner thread
        only."""
        tm = getattr(self, '_tok', None)
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
        return getattr(self, '_tok', None) is False

    def __repr__(self):
        tok = getattr(self, '_tok', None)
        when = getattr(self, '_when', None)
        if when is None:
            return '<actx.Timer unscheduled>'  # made by Timer(), not call_*
        state = ('cancelled' if tok is False else
                 'done' if tok is None else 'pending')
        return '<actx.Timer when=%.6f %s>' % (when / 1e9, state)


def _timer(ns, fn, args):
    if not callable(fn):
        raise TypeError('%r is not callable' % (fn,))
    st = _here() or _state()
    tm = st.top.timers or _timers_here(st)
    t = Timer()  # no __init__: cheaper than object.__new__(Timer)
    t._fn = fn
    t._args = args
    cx = _copy_context()
    t._cx = cx if cx else None  # see call_later
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
    st = _state_of(_get_ident())
    if st is None or _pool_states:  # _here(), inlined
        st = _here() or _state()
    tm = st.top.timers or _timers_here(st)
    t = Timer()  # no __init__: cheaper than object.__new__(Timer)
    t._fn = fn
    t._args = args
    # A pending timer keeps no Context when the copy is empty: it runs in
    # a new empty one, which no one can tell from the copy (a copy is a
    # new object either way; no API returns the Context code runs in).
    cx = _copy_context()
    t._cx = cx if cx else None
    t._when = ns = _monotonic_ns() + int(ns)
    t._tok = tm
    lst = tm.bk.get(ns >> _SHIFT)  # tm._add(t, ns), inlined
    if lst is None:
        tm.bk[ns >> _SHIFT] = [t]
        _heappush(tm.heap, ns >> _SHIFT)
    else:
        lst.append(t)
    tm.live += 1
    if ns < tm.armed:
        tm._arm_at(ns)  # a method: tm may be of the other backend's core
    if _bridges:
        _kick()
    return t


def call_at(when: float, fn, *args) -> Timer:
    """Run fn(*args) once at when, a time on the clock of actx.time(), on
    this thread in the current context (see Timer)."""
    return _timer(_deadline_ns(when, 'call_at'), fn, args)
