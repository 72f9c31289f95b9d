"""State shared by both backends: exceptions, per-thread state, the
callback dispatchers and the exit hook.

Everything here is backend-independent; the backend modules
(_backend_cffi, _backend_swig) call the dispatchers from their C
trampolines, and the API modules read and update the per-thread
state.
"""
import atexit
import collections
import concurrent.futures
import contextvars
import logging
import os
import sys
import threading
import traceback
import weakref

_Context = contextvars.Context

get_ident = threading.get_ident


class DeadlockError(RuntimeError):
    """A wait can never end: the awaited request or work belongs to a
    context that is not current (an outer one), or nothing in the current
    context can make progress any more."""
    __module__ = 'actx'


class ContextTimeout(TimeoutError):
    """The current context's effective deadline (async_context(timeout=,
    deadline=), or an enclosing one's) passed while a blocking call
    (Request.result(), flush(), poll(True), run()) waited in it.  Leaving
    an async_context block by this exception cancels the context's
    requests (its cancel()) before the pop, when that context's own
    effective deadline has passed (not for an inner context's timeout
    passing through).  An OSError: actx raises it with errno ETIMEDOUT."""
    __module__ = 'actx'


class CancelledError(concurrent.futures.CancelledError):
    """The request was cancelled before its work started."""
    __module__ = 'actx'


# --------------------------------------------------------------------------
# Exceptions raised by callbacks on their owner thread.
#
# A trampoline cannot let a Python exception cross C frames, so the
# dispatcher stores it here, keyed by thread, and the API function that made
# the C call (poll, flush, run, pop, result, ...) raises it once the C call
# has returned.  The C call runs to its normal end: callbacks after the one
# that raised still run (the runtime's state stays exactly as if nothing had
# been raised).  The first exception wins; a later one that is not an
# Exception (KeyboardInterrupt, SystemExit) replaces an Exception, with the
# first as its __context__; any other later one goes to the thread's list in
# more, when a caller with a handler collects them (run(exception_handler=),
# the asyncio bridge: _thread.collect_exceptions), else it is reported
# through sys.unraisablehook, so that nothing is silently lost.

pending = {}  # thread ident -> exception
more = {}  # thread ident -> list of the later exceptions, in order
# thread ident -> the exceptions a KeyboardInterrupt or SystemExit
# replaced while a handler collected (see store_exception)
before = {}


def _hook_args_type():
    """sys.unraisablehook's argument type (UnraisableHookArgs, a struct
    sequence that sys does not name): the default hook accepts nothing
    else.  Found once by reporting a probe exception to a capturing hook;
    anything else reported meanwhile (another thread) is passed on."""
    got = []

    class _Probe(Exception):
        pass

    class _Raiser:
        def __del__(self):
            raise _Probe

    old = sys.unraisablehook
    sys.unraisablehook = got.append
    try:
        _Raiser()
    finally:
        sys.unraisablehook = old
    t = None
    for args in got:
        if args.exc_type is _Probe:
            t = type(args)
        else:
            old(args)
    return t


_HookArgs = _hook_args_type() or collections.namedtuple(
    'UnraisableHookArgs',
    'exc_type exc_value exc_traceback err_msg object')


def _unraisable(exc, what, obj=None):
    """Report exc through sys.unraisablehook as CPython would (the real
    exception, with its traceback; err_msg says where it came from)."""
    msg = 'Exception ignored in actx ' + what
    args = (type(exc), exc, exc.__traceback__, msg, obj)
    try:
        sys.unraisablehook(_HookArgs(args))
    except BaseException:
        # A broken hook must not lose the report.
        print(msg, file=sys.stderr)
        traceback.print_exception(type(exc), exc, exc.__traceback__)


def store_exception(exc):
    """Keep exc for re-raising after the current C call returns."""
    ident = get_ident()
    first = pending.get(ident)
    if first is None:
        pending[ident] = exc
    elif isinstance(first, Exception) and not isinstance(exc, Exception):
        exc.__context__ = first
        pending[ident] = exc
        lst = more.get(ident)
        if lst is not None:
            # A handler collects (run(exception_handler=), the asyncio
            # bridge): it gets the exceptions raised before this one, in
            # order, before this one ends its loop (take_before()).
            before[ident] = before.get(ident, []) + [first] + lst
            del lst[:]
    elif ident in more:
        more[ident].append(exc)
    else:
        _unraisable(exc, 'callback (an earlier exception of the same call '
                         'is being raised)')


