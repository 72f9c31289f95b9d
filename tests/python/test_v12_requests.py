"""Requests of version 1.2 (new_request, cancel, ctx.cancel) and
async_context's deadline arguments: each case failed before its fix."""
import asyncio
import concurrent.futures as cf
import threading

import pytest

HUNG = 30  # a bound that only a hang reaches


def _in_thread(fn, *args):
    """fn(*args) on another thread, joined: what it returned or raised."""
    out = {}

    def main():
        try:
            out['value'] = fn(*args)
        except BaseException as e:  # noqa: B902 - reported to the test
            out['error'] = e
    t = threading.Thread(target=main)
    t.start()
    t.join(HUNG)
    assert not t.is_alive()
    return out


@pytest.fixture
def rescue():
    """rescue(req): a watchdog that completes req with 'rescued' after
    HUNG seconds, so that a test of a wait that hangs fails instead of
    hanging."""
    timers = []

    def arm(req):
        def fire():
            try:
                req.set_result('rescued')
            except cf.InvalidStateError:
                pass  # completed (cancelled) meanwhile, as it should be
        t = threading.Timer(HUNG, fire)
        t.daemon = True
        t.start()
        timers.append(t)
    yield arm
    for t in timers:
        t.cancel()


# --- set_exception() refused: the request stays open --------------------

def test_refused_set_exception_does_not_complete(ax):
    req = ax.new_request()
    with pytest.raises(TypeError):
        req.set_exception('not an exception')
    with pytest.raises(TypeError):
        req.set_exception(int)  # a class, but not an exception's
    assert not req.done()
    req.set_result(42)  # the first completion accepted
    assert req.result(timeout=HUNG) == 42


def test_set_exception_whose_class_fails_to_instantiate(ax):
    class NeedsArg(Exception):
        def __init__(self, arg):
            super().__init__(arg)
    req = ax.new_request()
    with pytest.raises(TypeError):
        req.set_exception(NeedsArg)  # NeedsArg() raises
    assert not req.done()
    req.set_exception(ValueError)  # a class: instantiated
    with pytest.raises(ValueError):
        req.result(timeout=HUNG)


# --- cancel(): done callbacks on the owner thread, in their context -----

# Each in a context of its own: a flush there waits for its requests
# only (not for a request an earlier failure left open at the root).

def test_cancel_from_another_thread_runs_callbacks_on_owner(ax):
    me = threading.get_ident()
    with ax.async_context():
        req = ax.new_request()
        seen = []
        req.add_done_callback(lambda r: seen.append(
            ('first', threading.get_ident(), ax.context_id())))
        out = _in_thread(req.cancel)
        assert out == {'value': True}
        # Cancelled and done at once; the callbacks wait for the owner.
        assert req.cancelled() and req.done()
        with pytest.raises(ax.CancelledError):
            req.result()
        assert seen == []
        # One added now joins them (the order kept).
        req.add_done_callback(lambda r: seen.append(
            ('second', threading.get_ident(), ax.context_id())))
        assert seen == []
        ax.flush()
        assert seen == [('first', me, 1), ('second', me, 1)]
        req.add_done_callback(lambda r: seen.append('late'))
        assert seen[-1] == 'late'  # released: at once


def test_cancel_in_nested_context_defers_outer_callbacks(ax):
    with ax.async_context():
        req = ax.new_request()
        seen = []
        req.add_done_callback(lambda r: seen.append(ax.context_id()))
        with ax.async_context():
            assert req.cancel() is True
            assert req.cancelled() and req.done()
            with pytest.raises(ax.CancelledError):
                req.result()  # at once, from the nested context too
            ax.flush()
            ax.poll()
            assert seen == []  # never while context 2 is current
        ax.flush()
        assert seen == [1]


def test_cancel_pool_request_in_nested_context(pool):
    ax = pool
    ev = threading.Event()
    seen = []
    with ax.async_context():
        # More blockers than the pool has workers: the last one queued.
        blockers = [ax.submit(ev.wait, HUNG) for _ in range(64)]
        req = ax.submit(int)
        req.add_done_callback(lambda r: seen.append(ax.context_id()))
        try:
            with ax.async_context():
                cancelled = req.cancel()
                ax.flush()
                assert seen == []
        finally:
            ev.set()
            for b in blockers:
                b.result(timeout=HUNG)
        ax.flush()
        assert req.cancelled() is cancelled
        assert seen == [1]


def test_cancel_wakes_concurrent_futures_waiters_at_once(ax):
    with ax.async_context():
        req = ax.new_request()
        seen = []
        req.add_done_callback(seen.append)
        got = cf.Future()
        th = threading.Thread(target=lambda: got.set_result(
            cf.wait([req], timeout=HUNG)))
        th.start()
        assert _in_thread(req.cancel) == {'value': True}
        # The waiter sees it done without the owner polling.
        assert got.result(HUNG).done == {req}
        th.join(HUNG)
        assert list(cf.as_completed([req], timeout=HUNG)) == [req]
        assert seen == []
        ax.flush()
        assert seen == [req]


def test_await_of_request_cancelled_from_another_thread(ax):
    async def main():
        with ax.asyncio_bridge():
            req = ax.new_request()
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: threading.Thread(
                target=req.cancel).start())
            # As for a cancelled asyncio future: asyncio's CancelledError.
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(_aw(req), HUNG)
            return req
    with ax.async_context():
        req = asyncio.run(main())
        assert req.cancelled()
        ax.flush()


