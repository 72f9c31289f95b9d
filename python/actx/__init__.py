"""actx: a threaded multi-context runtime (QEMU's 2009 AsyncContext, one
event loop per thread), from Python.

    import actx
    with actx.async_context() as ctx:      # push; pop on exit (also on error)
        data = actx.pread(fd, 4096, 0).result()   # polls only this context
        jobs = [actx.submit(fn, i) for i in range(100)]
        actx.flush()

While a context is current, only callbacks that belong to it run on this
thread; everything of outer contexts waits (never lost, never run early)
until its context is current again.  Each thread has its own loop and its
own context stack (the root, id 0, always exists).

Backends
    One API over two bindings of the same shared library libactx.so.1:
    ``cffi`` (default, API mode) and ``swig``.  Choose with the environment
    variable ACTX_BACKEND=swig|cffi, or actx.use_backend(name) before the
    first call into actx.  actx.BACKEND names the one in use.  Without
    ACTX_BACKEND, a backend that cannot be loaded (cffi's _cffi_backend
    missing, say) is replaced by the other, with one RuntimeWarning naming
    what was missing; ACTX_BACKEND naming a backend that cannot be loaded
    is an ImportError, an unknown name a ValueError.  actx.__version__ is
    the loaded library's actx_version_string().

Callbacks and threads
    Python callbacks (BottomHalf functions, call_soon functions, done
    callbacks) run only on their owner thread, inside poll / flush / run /
    pop / process_queue / Request.result, while their context is current;
    never while a runtime lock is held.  Work functions given to submit()
    run on pool threads (they take the GIL there).  Every blocking call
    releases the GIL.

Exceptions raised by callbacks
    A callback runs under a C frame, so its exception is stored (with its
    traceback) and raised by the API call that ran it, after the C call
    returned normally: the remaining callbacks of that call still run and
    the runtime's state is exactly as without the exception.  The first
    exception wins; a later KeyboardInterrupt/SystemExit replaces an
    ordinary exception (chained); any other later one goes to
    sys.unraisablehook.  An exception of a submit() work function is
    delivered by Request.result().

Blocking and Ctrl-C
    On the main thread, poll(block=True), run(), flush() and
    Request.result() wait in the runtime's blocking poll in slices of at
    most 50 ms (actx_poll_timeout, which also returns when a signal
    interrupts its sleep), so
    Ctrl-C (KeyboardInterrupt) interrupts them at once and leaves the
    runtime usable (interrupted work goes on; a later flush() waits for
    it); result(timeout=) uses the same slices.  Request.result() raises
    DeadlockError at once when the request belongs to an outer context, or
    when nothing in the current context can make progress.

Deadlines
    async_context(timeout=, deadline=) gives a context a deadline
    (ctx.deadline: the effective one, the earlier of its own and the
    enclosing context's).  Once it passed, Request.result(), flush(),
    poll(True) and run() inside raise ContextTimeout (a TimeoutError);
    leaving the block by it cancels the context first when the context's
    own effective deadline has passed (ctx.cancel(): requests whose work
    has not started, and new_request() requests not completed yet, are
    cancelled, and every done callback of its requests has run when the
    pop happens).  An inner context's ContextTimeout passing through a
    block whose deadline has not passed (or that has none) cancels
    nothing there: its requests are re-homed to the parent as at any
    exit.  An infinite timeout or deadline is none of its own.

Requests are futures
    Request is a concurrent.futures.Future that completes only on its
    owner thread (see Request).  Other threads may wait for requests with
    concurrent.futures.wait() / as_completed(), asyncio.wrap_future(req)
    or ``await req`` (any thread whose asyncio loop runs a bridge).
    cancel() returning True makes cancelled() and done() True at once
    (its done callbacks run later, on the owner thread in its context);
    a task awaiting a cancelled request is cancelled, as for a cancelled
    asyncio future (``await req`` raises asyncio.CancelledError, as
    ``await asyncio.wrap_future(req)`` does); cancelling a task that
    awaits a request on its owner thread (or wait_for timing out) cancels
    the request.  new_request() makes a request that any thread completes
    with set_result()/set_exception().

contextvars, logging, LoopThread
    Callbacks run in a copy of the contextvars context current when they
    were scheduled or registered (submit's fn in the submitter's).
    Runtime diagnostics go to logging.getLogger("actx").  LoopThread()
    starts a thread running its own loop (.handle, .call_soon, .stop,
    .join, a context manager).  run(exception_handler=) logs-and-goes-on
    instead of ending at a callback's exception.

Timers and fds
    call_later(delay, fn, *args) / call_at(when, fn, *args) (when on the
    clock of actx.time()) return a cancellable Timer;
    add_reader/add_writer(fd, fn, *args) and remove_reader/remove_writer(fd)
    watch fds.  Like every callback they belong to the current context,
    run on this thread only while it is current, re-home with it at pop,
    and their exceptions are raised by the call that ran them.

asyncio, and contexts held across an await
    ``with actx.asyncio_bridge():`` (or AsyncioBridge(loop)) inside a
    coroutine drives this thread's actx loop from asyncio; ``await req``
    waits for a Request.  The context stack belongs to the thread, not to
    the asyncio task: a task that holds ``with actx.async_context():``
    across an ``await`` keeps that context current for every task that
    runs meanwhile, so
      - what those tasks create (requests, BHs, timers, fds, handles)
        belongs to it, and work of outer contexts (including the other
        tasks' own) waits, never lost, until it is popped;
      - at every pop the bridge runs what became runnable in the parent,
        so tasks that each hold a context across an awaited request all
        finish, whatever the order their work completes in;
      - contexts must be left in the reverse order they were entered,
        across all tasks of the thread.  A task that leaves its context
        while a later one is current gets RuntimeError and nothing is
        popped (never someone else's context); the same for an exit on
        another thread.  Except for a task being cancelled (its block
        left by asyncio.CancelledError): its exit is deferred, the
        CancelledError goes on, and its context is cancelled (as
        ctx.cancel()) and popped as soon as it is current again (by the
        pop of the context above it), so nothing stays pushed.  When
        awaiting things that are not actx work of the context itself
        (asyncio.sleep, another task's event), leave the context first,
        or enter it in one task only.

Lifetimes
    An object given to C stays alive exactly as long as C can call back
    with it: a call_soon call until it ran, a request until its done
    callback ran, a BottomHalf until delete() (or the end of its `with`
    block, or its thread's runtime shut down, or - with no Python
    reference left - until it can no longer run).  Loop-bound objects
    refuse pickle, copy and deepcopy (TypeError).  ContextHandle drops its
    reference on close() or garbage collection (from any thread).  A
    completion refused because its owner thread's runtime had shut down
    (EPIPE) never runs its done callback; its Request stays unfinished
    (on that thread, result() raises DeadlockError: it can never
    complete; cancel() returns False).

Threads ending, interpreter exit
    When a Python thread ends, its live BottomHalf objects are deleted and
    its runtime is shut down on that thread (accepted calls and arrived
    completions still run).  At interpreter exit (after non-daemon threads
    were joined) no C callback enters Python any more; work in flight is
    abandoned by the runtime's own exit handling.  Either end with
    requests outstanding, timers pending or contexts pushed gives a
    ResourceWarning (shown under -X dev).

Errors
    A negative errno from C is OSError with that errno (pop() at the root:
    EINVAL; I/O on a closed fd: EBADF); wrong argument types: TypeError;
    integers out of the C range: OverflowError.
"""
import importlib
import os
import sys
import warnings

