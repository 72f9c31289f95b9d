"""fd handlers: add_reader and the like (asyncio-like)."""

import contextvars

from ._backend import B
from ._common import rerun_nested
from ._thread import _fd, _here, _oserror, _state

__all__ = ['add_reader', 'add_writer', 'remove_reader', 'remove_writer']

class _FdEntry:
    """One fd's handlers on its thread: C holds one opaque for both."""
    __slots__ = ('fd', 'reader', 'writer', 'opaque', '__weakref__')

    def __init__(self, fd):
        self.fd = fd
        self.reader = self.writer = None
        self.opaque = B.fd_opaque(self)

    def _read(self):
        r = self.reader
        if r is None:
            return
        try:
            r[0](*r[1])
            return
        except RuntimeError as e:
            err = e
        # Outside the except clause: the rerun's exception is its own.
        if not rerun_nested(*r):
            raise err

    def _write(self):
        w = self.writer
        if w is None:
            return
        try:
            w[0](*w[1])
            return
        except RuntimeError as e:
            err = e
        # Outside the except clause: the rerun's exception is its own.
        if not rerun_nested(*w):
            raise err


def _add_fd(fd, fn, args, reader):
    if not callable(fn):
        raise TypeError('%r is not callable' % (fn,))
    fd = _fd(fd)
    st = _here() or _state()
    e = st.fds.get(fd)
    new = e is None
    if new:
        e = _FdEntry(fd)
    old = e.reader, e.writer
    # Each run in the same Context (a nested one: _common.rerun_nested).
    run = (contextvars.copy_context().run, (fn,) + args)
    if reader:
        e.reader = run
    else:
        e.writer = run
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
    return _remove_fd(_here(), _fd(fd), True, False)


def remove_writer(fd) -> bool:
    """Stop watching fd for writing on this thread; True if it was.  A
    reader it keeps moves to the current context."""
    return _remove_fd(_here(), _fd(fd), False, True)
