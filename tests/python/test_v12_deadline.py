"""Deadlines and cancellation of nested waits from Python (actx 1.2):
async_context(timeout=, deadline=), ctx.deadline, ctx.cancel(),
ContextTimeout."""
import errno
import threading

import pytest

HUNG = 30  # a bound that only a hang reaches


def _blocked(ax):
    """A request that stays outstanding until ev is set."""
    ev = threading.Event()
    return ax.submit(ev.wait, HUNG), ev


def test_context_timeout_is_a_timeout_error(ax):
    assert issubclass(ax.ContextTimeout, TimeoutError)


def _release_later(ev):
    """The work running when the context is cancelled is waited for: let
    it end soon after the deadline."""
    t = threading.Timer(0.1, ev.set)
    t.start()
    return t


def test_result_gives_up_at_the_deadline(ax):
    ev = threading.Event()
    _release_later(ev)
    try:
        with pytest.raises(ax.ContextTimeout):
            with ax.async_context(timeout=0.01):
                req = ax.submit(ev.wait, HUNG)
                req.result()
    finally:
        ev.set()
    # Leaving by ContextTimeout cancelled the context before the pop:
    # its request is complete (its work ran: it had started).
    assert req.done()
    ax.flush()


def test_leaving_by_timeout_cancels_queued_work(ax):
    ev = threading.Event()
    ran = []
    blockers = []
    _release_later(ev)
    try:
        with pytest.raises(ax.ContextTimeout):
            with ax.async_context(timeout=0.01):
                # More than the pool's workers: the last one is queued.
                blockers = [ax.submit(ev.wait, HUNG) for _ in range(64)]
                queued = ax.submit(ran.append, 1)
                ax.flush()
    finally:
        ev.set()
    assert queued.cancelled()
    assert ran == []
    for b in blockers:
        assert b.done()


@pytest.mark.parametrize('how', ['flush', 'poll', 'run'])
def test_blocking_calls_give_up(ax, how):
    req, ev = _blocked(ax)
    try:
        with ax.async_context(timeout=0.01):
            inner, ev2 = _blocked(ax)
            _release_later(ev2)
            try:
                with pytest.raises(ax.ContextTimeout):
                    if how == 'flush':
                        ax.flush()
                    elif how == 'poll':
                        while True:
                            ax.poll(True)
                    else:
                        ax.run()
            finally:
                ev2.set()
    finally:
        ev.set()
    assert req.result() is True


def test_deadline_property(ax):
    with ax.async_context() as plain:
        assert plain.deadline is None
    now = ax.time()
    with ax.async_context(deadline=now + 100) as outer:
        assert outer.deadline == pytest.approx(now + 100, abs=1e-6)
        with ax.async_context() as inherits:
            assert inherits.deadline == outer.deadline
        with ax.async_context(timeout=1000) as later:
            assert later.deadline == outer.deadline  # the earlier wins
        with ax.async_context(timeout=1) as sooner:
            assert sooner.deadline < outer.deadline
    with ax.async_context(timeout=5, deadline=now + 1) as both:
        assert both.deadline == pytest.approx(now + 1, abs=1e-6)
    with pytest.raises(RuntimeError):
        plain.deadline


def test_cancel_returns_the_count(ax):
    ev = threading.Event()
    ran = []
    try:
        with ax.async_context() as ctx:
            blockers = [ax.submit(ev.wait, HUNG) for _ in range(64)]
            queued = [ax.submit(ran.append, i) for i in range(3)]
            _release_later(ev)
            n = ctx.cancel()
            assert n >= 3
            for q in queued:
                assert q.done()
            assert all(b.done() for b in blockers)
    finally:
        ev.set()
    assert sum(q.cancelled() for q in queued) == 3
    assert ran == []


def test_cancel_only_while_current(ax):
    ctx = ax.async_context()
    with ctx:
        with ax.async_context():
            with pytest.raises(RuntimeError):
                ctx.cancel()
        assert ctx.cancel() == 0


def test_no_deadline_no_timeout(ax):
    with ax.async_context(timeout=HUNG):
        assert ax.submit(lambda: 3).result() == 3
        ax.flush()