# The implementation is the package actx._impl: the directory _impl holds
# no __init__.py (a namespace package, PEP 420), and pkgutil.iter_modules
# lists only modules and regular packages, so help(actx)'s PACKAGE
# CONTENTS lists nothing private.  Importing a submodule binds its name in
# the parent (help lists such attributes as SUBMODULES): _tidy() removes
# that binding; the modules stay in sys.modules.
from ._impl._common import (  # noqa: F401  (re-exported)
    CancelledError, ContextTimeout, DeadlockError)

_IMPL = __name__ + '._impl'


def _tidy():
    globals().pop('_impl', None)


# The API modules, in the order they import each other.
_MODULES = ('_thread', '_timers', '_fds', '_context', '_bh', '_request',
            '_handle', '_loop', '_bridge')
__all__ = []


def _import_api(again=False):
    """Import the API modules over _backend.B (again: re-execute them over
    a backend selected after import) and re-export their names."""
    g = globals()
    names = ['DeadlockError', 'CancelledError', 'ContextTimeout']
    for n in _MODULES:
        mod = importlib.import_module(_IMPL + '.' + n)
        if again:
            importlib.reload(mod)
        for name in getattr(mod, '__all__', ()):
            obj = g[name] = getattr(mod, name)
            if getattr(obj, '__module__', '').startswith(__name__ + '.'):
                obj.__module__ = __name__  # help(actx) shows them as actx's
            names.append(name)
    _tidy()
    return names


def _initial_backend():
    """ACTX_BACKEND if set (it must load); else the first backend that
    loads, with one warning for those that did not."""
    from ._impl import _backend
    name = os.environ.get('ACTX_BACKEND')
    if name:
        return _backend.select(name).NAME
    missing = []
    for name in _backend.NAMES:
        try:
            _backend.select(name)
        except ImportError as e:
            missing.append('%s (%s)' % (name, _backend.why(name, e.__cause__
                                                           or e)))
            continue
        if missing:
            warnings.warn('actx: backend %s cannot be loaded; using %s'
                          % (', '.join(missing), name), RuntimeWarning,
                          stacklevel=3)
        return name
    raise ImportError('actx: no backend can be loaded: %s'
                      % '; '.join(missing))


def use_backend(name: str) -> None:
    """Select the backend ('cffi' or 'swig') before the first call into
    actx.  Both bind the same libactx.so.1.  ImportError if it cannot be
    loaded, ValueError for another name."""
    global BACKEND
    from ._impl import _backend, _common
    if name not in _backend.NAMES:
        _backend.load(name)  # the ValueError
    if BACKEND == name:
        return
    if _common.used:
        raise RuntimeError('actx.use_backend() after actx was used')
    _backend.select(name)
    BACKEND = name
    _import_api(again=True)


def _api(name):
    """The package over backend name (for tests: use_backend(name) first
    when it is not the one in use)."""
    if name != BACKEND:
        use_backend(name)
    return sys.modules[__name__]


BACKEND = _initial_backend()
__all__ = _import_api() + ['use_backend', 'BACKEND']
__version__ = sys.modules[_IMPL + '._backend'].B.version_string()

_tidy()
