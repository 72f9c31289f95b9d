"""Running the loop: poll, flush, run, stop, thread_shutdown."""
import errno as _errno
import threading

from ._backend import B
from . import _common
from ._common import ContextTimeout, DeadlockError
from ._thread import (
    _backend_fd, _bridges, _can_progress, collect_exceptions, loop_ended,
    abandon,
    context_timeout, end_collect, _flush_slice,
    _get_ident, int_arg, _kick, _main_ident, _oserror, _pending, _pending_of,
    refuse_bool,
    _nested, _poll_block, _poll_nb, _poll_timeout, _raise_pending,
    reap_orphans,
    _release_thread, _SLICE_MS, _SLICE_NS, _state, timed_out, _timeout_ms,
    _timeout_ns)
from ._handle import ContextHandle

__all__ = [
    'LoopThread',
    'backend_fd',
    'backend_timeout_ms',
    'flush',
    'poll',
    'process_queue',
    'run',
    'set_poll_max_ns',
    'set_pool_size',
    'stop',
    'thread_shutdown',
]

# --------------------------------------------------------------------------
# Running the loop

def poll(block: bool = False, timeout: float = None) -> bool:
    """Run one iteration of the current context: arrived completions and
    calls, scheduled bottom halves, ready fd handlers and due timers of the
    current context only.  True if anything but an idle BH ran.

    With block=True and nothing to run, sleep (GIL released) until
    something of the current context can run, and run it; with only idle
    BHs scheduled, sleep at most 10 ms, run them and return False; return
    False at once when nothing can ever make progress in the current
    context.  With a timeout (seconds), a blocking poll returns False
    after at most that long.  A blocking poll that finds the current
    context's deadline passed (async_context(timeout=)) with nothing run
    raises ContextTimeout.  Interruptible by Ctrl-C.  The first
    exception raised by a callback propagates from here after the
    iteration finished.
    """
    if _pending and _get_ident() in _pending:
        return _nested(poll, block, timeout)
    if timeout is not None:
        ns = _timeout_ns(timeout)  # checked also when it is not used
        return _poll_until(B.now_ns() + ns) if block else poll(False)
    if not block or _get_ident() != _main_ident:
        # Off the main thread no signal handler ever runs: the runtime's
        # own blocking poll (which also tells the pool that a worker
        # waits, so nested pool work cannot deadlock it).
        r = _poll_block() if block else _poll_nb()
        if _pending:
            _raise_pending()
        if not r and block and timed_out():
            raise context_timeout()
        return bool(r)
    return _poll_until(None)


def _poll_until(deadline):
    """A blocking poll in slices of at most _SLICE_MS (adaptive polling
    included, see set_poll_max_ns), without the GIL; between slices, and
    when a signal interrupts the sleep, Python runs its signal handlers
    (Ctrl-C raises here).  False once deadline (ns, or None) passed."""
    while True:
        ns = _SLICE_NS
        if deadline is not None:
            left = deadline - B.now_ns()
            if left <= 0:
                r = _poll_nb()
                if _pending:
                    _raise_pending()
                return bool(r)
            ns = min(ns, left)
        r = _poll_timeout(ns)
        if _pending:
            _raise_pending()
        if r > 0:
            return True
        if (r == 0 or r == -_errno.ETIMEDOUT) and timed_out():
            raise context_timeout()
        if r == 0:
            return False
        if r != -_errno.ETIMEDOUT and r != -_errno.EINTR:
            raise _oserror(r)


def set_pool_size(n: int) -> None:
    """Size the process-wide worker pool (how many work functions run at
    once) before its first use.  Any thread.  OSError(EBUSY) once the
    pool has started, OSError(EINVAL) for n < 1 or n > 4096."""
    r = B.pool_set_size(int_arg(n, -0x80000000, 0x7fffffff, 'size'))
    if r < 0:
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
    r = B.set_poll_max_ns(int_arg(ns, -(1 << 63), (1 << 63) - 1, 'ns'))
    if r < 0:
        raise _oserror(r)


def process_queue() -> bool:
    """Run the arrived completions and calls of the current context."""
    if _pending and _get_ident() in _pending:
        return _nested(process_queue)
    r = B.process_queue()
    if _pending:
        _raise_pending()
    return bool(r)


def flush() -> None:
    """Poll until the current context has no outstanding request and no
    scheduled non-idle BH.  Requests of other contexts are not waited for.

    Raises DeadlockError if that can never happen, ContextTimeout once
    the current context's deadline passed first.  Sleeps with the GIL
    released; interruptible by Ctrl-C (KeyboardInterrupt, the runtime stays
    usable: the work goes on and a later flush() waits for it).
    """
    if _pending and _get_ident() in _pending:
        return _nested(flush)
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
        if _pending and not isinstance(_pending_of(ident), Exception):
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
        if r == -_errno.ETIMEDOUT:
            raise context_timeout()
        raise _oserror(r)


