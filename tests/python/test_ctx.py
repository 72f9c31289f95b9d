"""Context stack and isolation (ported from tests/c/test-ctx.c, test-bh.c,
test-req.c, test-poll.c): only the current context's callbacks run, nothing
is lost, re-homing at pop."""
import errno
import threading
import time

import pytest


def test_root_is_zero(ax):
    assert ax.context_id() == 0


def test_push_returns_depth_and_pop(ax):
    assert ax.push() == 1
    assert ax.push() == 2
    assert ax.context_id() == 2
    ax.pop()
    ax.pop()
    assert ax.context_id() == 0


def test_pop_at_root_einval(ax):
    before = ax.stats()
    with pytest.raises(OSError) as ei:
        ax.pop()
    assert ei.value.errno == errno.EINVAL
    assert ax.stats()['depth'] == before['depth'] == 0
    assert ax.push() == 1
    ax.pop()


def test_async_context_nesting_and_id(ax):
    with ax.async_context() as a:
        assert a.id == 1 == ax.context_id()
        with ax.async_context() as b:
            assert b.id == 2 == ax.context_id()
        assert ax.context_id() == 1
    assert ax.context_id() == 0


def test_async_context_reentrant_object(ax):
    c = ax.async_context()
    with c:
        assert c.id == 1
        with c:
            assert c.id == 2
        assert c.id == 1
    with pytest.raises(RuntimeError):
        c.id


def test_async_context_pops_on_exception(ax):
    with pytest.raises(ZeroDivisionError):
        with ax.async_context():
            assert ax.context_id() == 1
            1 / 0
    assert ax.context_id() == 0


def test_async_context_unbalanced(ax):
    with pytest.raises(RuntimeError):
        with ax.async_context():
            ax.push()
    assert ax.context_id() == 2  # exit refused to pop the wrong context
    ax.pop()
    ax.pop()


def test_parent_bh_not_in_child(ax):
    ran = []
    bh = ax.BottomHalf(lambda: ran.append(ax.context_id()))
    with ax.async_context():
        bh.schedule()
        assert ax.poll() is False
        assert ax.poll(True) is False  # nothing of the child: at once
        assert ran == []
    assert ax.poll() is True
    assert ran == [0]
    bh.delete()


def test_sibling_no_leftover_bh(ax):
    ran = []
    with ax.async_context():
        bh = ax.BottomHalf(lambda: ran.append(ax.context_id()))
    with ax.async_context():  # the sibling
        assert ax.poll(True) is False
        bh.schedule()
        assert ax.poll() is False
        assert ax.poll(True) is False
    assert ran == []  # the sibling's flush does not run it
    assert ax.poll() is True
    assert ran == [0]
    bh.delete()


def test_pop_flushes_child_scheduled_bh(ax):
    ran = []
    with ax.async_context():
        bh = ax.BottomHalf(lambda: ran.append(ax.context_id()))
        bh.schedule()
    assert ran == [1]
    bh.delete()


def test_pop_self_rescheduling_bh_terminates(ax):
    n = [0]

    def again():
        n[0] += 1
        bh.schedule()
    with ax.async_context():
        bh = ax.BottomHalf(again)
        bh.schedule()
    assert n[0] >= 1
    bh.cancel()
    bh.delete()


def _blocked_work(ax):
    """A submitted request that completes when the event is set."""
    ev = threading.Event()
    return ev, ax.submit(ev.wait, 10)


def test_sibling_no_leftover_request(pool):
    ax = pool
    ran = []
    with ax.async_context():
        ev, req = _blocked_work(ax)
        req.add_done_callback(lambda r: ran.append(ax.context_id()))
    with ax.async_context():
        assert ax.poll(True) is False
        with pytest.raises(ax.DeadlockError):
            req.result()
        ev.set()
        for _ in range(20):
            ax.poll()
            ax.process_queue()
        ax.flush()
        assert ran == []
    assert req.result() is True
    assert ran == [0]


def test_grandchild_leftover_goes_to_child(pool):
    ax = pool
    ran = []
    with ax.async_context():
        with ax.async_context():
            ev, req = _blocked_work(ax)
            req.add_done_callback(lambda r: ran.append(ax.context_id()))
        with ax.async_context():  # sibling of the grandchild
            ev.set()
            assert ax.poll(True) is False
            assert ran == []
        assert req.result() is True
        assert ran == [1]


def test_parent_completion_deferred_in_child(pool):
    ax = pool
    ran = []
    ev, req = _blocked_work(ax)
    req.add_done_callback(lambda r: ran.append(ax.context_id()))
    with ax.async_context():
        ev.set()
        inner = ax.submit(lambda: 7)
        assert inner.result() == 7
        ax.flush()  # does not wait for the parent's request
        # Let the parent's completion arrive while this context is current
        # (a bound that only separates "arrived" from "lost").
        deadline = time.monotonic() + 10
        while (ax.stats()['completions_deferred'] < 1 and
               time.monotonic() < deadline):
            ax.poll()
            time.sleep(0.001)
        assert ran == []
    req.result()
    assert ran == [0]
    assert ax.stats()['completions_deferred'] >= 1


def test_rehome_in_flight_request_completes_in_parent(pool):
    ax = pool
    ran = []
    with ax.async_context():
        ev, req = _blocked_work(ax)
        req.add_done_callback(lambda r: ran.append(ax.context_id()))
    ev.set()
    assert req.result() is True
    assert ran == [0]


def test_nested_sync_wait_in_callback(pool):
    """The point of contexts: a callback waits synchronously for its own
    request; other requests' callbacks do not re-enter it."""
    ax = pool
    order = []

    def outer_done(r):
        order.append('outer-start')
        with ax.async_context():
            assert ax.pread is not None
            assert ax.submit(lambda: 'inner').result() == 'inner'
        order.append('outer-end')

    a = ax.submit(lambda: 1)
    b = ax.submit(lambda: 2)
    a.add_done_callback(outer_done)
    b.add_done_callback(lambda r: order.append('other'))
    ax.flush()
    i = order.index('outer-start')
    assert order[i + 1] == 'outer-end'
    assert sorted(order) == ['other', 'outer-end', 'outer-start']


def test_per_thread_stacks(ax):
    res = {}

    def worker():
        res['start'] = ax.context_id()
        with ax.async_context() as c:
            res['in'] = c.id
        res['end'] = ax.context_id()
    with ax.async_context():
        with ax.async_context():
            t = threading.Thread(target=worker)
            t.start()
            t.join()
            assert ax.context_id() == 2
    assert res == {'start': 0, 'in': 1, 'end': 0}
