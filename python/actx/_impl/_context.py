"""The context stack: push, pop, async_context."""

from ._backend import B
from ._common import ContextTimeout
from . import _common
from ._thread import (
    _bridges, _current_task, _get_ident, _get_running_loop, _kick, _oserror,
    _Ended, _here, _nested, _pool_states, _state_of,
    _pending, _pop, _push, _raise_pending, refuse_bool, _state, _task_of,
    timed_out,
    _Token)
from ._timers import _timers_popped
from ._asyncio import asyncio

# The exception of a task being cancelled (a BaseException, not
# concurrent.futures' CancelledError).
_TaskCancelled = asyncio.CancelledError

__all__ = ['async_context', 'context_id', 'pop', 'push']

# --------------------------------------------------------------------------
# Context stack

def push() -> int:
    """Enter a new context; return its id (its depth, >= 1).

    From now on only callbacks of the new context run on this thread until
    the matching pop().  Prefer ``with async_context():``.
    """
    t = None
    try:
        r = _push()
        if r < 0:
            raise _oserror(r)
        st = _state()
        t = _Token(_current_task(), st.top.dl)
        st.stack.append(t)
        st.top = t
        return r
    except BaseException:  # see _enter_undo
        _enter_undo(None, t)
        raise


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
        if st.top.left is not None:
            _pop_deferred(st)
    if _bridges:
        _kick()


def _pop_deferred(st):
    """The context now current was left by a cancelled task while a later
    one was current (async_context.__exit__): cancel and pop it now, and
    so on down the stack.  Exceptions of callbacks that run meanwhile are
    stored (_pending) for the caller to raise."""
    stack = st.stack
    while len(stack) > 1 and st.top.left is not None:
        t = st.top
        cm = t.left
        _cancel_context(st)
        if _pop() < 0:  # cannot happen: t is C's current context
            break
        t.left = None
        _left(cm, st, t)


def _left(cm, st, t):
    """Python's side of the C pop of t's context, entered by cm: t leaves
    cm's entries and the top of st's stack; its timers go to the parent.
    (async_context.__exit__ has it inline: the hot path.)"""
    toks = cm._toks
    for j in range(len(toks) - 1, -1, -1):
        if toks[j] is t:
            del toks[j]
            break
    stack = st.stack
    if stack[-1] is t:
        stack.pop()
    t.fwd = st.top = stack[-1]
    if t.timers is not None:  # _timers_popped clears it
        _timers_popped(t, st.top)
    if st.stops:
        st.stops.discard(t)


# A signal's exception (Ctrl-C: a Python signal handler that raises) can
# land at any bytecode, also between a C push or pop and Python's record
# of it in async_context.__enter__/__exit__ (and push(), pop()).  Left
# there, C's stack and Python's would disagree for good (a context no exit
# pops, a popped one Python thinks current).  Each catches it and finishes
# or undoes its work before it propagates: with the two stacks in step, as
# if the exception had come just before the entry or just after the exit.

def _enter_undo(cm, t):
    """__enter__ (cm) or push() (cm None) raised: undo what it did of its
    push (t: its token, if made)."""
    st = _here()
    if st is None:
        if B.context_id() == 0:
            return
        st = _state()  # the thread's first push: its state not made yet
    stack = st.stack
    if t is not None:
        toks = cm._toks if cm is not None else ()
        if toks and toks[-1] is t:
            toks.pop()
        if stack[-1] is t:
            stack.pop()
        st.top = stack[-1]
    if B.context_id() > len(stack) - 1:
        _pop()  # pushed in C, not recorded: nothing of it ran


def _exit_again(cm, et, ev, tb):
    """__exit__ raised before it knew which context it pops: exit now.  (A
    refusal, the exit on a wrong thread say, is refused again the same
    way: the first exception is the one that propagates.)"""
    try:
        cm.__exit__(et, ev, tb)
    except BaseException:
        pass


def _exit_finish(cm, st, t):
    """__exit__ raised before it finished popping t's context: finish,
    C's pop first if it did not happen yet.  Stacks that already
    disagreed (the pop refused) are left as they are."""
    stack = st.stack
    depth = B.context_id()
    if depth == t.cid and stack[-1] is t:
        if _pop() < 0:
            return
        depth -= 1
    if depth == t.cid - 1:
        _left(cm, st, t)


def pop() -> None:
    """Leave the current context.

    Runs its scheduled bottom halves first (their exceptions propagate from
    here), then re-homes everything still alive in it to the parent.
    Raises OSError(EINVAL) at the root context.
    """
    if _pending and _get_ident() in _pending:
        return _nested(pop)
    try:
        r = _pop()
        if r >= 0:
            _popped(_state())
    except BaseException:  # see _enter_undo
        st = _here()
        if st is not None and B.context_id() < len(st.stack) - 1:
            _popped(st)  # popped in C, not yet in Python
        raise
    if r < 0:
        if _pending:
            _raise_pending()
        raise _oserror(r)
    if _pending:
        _raise_pending()


