"""Per-thread plumbing shared by the API modules: the backend's hot
calls, the thread's state, errors."""
import errno as _errno
import operator
import os
import threading
import warnings

from ._backend import B
from . import _common
from . import _asyncio

_get_ident = _common.get_ident
_states = _common.states
_here = _common.here
# Hot paths look the state up inline: _state_of(_get_ident()) is the
# thread's state unless it is None or a pool thread holds a state
# (_pool_states, usually empty: then _here() decides).
#
# The modules that import these names call dicts' methods through the
# bound methods below, never as _states.get(...): CPython (3.11 and
# later) compiles a method call on a name bound by `from ... import` as
# an attribute load (it assumes a module) followed by a call, which for
# a dict makes a bound method object on every call
# (tests/python/test_source_rules.py holds the modules to this).
_state_of = _states.get
_pool_states = _common.pool_states
_pending = _common.pending
_pending_of = _pending.get
_raise_pending = _common.raise_pending
_nested = _common.nested
_store = _common.store_exception
_Token = _common.Token
_current_task = _common.current_task
# asyncio is loaded with the package (the bridge): the running loop of
# this thread, cheaply (a C function), and its task.
_get_running_loop = _asyncio.asyncio.events._get_running_loop
_task_of = _asyncio.asyncio.current_task
_bridges = _common.bridges
_bridge_of = _bridges.get

_push = B.push
_pop = B.pop
_poll_nb = B.poll_nb
_poll_block = B.poll_block
_main_ident = threading.main_thread().ident
_can_progress = B.can_progress
_flush_slice = B.flush_slice
_poll_timeout = B.poll_timeout
_timeout_ms = B.backend_timeout_ms
_backend_fd = B.backend_fd
_bh_schedule = B.bh_schedule
_bh_schedule_idle = B.bh_schedule_idle
_bh_scheduled = B.bh_scheduled

# Longest single sleep in a blocking call: bounds the latency of Ctrl-C
# (a signal that lands just before the sleep starts) and of timeouts.
_SLICE_MS = 50
_SLICE_NS = _SLICE_MS * 1000000


def _kick():
    # The runtime wakes an embedding loop (backend fd) only for posts from
    # other threads; work made on the owner thread itself must tell the
    # asyncio bridge directly.
    br = _bridges.get(_get_ident())
    if br is not None:
        br._kick()


def _state():
    st = _here()
    if st is None:
        # Its Thread (None for a thread Python did not start), for its
        # name when it ends: threading has forgotten it by then.
        th = threading._active.get(_get_ident())
        st = _common.new_state(lambda: _shutdown_thread(th))
    return st


_more = _common.more


def collect_exceptions(ident):
    """From now on the exceptions that callbacks of thread ident raise
    after the first of one C call are appended to a new list (returned
    with the previous one: end_collect(ident, more, prev)) instead of being
    reported as unraisable: run(exception_handler=) and the asyncio bridge
    give each to their handler."""
    prev = _more.get(ident)
    more = _more[ident] = []
    return more, prev


def end_collect(ident, more, prev):
    """Stop collecting; what is left in more (an exception that ended the
    caller came first) is reported as unraisable, as without a list."""
    if prev is None:
        _more.pop(ident, None)
    else:
        _more[ident] = prev
    for e in _common.take_before(ident):  # no handler took them
        _common._unraisable(e, 'callback (a KeyboardInterrupt or '
                               'SystemExit of the same call is being '
                               'raised)')
    for e in more:
        _common._unraisable(e, 'callback (an earlier exception of the '
                               'same call is being raised)')
    del more[:]


def _release_thread(st):
    """Before the thread's runtime shuts down: delete its live BHs, cancel
    its timers, remove its fd handlers (their Python objects go now)."""
    for bh in list(st.bhs):
        bh.delete()
    reap_orphans(st, None)
    _timers._timers_release(st)
    for fd in list(st.fds):
        _fds._remove_fd(st, fd, True, True)


class _Ended(_Token):
    """What the tokens of a thread's contexts forward to once its loop was
    shut down (thread_shutdown(), or the thread's end): the requests and
    async_context entries of those contexts belong to no loop any more
    (a request left outstanding can never complete, and C may have freed
    it).  ident: the thread whose loop it was."""
    __slots__ = ('ident',)

    def __init__(self, ident):
        _Token.__init__(self)
        self.ident = ident


def loop_ended(st):
    """The thread's loop (st) was shut down: forward its contexts' tokens
    (Token.live() of every one of its objects) to an _Ended.  Returns its
    new_request() requests nobody completed, for abandon()."""
    end = _Ended(st.ident)
    for t in st.stack:
        t.fwd = end
    reqs = list(st.newreqs)
    st.newreqs.clear()
    return reqs


