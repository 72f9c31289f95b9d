"""Bottom halves."""
import contextvars

from ._backend import B
from . import _common
from ._thread import (
    _bh_schedule, _bh_schedule_idle, _bh_scheduled, _bridges, _get_ident,
    _kick, reap_orphans, _state, _state_of)

__all__ = ['BottomHalf']

# --------------------------------------------------------------------------
# Bottom halves

@_common.loop_bound
class BottomHalf:
    """``BottomHalf(fn, *args)``: a bottom half of the current context.

    schedule() (any thread) makes fn(*args) run once at the next poll of
    its context; schedule_idle() within 10 ms without waking the loop;
    cancel() (any thread) unschedules it; delete() (owner thread) frees it.
    It stays alive until delete(), until its thread's runtime shuts
    down, or until it has no Python reference left and is not scheduled
    (a scheduled one still runs once); as a context manager it is deleted
    on exit.  fn runs in a copy of the contextvars context current when
    the BottomHalf was made.  Do not race delete() with schedule() from
    another thread (as in C).
    """
    __slots__ = ('_p', '_keep', '_owner', '_tok', '_fn', '__weakref__')

    def __init__(self, fn, *args):
        if not callable(fn):
            raise TypeError('BottomHalf: %r is not callable' % (fn,))
        st = _state()
        self._p = None
        self._fn = fn
        self._p, self._keep = B.bh_new(
            (contextvars.copy_context().run, (fn,) + args))
        self._owner = st.ident
        self._tok = st.top
        st.bhs.add(self)
        if len(st.orphans) >= st.reap_at:
            # Dropped BHs that were scheduled then (or dropped on another
            # thread) go once they cannot run, also on a thread that only
            # polls (run() reaps too): their number stays bounded.
            reap_orphans(st, True)

    def __del__(self):
        # No reference left: nothing can schedule it any more.  Not
        # scheduled (and on its owner thread, whose loop it belongs to):
        # nothing of it can run, it goes now.  Else C may still run it
        # once; it is kept (orphans) until it cannot run any more
        # (_thread.reap_orphans).
        p = getattr(self, '_p', None)
        if p is not None:
            st = _state_of(self._owner)
            if st is None or self._tok.live() not in st.stack:
                return  # its loop was shut down (and freed it)
            if _get_ident() == self._owner and not _bh_scheduled(p):
                self._p = None
                B.bh_delete(p)
                return
            st.orphans.append((p, self._keep, self._tok))

    def __repr__(self):
        if self._p is None:
            return '<actx.BottomHalf deleted>'
        return '<actx.BottomHalf fn=%r>' % (self._fn,)

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
        B.bh_delete(p)
        self._keep = self._fn = None
        st = _state_of(self._owner)
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