def test_context_timeout_errno(ax):
    """ContextTimeout is a TimeoutError, an OSError: its errno is
    ETIMEDOUT, as for any OSError of a timeout."""
    with pytest.raises(ax.ContextTimeout) as e:
        with ax.async_context(timeout=0):
            ax.new_request().result()
    assert isinstance(e.value, OSError)
    assert e.value.errno == errno.ETIMEDOUT
    assert 'deadline' in str(e.value)


def _join_loop_thread(ax, timeout):
    with ax.LoopThread() as lt:
        lt.join(timeout)


def _pending(ax, made):
    req = ax.new_request()
    made.append(req)
    return req


# Each call that takes a timeout or a deadline in seconds.
_TIMEOUT_CALLS = {
    'async_context(timeout=)': lambda ax, b, made: ax.async_context(
        timeout=b),
    'async_context(deadline=)': lambda ax, b, made: ax.async_context(
        deadline=b),
    'poll(True, timeout=)': lambda ax, b, made: ax.poll(True, timeout=b),
    'poll(False, timeout=)': lambda ax, b, made: ax.poll(False, timeout=b),
    'result(timeout=)': lambda ax, b, made: _pending(ax, made).result(b),
    'exception(timeout=)': lambda ax, b, made: _pending(
        ax, made).exception(b),
    'LoopThread.join(timeout=)': lambda ax, b, made: _join_loop_thread(
        ax, b),
}


@pytest.mark.parametrize('value', [True, False])
@pytest.mark.parametrize('call', sorted(_TIMEOUT_CALLS))
def test_bool_timeouts_are_refused(ax, call, value):
    """True and False are ints, but not a number of seconds anyone means:
    TypeError, as for any timeout that is not a number."""
    made = []
    try:
        with pytest.raises(TypeError, match='bool'):
            _TIMEOUT_CALLS[call](ax, value, made)
    finally:
        for req in made:
            req.cancel()
        ax.flush()


def test_bad_timeouts(ax):
    with pytest.raises(TypeError):
        ax.async_context(timeout='1')
    with pytest.raises(ValueError):
        ax.async_context(timeout=float('nan'))


@pytest.mark.parametrize('outer', [{}, {'timeout': HUNG}],
                         ids=['no-deadline', 'later-deadline'])
def test_inner_timeout_leaves_an_outer_context_alone(ax, outer):
    """An inner context's ContextTimeout that leaves an outer block whose
    own effective deadline has not passed does not cancel the outer
    context: its requests are re-homed to the parent, as when any other
    exception leaves a block, and run (the outer's exit waits for none of
    its running work)."""
    ev = threading.Event()
    ran = []
    # Were the outer context cancelled, its exit would wait for the
    # blockers: end them after a while rather than after HUNG.
    watchdog = threading.Timer(2, ev.set)
    watchdog.start()
    try:
        with pytest.raises(ax.ContextTimeout):
            with ax.async_context(**outer):
                # More than the pool's workers: queued is queued.
                blockers = [ax.submit(ev.wait, HUNG) for _ in range(64)]
                queued = ax.submit(ran.append, 'outer')
                with ax.async_context(timeout=0.01):
                    inner = ax.submit(ran.append, 'inner')
                    inner.result()
        # Only the inner context was cancelled; the exits waited for
        # nothing that runs.
        assert inner.cancelled()
        assert not queued.done()
        assert not any(b.done() for b in blockers)
    finally:
        watchdog.cancel()
        ev.set()
    ax.flush()
    assert queued.done() and not queued.cancelled()
    assert ran == ['outer']


def test_inherited_timeout_cancels_each_context_it_leaves(ax):
    """A plain context inherits the enclosing deadline: when it passes,
    the ContextTimeout cancels the inner context and then the outer one
    whose deadline it is."""
    ev = threading.Event()
    ran = []
    _release_later(ev)
    try:
        with pytest.raises(ax.ContextTimeout):
            with ax.async_context(timeout=0.01):
                blockers = [ax.submit(ev.wait, HUNG) for _ in range(64)]
                queued = ax.submit(ran.append, 'outer')
                with ax.async_context():
                    inner = ax.submit(ran.append, 'inner')
                    ax.flush()
    finally:
        ev.set()
    assert inner.cancelled() and queued.cancelled()
    assert all(b.done() for b in blockers)
    assert ran == []
    ax.flush()
