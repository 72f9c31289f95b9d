"""Cross-thread handles."""

import contextvars

from ._backend import B
from . import _common
from ._thread import _bridges, _kick, _oserror, _state

_copy_context = contextvars.copy_context
_POSTED = _common.POSTED

__all__ = ['ContextHandle', 'current_context', 'stats']

# --------------------------------------------------------------------------
# Cross-thread handles

@_common.loop_bound
class ContextHandle:
    """A counted reference to one context (current_context()), usable from
    any thread.  call_soon(fn, *args) runs fn(*args) once on the owner
    thread while that context (or the one it was re-homed to) is current.
    While a handle is held, a blocking wait in its context keeps waiting
    for calls.  close() (or garbage collection) drops the reference."""
    __slots__ = ('_p', '_key', '_poster', '_post', '_dq', '_word',
                 '__weakref__')

    def __init__(self):
        _state()
        self._p = None
        p = B.ctx_current()
        po = self._poster = B.make_poster(p)
        self._post = po.post
        self._dq = po.dq
        self._word = po.word
        self._key = B.ctx_key(p)  # its hash for life, closed or not
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
        # Poster.post inlined: the hot path of cross-thread calls.  An empty
        # copy is queued as None (see _common.Poster).
        cx = _copy_context()
        call = (fn, args, cx if cx else None)
        self._dq.extend(call)
        if self._word[0] != _POSTED:  # else the pending drain runs it
            r = self._poster.kick(call)
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
        # Open handles on one context are equal; a closed one equals only
        # itself (its context may be gone and its address reused).
        return self is other or (
            isinstance(other, ContextHandle) and self._p is not None and
            other._p is not None and self._key == other._key)

    def __hash__(self):
        # Stable for the object's life, so that a handle closed while in
        # a set or dict can still be found and removed.
        return hash(self._key)

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