def context_id() -> int:
    """Depth of the current context (the root is 0)."""
    return B.context_id()


@_common.loop_bound
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
    correct exit later works).  Except when an asyncio task that entered
    it is being cancelled (the block left by asyncio.CancelledError): the
    task cannot exit again later, so the exit is deferred: the
    CancelledError propagates unchanged, and the context stays pushed
    until the contexts above it are popped; the pop that makes it current
    again cancels it (as ``ctx.cancel()``) and pops it too.  In asyncio,
    the context stack belongs to the thread, not to the task: a context
    held across an ``await`` is current for every task that runs
    meanwhile (see the package help).

    ``async_context(timeout=None, deadline=None)`` gives the context a
    deadline: timeout seconds after the entry, or deadline on the clock of
    actx.time() (the earlier if both).  Its effective deadline
    (``ctx.deadline``, None if none) is the earlier of its own and the
    enclosing context's.  Once it passed, blocking calls inside
    (Request.result(), flush(), poll(True), run()) raise ContextTimeout
    (a TimeoutError); leaving the block by a ContextTimeout cancels the
    context (``ctx.cancel()``) before it is popped when its own effective
    deadline has passed (its own, or an enclosing one it inherited).  An
    inner context's ContextTimeout that passes through a block whose
    effective deadline has not passed (or that has none) leaves that
    context alone: it is popped as for any other exception (its requests
    re-homed to the parent, not cancelled).  A timeout <= 0 or a
    deadline already past: it has passed at the entry; an infinite (or
    unreachably far) one: none of its own; NaN: ValueError; a bool:
    TypeError.
    """
    # _dl: None (no deadline of its own: the fast path), or (timeout ns
    # or None, deadline ns or None).
    __slots__ = ('_toks', '_dl')

    def __init__(self, timeout: float = None, deadline: float = None):
        self._toks = []
        self._dl = None
        if timeout is not None or deadline is not None:
            # A timeout or deadline too far to be reached (infinity):
            # none of its own (the enclosing context's still counts).
            dl = (None if timeout is None else _seconds(timeout, 'timeout'),
                  None if deadline is None
                  else _seconds(deadline, 'deadline'))
            if dl != (None, None):
                self._dl = dl

    def __enter__(self):
        t = None
        try:
            if self._dl is None:
                r = _push()
                if r < 0:
                    raise _oserror(r)
                st = _state_of(_get_ident())
                if st is None or _pool_states:  # _here(), inlined
                    st = _here() or _state()
                dl = st.top.dl  # inherited, as the runtime does
            else:
                own = self._own_deadline()
                r = _push_deadline(own)
                if r < 0:
                    raise _oserror(r)
                st = _here() or _state()
                # The effective deadline, as the runtime fixed it at the
                # push.
                dl = min(own, st.top.dl)
            loop = _get_running_loop()
            # _Token(task, dl) without a Python __init__ frame (the hot
            # path).
            t = _new_token(_Token)
            t.fwd = t.timers = t.left = None
            t.task = None if loop is None else _task_of(loop)
            t.dl = dl
            t.cid = r
            st.stack.append(t)
            st.top = t
            self._toks.append(t)
            return self
        except BaseException:
            _enter_undo(self, t)
            raise

    def __exit__(self, et, ev, tb):
        if _pending and _get_ident() in _pending:
            return _nested(self.__exit__, et, ev, tb)
        t = None
        try:
            toks = self._toks
            st = _state_of(_get_ident())
            if st is None or _pool_states:  # _here(), inlined
                st = _here()
            i = len(toks) - 1
            # Fast path: the last entry, made outside asyncio, is current
            # here.
            if i < 0 or st is None or toks[i] is not st.top or \
                    st.top.task is not None or \
                    _get_running_loop() is not None:
                i = self._which(st, et)
                if i < 0:  # deferred: the task's cancellation goes on
                    return False
            t = toks[i]
            if et is not None and issubclass(et, ContextTimeout) and \
                    timed_out():
                # Its own effective deadline passed (not only an inner
                # context's): leave nothing of the context behind (its
                # requests' done callbacks have run when this returns).
                _cancel_context(st)
            r = _pop()
            if r >= 0:
                del toks[i]
                stack = st.stack  # _popped(st), inlined
                stack.pop()
                t.fwd = st.top = stack[-1]
                if t.timers is not None:
                    _timers_popped(t, st.top)
                if st.stops:
                    st.stops.discard(t)
        except BaseException:
            if t is None:
                _exit_again(self, et, ev, tb)
            else:
                _exit_finish(self, st, t)
            raise
        if r < 0:  # Python's and C's stacks disagree: say so, change nothing
            if _pending:
                _raise_pending()
            raise _oserror(r)
        if st.top.left is not None:
            _pop_deferred(st)
        if _bridges:
            _kick()
        if _pending:
            _raise_pending()
        return False

    def _which(self, st, et=None):
        """The index of the entry this exit closes (the caller's task's
        latest one), or RuntimeError when it is not the current context
        (-1, the exit deferred, when a cancelled task leaves it)."""
        toks = self._toks
        if not toks:
            raise RuntimeError('async_context exited but not entered')
        stack = st.stack if st is not None else ()
        mine = [i for i, t in enumerate(toks)
                if t.left is None and any(t is s for s in stack)]
        if not mine:
            self._ended(_get_ident())
            raise RuntimeError(
                'async_context exited on a thread other than the one that '
                'entered it; nothing was popped (exit it on its own thread)')
        task = _current_task()
        own = [i for i in mine if toks[i].task is task] or \
            [i for i in mine if toks[i].task is None] or \
            [i for i in mine if toks[i] is st.top]
        # (The last: an entry of another task whose context is current.
        # asyncio closes an async generator in a task of its own, aclose()
        # from its finalizer or shutdown_asyncgens(): its exit pops the
        # context as any exit on the entering thread that finds it on top.)
        if not own:
            raise RuntimeError(
                'async_context exited by a task that did not enter it '
                'while context %d, entered later, is current; nothing was '
                'popped' % (len(stack) - 1))
        i = own[-1]
        if toks[i] is not st.top:
            if et is not None and issubclass(et, _TaskCancelled) and \
                    toks[i].task is not None:
                # The task cannot come back to exit later: its context is
                # cancelled and popped once the contexts above it are.
                toks[i].left = self
                return -1
            raise RuntimeError(
                'async_context exited while context %d, entered later, is '
                'still current (by another asyncio task, or an unbalanced '
                'push/pop in the block); nothing was popped: contexts of a '
                'thread must be exited in the reverse order of entry, also '
                'across tasks (see help(actx))' % (len(stack) - 1))
        return i

    def _ended(self, ident):
        """An exit that finds none of its contexts on this thread's stack:
        RuntimeError if an entry made on this thread lost its context to
        thread_shutdown() (which popped it).  Changes nothing, as every
        refused exit (so a repeated exit is refused the same way)."""
        for t in self._toks:
            end = t.live()
            if end.__class__ is _Ended and end.ident == ident:
                raise RuntimeError(
                    'async_context exited after thread_shutdown() inside '
                    'the block shut this thread\'s loop down and popped '
                    'its context; nothing was popped')

    def _own_deadline(self):
        """Its own deadline (ns), _NO_DEADLINE if none."""
        timeout, deadline = self._dl
        ns = _NO_DEADLINE if deadline is None else deadline
        if timeout is not None:
            ns = min(ns, B.now_ns() + timeout)
        return ns

    @property
    def deadline(self):
        """The effective deadline of the context this object pushed last,
        on the clock of actx.time(); None if it has none."""
        if not self._toks:
            raise RuntimeError('async_context is not active')
        d = self._toks[-1].dl
        return None if d == _NO_DEADLINE else d / 1e9

    def cancel(self) -> int:
        """Cancel every request of the context that has not started (a
        new_request() one: that is not completed yet), then wait
        (ignoring the deadline) until none of its requests is
        outstanding: their done callbacks have all run when it returns.
        Work already running is waited for.  The number cancelled.
        Requests of contexts popped into this one count as its own.  Only
        while the context is the current one, on its thread."""
        if _pending and _get_ident() in _pending:
            return _nested(self.cancel)
        st = _here()
        if not self._toks or st is None or self._toks[-1] is not st.top:
            raise RuntimeError('async_context.cancel(): the context is not '
                               'the current one on this thread')
        r = _cancel_context(st)
        if _pending:
            _raise_pending()
        if r < 0:
            raise _oserror(r)
        return r

    @property
    def id(self) -> int:
        """Depth of the context this object pushed last."""
        if not self._toks:
            raise RuntimeError('async_context is not active')
        return self._toks[-1].cid

    def __repr__(self):
        return '<actx.async_context ids=%r>' % ([t.cid for t in
                                                 self._toks],)


def _cancel_context(st):
    """actx_cancel_context() for the current context, st.top, after
    cancelling its new_request() requests (also those of the contexts
    popped into it) that are not completed yet: the C call cannot (they
    have no work to cancel) and would wait for them for ever.  The number
    cancelled, or a negative errno."""
    n = 0
    if st.newreqs:
        top = st.top
        for req in list(st.newreqs):
            if req._tok.live() is top and req._cancel_new():
                n += 1
    r = B.cancel_context()
    return r if r < 0 else r + n


_NO_DEADLINE = (1 << 64) - 1
_push_deadline = B.push_deadline
_new_token = object.__new__


def _seconds(x, what):
    """x seconds (a real number) in ns on actx_now_ns()'s clock; None
    when it is too far (infinity) to be a deadline."""
    refuse_bool(x, 'async_context: ' + what)
    try:
        ns = x * 1e9
    except TypeError:
        raise TypeError('async_context: %s must be a number, not %s'
                        % (what, type(x).__name__)) from None
    if ns != ns:
        raise ValueError('async_context: %s is NaN' % what)
    if ns <= 0:
        return 0
    if ns >= _NO_DEADLINE:
        return None
    return int(ns)