def take_before(ident):
    """The exceptions raised before the KeyboardInterrupt or SystemExit
    that ends a handler's loop on thread ident (in order; see
    store_exception): the handler takes them before it propagates."""
    return before.pop(ident, ())


def raise_pending():
    exc = pending.pop(get_ident(), None)
    if exc is not None:
        raise exc


# A call that runs callbacks made inside a callback (a nested wait) while
# an earlier callback of the outer call has raised: the exception pending
# on the thread is the outer call's.  Each such API function starts with
#     if _pending and _get_ident() in _pending:
#         return _nested(the_function, its arguments...)
# so that it raises only what its own callbacks raise, and the outer call
# still raises its own.

def nested(fn, *args):
    """fn(*args) with the thread's pending exception set aside (see
    above) and pending again after it.  An exception of fn's callbacks
    that fn did not raise (it raised another) goes behind it, as a later
    exception of the outer call.  A pending KeyboardInterrupt or
    SystemExit is raised at once instead: Ctrl-C does not wait for the
    nested call (it reaches the outer call through this callback)."""
    ident = get_ident()
    outer = pending.pop(ident)
    if not isinstance(outer, Exception):
        raise outer
    try:
        return fn(*args)
    finally:
        mine = pending.pop(ident, None)
        pending[ident] = outer
        if mine is not None:
            store_exception(mine)


# --------------------------------------------------------------------------
# Dispatchers called by the trampolines (GIL held).

def run_done(req, ret):
    """A request's done callback, on its owner thread."""
    try:
        req._complete(ret)
    except BaseException as e:
        store_exception(e)


def run_refused(req):
    """A request's completion was refused (its owner thread's loop shut
    down before it ran), on the completing thread: the request fails."""
    try:
        req._loop_gone()
    except BaseException as e:
        _unraisable(e, 'request refused after its loop shut down', req)


running_work = [0]  # work functions running in Python right now


def run_work(req):
    """A submit work function, on a pool thread.  0, or -1 when it raised
    (the exception is delivered by result())."""
    running_work[0] += 1  # under the GIL
    try:
        cx = req._cx or _Context()  # None: the submitter's copy was empty
        if req._args:
            req._value = cx.run(req._fn, *req._args)
        else:  # no bound method, list and tuple for *args
            req._value = cx.run(req._fn)
        return 0
    except BaseException as e:
        req._exc = e
        return -1
    finally:
        running_work[0] -= 1
        if pool_states:
            _forget_pool_state()


def _forget_pool_state():
    """A pool thread ends without Python noticing (it is not a Python
    thread), and its ident may then be reused by a new Python thread:
    drop the state a work function made here once it holds nothing."""
    st = states.get(get_ident())
    if st is not None and len(st.stack) == 1 and not st.bhs and \
            not st.orphans and not st.newreqs and \
            not has_timers(st) and not st.fds and not st.stops:
        del states[st.ident]
        pool_states.discard(st.ident)


def _noop():
    pass


def rerun_nested(run, args):
    """run(*args) raised RuntimeError, where run is the Context.run of a
    callback that runs more than once in one Context (a BottomHalf, an
    fd handler: what a run sets, the next run sees, as asyncio runs one
    Handle of add_reader) and args[0] the callback.  When that Context
    is entered, this was a run nested in a run of the same callback (it
    polled, and the loop ran it again: a BH it rescheduled, an fd still
    ready): Context.run refused it before calling anything, so it runs
    now in a copy of that Context as it is (True).  Else the RuntimeError
    was the callback's own (False).  Only this error path pays for the
    check; the trampolines call run(*args) directly."""
    cx = getattr(run, '__self__', None)
    if cx.__class__ is not contextvars.Context:
        return False
    try:
        cx.run(_noop)
        return False
    except RuntimeError:
        pass
    # Outside the except clause: the rerun's exception is its own.
    cx.copy().run(*args)
    return True


# --------------------------------------------------------------------------
# Runtime diagnostics (actx_set_log_handler) go to logging.getLogger("actx"),
# from the thread that reports them.

