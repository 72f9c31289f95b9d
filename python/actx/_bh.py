"""Bottom halves."""

from ._backend import B
from ._thread import (_bh_schedule, _bh_schedule_idle, _bridges, _get_ident,
    _kick, _state, _states)

__all__ = ['BottomHalf']

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
        B.bh_delete(p)
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