def abandon(reqs):
    """Nobody can complete these (loop_ended) on the owner any more: they
    fail now (the others fail when their completion is refused).  Their
    done callbacks run here: after the thread's state was reset, so that
    one that uses actx gets the thread's new loop, not the ended one."""
    for req in reqs:
        req._abandon()


def reap_orphans(st, top):
    """Delete the BHs Python dropped (BottomHalf.__del__) of context top
    that are not scheduled (None: all of the thread's, scheduled or not:
    its loop shuts down).  Owner thread.  A scheduled one stays until it
    has run (then it cannot run again: nothing references it)."""
    orphans = st.orphans
    n = len(orphans)
    # Taken out first: a BottomHalf dropped meanwhile (a __del__ on
    # another thread, or gc here) appends to the same list.
    batch = orphans[:n]
    del orphans[:n]
    keep = []
    for o in batch:
        t = o[2].live()
        if top is None or ((top is True or t is top) and
                           not _bh_scheduled(o[0])):
            B.bh_delete(o[0])
        else:
            keep.append((o[0], o[1], t))
    orphans.extend(keep)
    st.reap_at = max(_common.ORPHANS_MIN, 2 * len(orphans))


def _shutdown_thread(thread):
    br = _bridge_of(_get_ident())
    if br is not None:
        br._ended()  # its loop ended before the thread, with it open
    st = _here()
    if st is not None:
        name = (thread or threading.current_thread()).name
        warn_unfinished(st, 'thread %r ends' % name)
        _release_thread(st)
    B.thread_shutdown()
    if st is not None:
        abandon(loop_ended(st))


def warn_unfinished(st, who):
    """A ResourceWarning (shown under -X dev) when the thread's loop ends
    with work it never ran: requests outstanding, timers pending, contexts
    left pushed (their work goes on or is dropped by the shutdown, never
    silently)."""
    what = []
    if len(st.stack) > 1:
        what.append('%d context(s) left pushed' % (len(st.stack) - 1))
    n = B.stats()['outstanding']
    if n > 0:
        what.append('%d request(s) outstanding' % n)
    if _common.has_timers(st):
        what.append('timers pending')
    if what:
        warnings.warn('actx: %s with %s in its loop (poll, flush or run '
                      'it before)' % (who, ', '.join(what)), ResourceWarning,
                      stacklevel=2)


def _main_exit():
    """Interpreter exit: the main thread's loop is not shut down (work
    in flight is abandoned), so say what it leaves."""
    if _get_ident() != _main_ident:
        return
    br = _bridge_of(_main_ident)
    if br is not None:
        br._ended()  # its loop ended before the interpreter, with it open
    st = _states.get(_main_ident)
    if st is not None:
        warn_unfinished(st, 'the interpreter exits')


_common.exit_checks[:] = [_main_exit]


def _oserror(r):
    return OSError(-r, os.strerror(-r))


def _fd(fd):
    if not isinstance(fd, int):
        if hasattr(fd, 'fileno'):
            fd = fd.fileno()
        fd = operator.index(fd)
    if not -0x80000000 <= fd <= 0x7fffffff:
        raise OverflowError('fd %d is out of range' % fd)
    return fd


def int_arg(x, lo, hi, what):
    """x as an int in [lo, hi]: TypeError or OverflowError in the
    caller's terms (never the binding's)."""
    x = operator.index(x)
    if not lo <= x <= hi:
        raise OverflowError('%s %d is out of range' % (what, x))
    return x


def refuse_bool(x, what):
    """TypeError for True/False as a number of seconds: ints, but no
    duration anyone means."""
    if isinstance(x, bool):
        raise TypeError('%s must be a number of seconds, not bool' % what)


def _timeout_ns(timeout):
    refuse_bool(timeout, 'timeout')
    ns = timeout * 1e9  # TypeError for what is not a number
    if ns != ns:
        return 0  # as concurrent.futures: no time to wait
    if ns >= 1 << 63:
        return 1 << 63
    return int(max(ns, 0))


_NO_DEADLINE = (1 << 64) - 1
_deadline = B.deadline


def timed_out():
    """Has the current context's effective deadline passed?"""
    d = _deadline()
    return d != _NO_DEADLINE and B.now_ns() >= d


def context_timeout():
    # An OSError of a timeout: errno ETIMEDOUT (as the C call's -ETIMEDOUT).
    return _common.ContextTimeout(
        _errno.ETIMEDOUT, 'the deadline of context %d passed'
        % B.context_id())


# Last: they import this module's names.
from . import _timers, _fds  # noqa: E402