logger = logging.getLogger('actx')
# ACTX_LOG_ERROR, ACTX_LOG_WARNING, ACTX_LOG_DEBUG
_LEVELS = {3: logging.ERROR, 4: logging.WARNING, 7: logging.DEBUG}


def log(level, msg):
    if isinstance(msg, bytes):
        msg = msg.decode('utf-8', 'replace')
    logger.log(_LEVELS.get(level, logging.WARNING), '%s', msg)


# --------------------------------------------------------------------------
# Loop-bound objects (handles, contexts, requests, timers, bottom halves,
# bridges) hold C pointers and references of one process's runtime:
# pickle, copy.copy and copy.deepcopy refuse them (a copy would share one
# C reference; an unpickled pointer is garbage in another process).

def _refuse(self, *args):
    raise TypeError('%s belongs to one thread\'s actx loop: it cannot be '
                    'pickled or copied' % type(self).__name__)


def loop_bound(cls):
    """Class decorator: cls refuses pickle, copy and deepcopy."""
    cls.__reduce__ = cls.__reduce_ex__ = _refuse
    cls.__copy__ = cls.__deepcopy__ = _refuse
    return cls


# --------------------------------------------------------------------------
# Coalesced cross-thread calls (ContextHandle.call_soon), the same on both
# backends: the calls wait in a deque and one drain call posted to the
# context (bindings/common/actx_py.h, actx_py_q_kick) runs every call
# appended before it starts.  A backend's subclass gives the C queue (q)
# and its calls: state(), _kick(q), _reset(q), _free(), and word: the
# state word as an object whose [0] reads it without a call (ContextHandle.
# call_soon tests it inline; any value but POSTED sends it to kick()).
#
# A call is three entries, fn, args, cx, added by one deque.extend (atomic
# under the GIL: other threads' calls never interleave with them), so that
# a queued call keeps no object of its own alive: a tuple or a Context per
# call, kept until the owner runs it and allocated on another core, costs
# about as much as the rest of the call (memory traffic between the cores,
# GC).  cx is the contextvars context to run fn in: a copy taken by
# call_soon, or None when that copy was empty: the drain then runs fn in a
# new empty Context, which no one can tell from the copy (a copy is a new
# object either way, and no API returns the Context a function runs in).

POSTED, IDLE, DEAD = 2, 0, 3
posters = set()  # live posters (their queue's drain may be pending)


