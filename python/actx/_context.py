"""The context stack: push, pop, async_context."""

from ._backend import B
from . import _common
from ._thread import (_Token, _bridges, _current_task, _get_ident,
    _get_running_loop, _kick, _oserror, _pending, _pop, _push, _raise_pending,
    _state, _states, _task_of)
from ._timers import _timers_popped

__all__ = ['async_context', 'context_id', 'pop', 'push']

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