def run(exception_handler=None) -> None:
    """Poll, blocking, in the current context until stop() is called for it
    or nothing can make progress any more.  Interruptible by Ctrl-C.

    An exception raised by a callback ends run() (it propagates), unless
    exception_handler is given: then it is called as
    exception_handler(context), context a dict with 'message' and
    'exception' (as asyncio's loop handler), for every exception in the
    order they were raised, and run() goes on (TypeError at once for
    an exception_handler that is neither callable nor None).
    KeyboardInterrupt, SystemExit and ContextTimeout (the current
    context's deadline passed) always propagate."""
    if _pending and _get_ident() in _pending:
        return _nested(run, exception_handler)
    if exception_handler is None:
        _run(None, None)
        return
    if not callable(exception_handler):
        raise TypeError('run: exception_handler must be callable or None, '
                        'not %s' % type(exception_handler).__name__)
    # The exceptions after the first of one iteration: in more, in order.
    ident = _get_ident()
    more, prev = collect_exceptions(ident)
    try:
        _run(exception_handler, more)
    except BaseException:
        # A KeyboardInterrupt or SystemExit ends run(): the handler first
        # gets the exceptions raised before it, in order.
        for e in _common.take_before(ident):
            _handle(exception_handler, e)
        raise
    finally:
        end_collect(ident, more, prev)


def _run(handler, more):
    st = _state()
    me = st.top
    stops = st.stops
    while True:
        try:
            # Busy: non-blocking iterations; idle: one blocking poll.
            r = _poll_nb()
            if _pending:
                _raise_pending()
            if not r:
                if st.orphans:
                    # Nothing ran: no dropped BH of this context is
                    # scheduled.
                    reap_orphans(st, st.top)
                r = poll(True)
        except Exception as e:
            if handler is None or isinstance(e, ContextTimeout):
                raise
            _handle(handler, e)
            r = True
        if more:
            while more:
                e = more.pop(0)
                if not isinstance(e, Exception) or \
                        isinstance(e, ContextTimeout):
                    raise e
                _handle(handler, e)
            r = True
        if stops and me in stops:
            stops.discard(me)
            return
        if not r and not _can_progress():
            return


def _handle(handler, e):
    handler({'message': 'exception in an actx callback', 'exception': e})


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
    # None: in a new empty context, no caller's (_common.Poster).
    r = handle._post((_stop_here, (), None))
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
    already accepted, refuse later posts (EPIPE).  The next call into actx
    on this thread makes a new loop; an asyncio bridge of the thread moves
    to the new loop at once (it stays open).  A request of the old loop
    still outstanding can never complete: its result() raises
    DeadlockError, its cancel() returns False, and it fails (done(), with
    DeadlockError, waking waiters on other threads) when its work ends -
    at once for a new_request() nobody completed; its done callbacks
    run on the thread that fails it (no loop is left to run them on this
    one), and any added later at once.  A ``with async_context()``
    block that was active here has lost its context: its exit raises
    RuntimeError."""
    if _pending and _get_ident() in _pending:
        return _nested(thread_shutdown)
    st = _state()
    _release_thread(st)
    br = _common.bridges.get(st.ident)
    if br is not None:
        br._detach()
    B.thread_shutdown()
    reqs = loop_ended(st)
    _common.reset_state(st.ident)
    if br is not None:
        br._reattach()
    abandon(reqs)
    if _pending:
        _raise_pending()


# --------------------------------------------------------------------------
# A thread running a loop

@_common.loop_bound
class LoopThread:
    """``LoopThread(name=None)``: a started thread that runs its own actx
    loop (its root context) until stop().  ``.handle`` is that context's
    handle (use it from any thread), ``.call_soon(fn, *args)`` runs
    fn(*args) there, ``.stop()`` makes its loop return and the thread end,
    ``.join(timeout=None)`` waits for that.  As a context manager it is
    stopped and joined on exit.  An exception raised by a callback there
    is logged to logging.getLogger("actx") and the loop goes on.  The
    thread is a daemon: one never stopped does not hold up interpreter
    exit (its pending work is then abandoned)."""

    def __init__(self, name: str = None):
        self._ready = threading.Event()
        self._error = None
        self.handle = None
        self._thread = threading.Thread(target=self._main, name=name,
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _main(self):
        try:
            self.handle = ContextHandle()
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        ident = threading.get_ident()
        _common.loop_handles[ident] = self.handle
        try:
            run(exception_handler=_log_exception)
        finally:
            _common.loop_handles.pop(ident, None)

    @property
    def name(self) -> str:
        return self._thread.name

    def call_soon(self, fn, *args) -> None:
        """Run fn(*args) on the loop's thread; OSError(EPIPE) once it
        ended."""
        self.handle.call_soon(fn, *args)

    def stop(self) -> None:
        """Make the loop return (its thread then ends).  Idempotent; any
        thread."""
        try:
            stop(self.handle)
        except (OSError, RuntimeError):
            pass  # already ended

    def join(self, timeout: float = None) -> None:
        """Wait until the thread ended, at most timeout seconds."""
        refuse_bool(timeout, 'join: timeout')
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        self.stop()
        self.join()
        return False

    def __repr__(self):
        return '<actx.LoopThread %r %s>' % (
            self._thread.name, 'running' if self.is_alive() else 'stopped')


def _log_exception(context):
    e = context['exception']
    _common.logger.error('%s', context['message'],
                         exc_info=(type(e), e, e.__traceback__))