class Poster:
    __slots__ = ('q', 'dq', 'closing', 'state', 'lock', '__weakref__')

    def __init__(self, q):
        self.q = q
        self.dq = collections.deque()
        self.closing = False
        # Held by a drain, and by a refused kick taking its call back: no
        # drain takes entries meanwhile (reentrant: a call run by the drain
        # may be refused on the owner thread).
        self.lock = threading.RLock()
        posters.add(self)

    def post(self, call):
        """Queue call, (fn, args, cx) with cx a contextvars.Context or
        None (see above): 0, or a negative errno (it was not queued)."""
        self.dq.extend(call)
        if self.state() == POSTED:  # the pending drain takes it
            return 0
        return self.kick(call)

    def kick(self, call):
        """call was queued and no drain was pending: post one.  0, or a
        negative errno (call was taken back)."""
        r = self._kick(self.q)
        if r:
            with self.lock:
                if not self._take_back(call):
                    return 0  # a drain took it before the refusal: it runs
        return r

    def _take_back(self, call):
        """Remove the latest queued call that is call (its entries the same
        objects); False if there is none.  With the lock held."""
        dq = self.dq
        fn, args, cx = call
        for i in range(len(dq) - 3, -1, -3):
            if dq[i] is fn and dq[i + 1] is args and dq[i + 2] is cx:
                del dq[i + 2]
                del dq[i + 1]
                del dq[i]
                return True
        return False

    def drain(self):
        """The posted drain, on the owner thread."""
        self._reset(self.q)
        dq = self.dq
        take = dq.popleft
        with self.lock:
            for _ in range(len(dq) // 3):
                try:
                    fn = take()
                    args = take()
                    cx = take()
                except IndexError:  # a call run here took its call back
                    break
                if cx is None:
                    cx = _Context()
                try:
                    if args:
                        cx.run(fn, *args)
                    else:  # no bound method, list and tuple for *args
                        cx.run(fn)
                except BaseException as e:
                    store_exception(e)
        if self.closing and self.state() == IDLE:
            self._release()

    def _forked(self):
        """In a fork() child: the queue is the parent's copy, its context
        one of the loops the child dropped (posts to them fail with EPIPE,
        runtime/include/actx.h).  The word said POSTED when a drain was
        pending in the parent (call_soon would queue without a C call: a
        call accepted that never runs), or a kick in progress on a thread
        the child does not have (kick would wait for it for ever): DEAD,
        so that every post is refused.  The parent's queued calls are not
        the child's to run, and the lock may be held by a thread that is
        gone."""
        self.word[0] = DEAD
        self.dq.clear()
        self.lock = threading.RLock()

    def close(self):
        """The handle is gone; free once no drain is pending."""
        self.closing = True
        if self.state() in (IDLE, DEAD):
            self._release()

    def _release(self):
        posters.discard(self)
        self._free()


# --------------------------------------------------------------------------
# Per-thread state.

NO_DEADLINE = (1 << 64) - 1  # UINT64_MAX: actx_deadline()'s "none"


class Token:
    """Python's view of one context on a thread's stack.  A popped
    context's token forwards to the parent it was re-homed to (fwd).
    async_context records the asyncio task that entered it (task; None
    outside a running loop).  left: the async_context whose exit is
    deferred (a cancelled task left it while a context entered later was
    current): it is cancelled and popped as soon as it is current again."""
    __slots__ = ('fwd', 'task', 'timers', 'dl', 'left', 'cid',
                 '__weakref__')

    def __init__(self, task=None, dl=NO_DEADLINE):
        self.cid = 0  # the context's id (set by async_context)
        self.fwd = None
        self.task = task
        self.left = None
        self.timers = None  # its call_later/call_at heap (_timers._Timers)
        self.dl = dl  # its effective deadline (actx_deadline()), ns

    def live(self):
        """The token of the context its objects belong to now: itself, or
        the one it was re-homed to (followed through every pop)."""
        t = self
        while t.fwd is not None:
            t = t.fwd
        return t


_running_loop = None  # asyncio's _get_running_loop, once asyncio is loaded
_current_task = None


def current_task():
    """The asyncio task running on this thread, or None (cheap when asyncio
    was never imported)."""
    global _running_loop, _current_task
    f = _running_loop
    if f is None:
        aio = sys.modules.get('asyncio')
        if aio is None or not hasattr(aio, 'current_task'):
            return None
        _current_task = aio.current_task
        f = _running_loop = aio.events._get_running_loop
    loop = f()
    if loop is None:
        return None
    return _current_task(loop)


def has_timers(st):
    """Does a context of st's thread hold a pending call_later timer?"""
    return any(t.timers is not None and t.timers.live for t in st.stack)


class ThreadState:
    __slots__ = ('ident', 'stack', 'top', 'stops', 'bhs', 'orphans',
                 'reap_at', 'fds', 'newreqs', 'shutdown', '__weakref__')

    def __init__(self, ident, shutdown):
        self.ident = ident
        self.top = Token()
        self.stack = [self.top]
        self.stops = set()     # tokens of contexts that were stopped
        self.bhs = weakref.WeakSet()  # live BottomHalf objects
        self.orphans = []      # (bh, keep, token) of BHs Python dropped
        self.reap_at = ORPHANS_MIN  # a new BH looks at orphans this many
        self.fds = {}          # fd -> its reader/writer entry
        # new_request() requests not completed yet (as keys): cancelling
        # a context cancels those of it (C cannot: no work to cancel).
        self.newreqs = {}
        self.shutdown = shutdown


# A new BottomHalf deletes the dropped ones that are not scheduled once
# there are this many, or twice as many as the last look left.
ORPHANS_MIN = 64

states = {}  # thread ident -> ThreadState
pool_states = set()  # idents of states of threads Python did not start
bridges = {}  # thread ident -> AsyncioBridge driving that thread's loop
loop_handles = {}  # thread ident -> a LoopThread's root ContextHandle
exiting = False
used = False


class _ExitSentinel:
    """Lives in a threading.local: dropped when its Python thread ends,
    on that thread, while the thread state is still usable.  Deletes the
    thread's live BHs and shuts its runtime down there, so that callbacks
    still accepted run with a proper Python thread state and no Python
    object stays registered for a loop that is gone."""
    __slots__ = ('ident',)

    def __init__(self, ident):
        self.ident = ident

    def __del__(self):
        if exiting or get_ident() != self.ident:
            return
        st = states.get(self.ident)
        if st is None:
            return
        try:
            st.shutdown()
        finally:
            states.pop(self.ident, None)
            exc = pending.pop(self.ident, None)
            if exc is not None:
                _unraisable(exc, 'callback run at thread exit')


_local = threading.local()


def new_state(shutdown):
    global used
    used = True
    ident = get_ident()
    st = ThreadState(ident, shutdown)
    states[ident] = st
    # Only threads Python started end through their thread state; the
    # runtime shuts down other threads' loops (pool workers) itself.
    if ident not in threading._active:
        pool_states.add(ident)
    elif ident != threading.main_thread().ident and \
            getattr(_local, 'sentinel', None) is None:
        _local.sentinel = _ExitSentinel(ident)
    return st


def here():
    """The calling thread's state, or None.  A state a pool thread left
    (pool_states) is stale once a Python thread has its ident: the pool
    thread has ended (the runtime shut its loop down) and the ident was
    reused.  It is dropped, so that this thread gets a state of its own,
    and with it the exit sentinel that shuts its runtime down."""
    ident = get_ident()
    st = states.get(ident)
    if st is not None and pool_states and ident in pool_states and \
            ident in threading._active:
        del states[ident]
        pool_states.discard(ident)
        st = None
    return st


def reset_state(ident):
    """The thread's runtime was shut down explicitly: start afresh."""
    states.pop(ident, None)
    pool_states.discard(ident)


# --------------------------------------------------------------------------
# fork(): the child's runtime starts with no loop, and the loops it
# inherited must not be used there (runtime/include/actx.h,
# actx_thread_init).  Python's record of them goes too, so that the
# child's first call makes its thread state afresh over its new loop: the
# parent's state kept, say, the C timer of call_later's heap, and the
# child's timers were armed on the parent's loop and never fired.  Work
# functions running at the fork run on in the parent only.  Objects of
# the parent's loops stay unusable in the child, as in C.
#
# So do the parent's asyncio bridges: the child's copy of an asyncio loop
# shares its selector (an epoll set) with the parent's, so a bridge the
# child kept would register the child's backend fd there (thread_shutdown
# reattaches it) and the parent's loop would wake for the child's posts
# (level-triggered: it spun while the child left its eventfd readable);
# closing it at the child's exit or next bridge warned about a bridge the
# parent still uses.  The child drops them without touching their loops.

def _after_fork_child():
    for br in bridges.values():
        br._forked()
    bridges.clear()
    for po in list(posters):
        po._forked()
    states.clear()
    pool_states.clear()
    pending.clear()
    more.clear()
    before.clear()
    loop_handles.clear()
    running_work[0] = 0


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_child)


# --------------------------------------------------------------------------
# Interpreter exit.  Non-daemon threads have been joined when atexit hooks
# run; from here on no trampoline enters Python (a pool thread finishing a
# work function, a daemon thread's loop shutting down), which would race
# with finalization.  Work functions already running in Python get up to
# EXIT_WAIT seconds to return (CPython would otherwise end their pool
# threads with pthread_exit when they next take the GIL).  The main
# thread's loop is left as it is: requests still in flight complete into
# it (or are refused) without Python.

EXIT_WAIT = 2.0
exit_hooks = []
exit_checks = []  # run first, while callbacks may still enter Python


def _at_exit():
    global exiting
    import time
    for check in exit_checks:
        try:
            check()
        except Exception as e:  # a warning made an error (-W error)
            _unraisable(e, 'exit check')
    exiting = True
    for hook in exit_hooks:
        hook()
    deadline = time.monotonic() + EXIT_WAIT
    while running_work[0] > 0 and time.monotonic() < deadline:
        time.sleep(0.002)


atexit.register(_at_exit)