async def _aw(req):
    return await req


# --- ctx.cancel() and a timed-out context with new_request() open -------

def test_leaving_by_timeout_cancels_open_new_request(ax, rescue):
    seen = []
    with pytest.raises(ax.ContextTimeout):
        with ax.async_context(timeout=0.01):
            req = ax.new_request()  # a peer that never answers
            rescue(req)
            req.add_done_callback(lambda r: seen.append(ax.context_id()))
            req.result()
    assert ax.context_id() == 0
    assert req.cancelled()
    assert seen == [1]  # in its context, before the pop


def test_ctx_cancel_counts_open_new_requests(ax, rescue):
    with ax.async_context() as ctx:
        reqs = [ax.new_request() for _ in range(3)]
        for r in reqs:
            rescue(r)
        assert ctx.cancel() == 3
        assert all(r.cancelled() for r in reqs)
        assert ctx.cancel() == 0
        with pytest.raises(cf.InvalidStateError):
            reqs[1].set_result(1)


def test_ctx_cancel_takes_new_requests_of_popped_children(ax, rescue):
    outer = ax.new_request()  # of the root: not cancelled below
    with ax.async_context() as ctx:
        with ax.async_context():
            child = ax.new_request()
        rescue(child)
        assert ctx.cancel() == 1  # re-homed into ctx with its context
        assert child.cancelled()
    assert not outer.done()
    outer.set_result(7)
    assert outer.result(timeout=HUNG) == 7


def test_ctx_cancel_does_not_cancel_a_completed_new_request(ax):
    with ax.async_context() as ctx:
        req = ax.new_request()
        # Completed on another thread; its completion has not run yet.
        assert _in_thread(req.set_result, 'v') == {'value': None}
        assert not req.done()
        assert ctx.cancel() == 0
        assert req.result() == 'v'


def test_deferred_pop_cancels_open_new_request(ax, rescue):
    """A context left by a cancelled task under another task's context
    is cancelled and popped when that one leaves: its open new_request()
    too."""
    reqs = []

    async def holder(entered):
        with ax.async_context():
            req = ax.new_request()  # open: nobody completes it
            rescue(req)
            reqs.append(req)
            entered.set()
            await asyncio.sleep(HUNG)

    async def top(entered, left):
        with ax.async_context():
            entered.set()
            await left.wait()

    async def main():
        with ax.asyncio_bridge():
            e1, e2, left = asyncio.Event(), asyncio.Event(), asyncio.Event()
            t1 = asyncio.ensure_future(holder(e1))
            await e1.wait()
            t2 = asyncio.ensure_future(top(e2, left))
            await e2.wait()
            assert ax.context_id() == 2
            t1.cancel()
            await asyncio.gather(t1, return_exceptions=True)
            assert ax.context_id() == 2  # deferred
            left.set()
            await t2
            assert ax.context_id() == 0
    asyncio.run(main())
    assert reqs[0].cancelled()


# --- async_context: infinite or far deadlines ----------------------------

@pytest.mark.parametrize('kw', [
    {'timeout': float('inf')}, {'timeout': 1e300}, {'timeout': 2 ** 80},
    {'deadline': float('inf')}, {'deadline': 1e300},
    {'timeout': float('inf'), 'deadline': float('inf')}])
def test_infinite_deadline_is_none(ax, kw):
    with ax.async_context(**kw) as ctx:
        assert ctx.deadline is None
        with ax.async_context(timeout=HUNG) as inner:
            d = inner.deadline
        # One of its own with a finite other one: that one.
        with ax.async_context(deadline=d, **{k: v for k, v in kw.items()
                                             if k == 'timeout'}) as c2:
            assert c2.deadline == pytest.approx(d, abs=1e-6)
    with ax.async_context(timeout=HUNG) as outer:
        with ax.async_context(**kw) as ctx:
            assert ctx.deadline == outer.deadline  # the parent's


@pytest.mark.parametrize('kw', [{'timeout': float('nan')},
                                {'deadline': float('nan')}])
def test_nan_deadline_is_a_value_error(ax, kw):
    with pytest.raises(ValueError, match='NaN'):
        ax.async_context(**kw)
    assert ax.context_id() == 0


@pytest.mark.parametrize('kw', [{'timeout': -1}, {'timeout': float('-inf')},
                                {'deadline': -1e300},
                                {'deadline': float('-inf')}])
def test_past_deadline_has_passed(ax, kw):
    with ax.async_context(**kw) as ctx:
        assert ctx.deadline is not None and ctx.deadline <= ax.time()


def test_deadline_of_a_wrong_type(ax):
    with pytest.raises(TypeError, match='timeout'):
        ax.async_context(timeout='1')
    with pytest.raises(TypeError, match='deadline'):
        ax.async_context(deadline=[])


# --- flush() does not wait for a timer (docs/python.md) -----------------

def test_flush_does_not_wait_for_timers(ax):
    ran = []
    with ax.async_context():
        t = ax.call_later(HUNG, ran.append, 1)
        ax.flush()  # returns: no request, no BH
        assert ran == []
        t.cancel()
