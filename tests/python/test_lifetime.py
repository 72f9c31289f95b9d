"""Objects live exactly as long as C needs them."""
import asyncio
import concurrent.futures
import errno
import gc
import logging
import sys
import threading
import weakref

import pytest

from conftest import ASAN


def _rss_kb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * 4


class Obj:
    pass


def test_call_soon_args_released_after_run(ax):
    o = Obj()
    w = weakref.ref(o)
    h = ax.current_context()
    h.call_soon(lambda x: None, o)
    del o
    gc.collect()
    assert w() is not None  # held while C may call
    ax.poll()
    gc.collect()
    assert w() is None
    h.close()


def test_bh_released_after_delete(ax):
    o = Obj()
    w = weakref.ref(o)
    bh = ax.BottomHalf(lambda x: None, o)
    del o
    gc.collect()
    assert w() is not None
    bh.schedule()
    ax.poll()
    bh.delete()
    del bh
    gc.collect()
    assert w() is None


def test_dropped_bottom_halves_go_on_a_thread_that_only_polls(ax):
    """A BottomHalf dropped with no reference left was deleted only by
    run() (or the thread's end): on a thread that polls (poll(), flush(),
    result(), an asyncio bridge) every dropped one stayed, its C BH, its
    function and arguments, for ever (live_bhs grew by one per BH)."""
    live0 = ax.stats()['live_bhs']
    o = Obj()
    w = weakref.ref(o)
    ax.BottomHalf(lambda x: None, o)  # never scheduled: goes at once
    del o
    gc.collect()
    assert w() is None
    assert ax.stats()['live_bhs'] == live0
    # Dropped while scheduled: it runs once, then goes.
    out = []
    o = Obj()
    w = weakref.ref(o)
    ax.BottomHalf(out.append, o).schedule()
    del o
    gc.collect()
    assert w() is not None  # held while C may run it
    for i in range(1000):
        ax.BottomHalf(out.append, i).schedule()
        ax.poll()
    gc.collect()
    assert out[0] is not None and out[1:] == list(range(1000))
    del out[:]
    gc.collect()
    assert w() is None
    assert ax.stats()['live_bhs'] - live0 < 200


def test_request_released_after_done(pool):
    ax = pool
    o = Obj()
    w = weakref.ref(o)
    req = ax.submit(lambda x: 5, o)
    wr = weakref.ref(req)
    del o, req
    gc.collect()
    ax.flush()
    gc.collect()
    assert w() is None and wr() is None


def test_request_released_when_owner_thread_dies(pool):
    """A thread exits with a request in flight: the completion is refused
    (EPIPE) once the work ends, and the Request (with everything it holds)
    is released then, not kept forever."""
    ax = pool
    gate = threading.Event()
    ran = threading.Event()
    refs = []
    before = ax.stats()['posts_refused_all']

    def work(o):
        gate.wait(10)
        ran.set()
        return 1

    def owner():
        o = Obj()
        refs.append(weakref.ref(o))
        refs.append(weakref.ref(ax.submit(work, o)))

    t = threading.Thread(target=owner)
    t.start()
    t.join()               # its loop shut down with the request in flight
    gc.collect()
    assert refs[0]() is not None and refs[1]() is not None  # work may run
    gate.set()
    assert ran.wait(10)
    for _ in range(500):   # the refusal follows the work on the pool thread
        gc.collect()
        if refs[0]() is None and refs[1]() is None:
            break
        threading.Event().wait(0.01)
    assert refs[0]() is None and refs[1]() is None
    assert ax.stats()['posts_refused_all'] == before + 1


def test_with_block_left_after_thread_shutdown_inside(ax):
    """thread_shutdown() inside a `with async_context()` block popped its
    context: the exit (on the same thread) says so, instead of claiming
    it ran on another thread."""
    ctx = ax.async_context()
    with pytest.raises(RuntimeError) as e:
        with ctx:
            ax.thread_shutdown()
    assert 'thread_shutdown()' in str(e.value)
    assert 'other than' not in str(e.value)
    assert ax.context_id() == 0
    with ctx:  # usable again, on the new loop
        assert ax.context_id() == 1
        assert ax.submit(pow, 2, 2).result() == 4


def test_request_of_a_loop_shut_down(pool, caplog):
    """A request still outstanding when its thread's loop was shut down
    (thread_shutdown()) can never complete: result() raises DeadlockError
    saying so (not "belongs to an outer context"), and cancel() returns
    False without calling into C (the request is gone there: no
    misleading diagnostic).  It fails (done, DeadlockError) when its work
    ends, and at once for a new_request() nobody completed."""
    ax = pool
    ev = threading.Event()
    try:
        running = ax.submit(ev.wait, 10)    # its work runs on
        made = ax.new_request()             # nobody completed it
        ax.push()
        inner = ax.submit(ev.wait, 10)      # of a context left pushed
        with caplog.at_level(logging.DEBUG, logger='actx'):
            ax.thread_shutdown()
            for req in (running, made, inner):
                for timeout in (None, 1):
                    with pytest.raises(ax.DeadlockError) as e:
                        req.result(timeout)
                    assert 'shut down' in str(e.value)
                    assert 'outer context' not in str(e.value)
                assert req.cancel() is False
                assert not req.cancelled()
            assert made.done()
            assert not running.done() and not inner.done()  # work runs
            with pytest.raises(concurrent.futures.InvalidStateError):
                made.set_result(1)
            ev.set()
            done, _ = concurrent.futures.wait([running, inner], timeout=60)
            assert done == {running, inner}
            for req in (running, inner):
                assert isinstance(req.exception(), ax.DeadlockError)
                assert req.cancel() is False and not req.cancelled()
        assert [r.getMessage() for r in caplog.records
                if r.name == 'actx'] == []
    finally:
        ev.set()
    assert ax.context_id() == 0
    assert ax.submit(pow, 3, 3).result() == 27  # the new loop works


def _owner_thread_ends_with(ax, make):
    """A thread makes requests (make(ax) -> list) and ends with them
    outstanding (its loop shuts down); the requests, for other threads."""
    box = []
    t = threading.Thread(target=lambda: box.extend(make(ax)))
    t.start()
    t.join()
    return box


def test_other_thread_waiter_wakes_when_owner_loop_ended(pool):
    """concurrent.futures.wait() on another thread for a request whose
    owner thread ended while its work ran: the work's end fails the
    request (DeadlockError) and wakes the waiter; its done callbacks run
    on the thread that failed it (the owner has no loop left), as
    concurrent.futures runs them on the thread that completes a future."""
    ax = pool
    ev = threading.Event()
    ran = []
    try:
        def make(ax):
            req = ax.submit(ev.wait, 30)
            req.add_done_callback(
                lambda r: ran.append((r, threading.get_ident())))
            return [req]
        req, = _owner_thread_ends_with(ax, make)
        assert not req.done()
        ev.set()
        done, _ = concurrent.futures.wait([req], timeout=60)
        assert done == {req}
        with pytest.raises(ax.DeadlockError) as e:
            req.result()
        assert 'shut down' in str(e.value)
        assert isinstance(req.exception(), ax.DeadlockError)
        assert list(concurrent.futures.as_completed([req], timeout=1)) == \
            [req]
        (r, ident), = ran
        assert r is req and ident != threading.get_ident()
    finally:
        ev.set()


def test_other_thread_await_wakes_when_owner_loop_ended(pool):
    """A task awaiting (on another thread) a request whose owner thread
    ended: it raises DeadlockError when the work ends, instead of
    waiting for ever."""
    ax = pool
    ev = threading.Event()
    try:
        req, = _owner_thread_ends_with(
            ax, lambda ax: [ax.submit(ev.wait, 30)])

        async def waiter():
            asyncio.get_running_loop().call_later(0.05, ev.set)
            return await asyncio.wait_for(req, 60)
        with pytest.raises(ax.DeadlockError):
            asyncio.run(waiter())
        assert req.done() and not req.cancelled()
    finally:
        ev.set()


@pytest.mark.parametrize('when', ['before', 'after'])
def test_wrap_future_wakes_when_owner_loop_ended(pool, when):
    """asyncio.wrap_future() on another thread of a request whose owner
    thread ended, made before the request failed or after: the task
    raises DeadlockError.  wrap_future() chains through
    add_done_callback(), whose callbacks never ran for such a request
    (neither those added before nor those added once it was done), so
    the task waited for ever although done() was True."""
    ax = pool
    ev = threading.Event()
    try:
        req, = _owner_thread_ends_with(
            ax, lambda ax: [ax.submit(ev.wait, 30)])
        if when == 'after':
            ev.set()
            done, _ = concurrent.futures.wait([req], timeout=60)
            assert done == {req}
            late = []
            req.add_done_callback(late.append)
            assert late == [req]  # done: at once, as for any request

        async def waiter():
            fut = asyncio.wrap_future(req)
            asyncio.get_running_loop().call_soon(ev.set)
            return await asyncio.wait_for(fut, 60)
        with pytest.raises(ax.DeadlockError):
            asyncio.run(waiter())
    finally:
        ev.set()


def test_done_callback_at_thread_shutdown_uses_the_new_loop(pool):
    """The done callback of a new_request() nobody completed runs at
    thread_shutdown(), on the owner: what it makes with actx belongs to
    the thread's new loop (not to the ended one, where its result()
    would raise DeadlockError)."""
    ax = pool
    out = []
    box = []

    def body():
        req = ax.new_request()
        req.add_done_callback(lambda r: box.append(ax.submit(pow, 2, 5)))
        ax.thread_shutdown()
        out.append(type(req.exception()))
        out.append(box[0].result())
        ax.thread_shutdown()
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert out == [ax.DeadlockError, 32]


def test_done_callback_of_a_request_whose_loop_ended_raising(
        pool, monkeypatch):
    """A done callback run by the failure of a request whose loop shut
    down has no API call to raise its exception from: it goes to
    sys.unraisablehook, and the next callback still runs."""
    ax = pool
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    ev = threading.Event()
    ran = []

    def boom(r):
        raise ValueError('boom')
    try:
        def make(ax):
            req = ax.submit(ev.wait, 30)
            req.add_done_callback(boom)
            req.add_done_callback(ran.append)
            return [req]
        req, = _owner_thread_ends_with(ax, make)
        ev.set()
        done, _ = concurrent.futures.wait([req], timeout=60)
        assert done == {req}
    finally:
        ev.set()
    assert ran == [req]
    assert [type(u.exc_value) for u in unraisable] == [ValueError]


def test_new_request_fails_when_owner_loop_ended(ax):
    """A new_request() nobody completed when its owner thread ended: it
    fails at once (DeadlockError), waking a waiter on another thread; a
    completer that comes later finds it complete (InvalidStateError), and
    its C request is freed (nothing left outstanding or leaked)."""
    woke = []
    gate = threading.Event()
    box = []

    def owner():
        box.append(ax.new_request())
        gate.wait(30)           # the waiter below waits before we end

    def waiter():
        while not box:
            threading.Event().wait(0.001)
        gate.set()
        done, _ = concurrent.futures.wait(box, timeout=60)
        woke.append(done)
    refused = ax.stats()['posts_refused_all']
    w = threading.Thread(target=waiter)
    w.start()
    t = threading.Thread(target=owner)
    t.start()
    t.join()
    w.join()
    req, = box
    assert woke == [{req}]
    with pytest.raises(ax.DeadlockError):
        req.result()
    with pytest.raises(concurrent.futures.InvalidStateError):
        req.set_result(1)
    with pytest.raises(concurrent.futures.InvalidStateError):
        req.set_exception(ValueError)
    assert req.cancel() is False
    # Its C request was completed and refused at the shutdown (freed).
    assert ax.stats()['posts_refused_all'] == refused + 1


@pytest.mark.parametrize('how', ['set_result', 'cancel'])
def test_new_request_completed_while_owner_loop_ends(ax, monkeypatch, how):
    """A new_request() that another thread is completing (claimed, its
    completion not posted yet) while its owner thread ends: that
    completion is refused (set_result() raises OSError EPIPE, cancel()
    returns False), the request fails with DeadlockError, and its C
    request is freed.  The shutdown had cleared the pointer under the
    completer: set_result()/cancel() raised TypeError and the C request
    (and the Python object C held) leaked."""
    from actx._impl import _request
    claim = _request.Request._claim
    claimed = threading.Event()
    go = threading.Event()

    def slow_claim(req):
        won = claim(req)
        if threading.current_thread().name == 'completer':
            claimed.set()
            go.wait(30)  # the owner's loop ends meanwhile
        return won
    monkeypatch.setattr(_request.Request, '_claim', slow_claim)
    box = []
    out = []
    made = threading.Event()
    end = threading.Event()

    def owner():
        box.append(ax.new_request())
        made.set()
        end.wait(30)

    def completer():
        made.wait(30)
        try:
            if how == 'set_result':
                box[0].set_result(5)
            else:
                out.append(box[0].cancel())
        except BaseException as e:
            out.append(e)
    refused = ax.stats()['posts_refused_all']
    t = threading.Thread(target=owner)
    c = threading.Thread(target=completer, name='completer')
    t.start()
    c.start()
    assert claimed.wait(30)
    end.set()
    t.join()
    go.set()
    c.join()
    req, = box
    if how == 'set_result':
        e, = out
        assert isinstance(e, OSError) and e.errno == errno.EPIPE, e
    else:
        assert out == [False]
    assert req.done() and not req.cancelled()
    assert isinstance(req.exception(), ax.DeadlockError)
    assert ax.stats()['posts_refused_all'] == refused + 1
    del req, box[:]
    gc.collect()


def test_handle_unref_from_other_thread(ax):
    h = ax.current_context()
    th = threading.Thread(target=h.close)
    th.start()
    th.join()
    assert ax.poll(True) is False  # no handle held: returns at once


def test_million_submit_cycles_memory_stable(pool):
    """1,000,000 submit/complete cycles: no growth (no leak); under ASan
    fewer cycles, for use-after-free detection only (its quarantine makes
    RSS meaningless)."""
    ax = pool
    total = 1000000 if not ASAN else 100000
    batch = 1000
    fn = abs
    rc0 = sys.getrefcount(fn)

    def cycles(n):
        for _ in range(n // batch):
            for i in range(batch):
                ax.submit(fn, -i)
            ax.flush()
    cycles(100000 if not ASAN else 10000)
    gc.collect()
    rss0 = _rss_kb()
    cycles(total - (100000 if not ASAN else 10000))
    gc.collect()
    rss1 = _rss_kb()
    assert sys.getrefcount(fn) == rc0
    assert ax.stats()['outstanding'] == 0
    if ax.BACKEND == 'cffi':
        from actx._impl import _backend_cffi
        assert len(_backend_cffi._keep) == 0
    if not ASAN:
        assert rss1 - rss0 < 8 * 1024, 'RSS grew %d kB' % (rss1 - rss0)


def test_million_call_soon_cycles_no_growth(ax):
    total = 200000 if not ASAN else 20000
    h = ax.current_context()
    fn = abs
    rc0 = sys.getrefcount(fn)
    for _ in range(total // 1000):
        for i in range(1000):
            h.call_soon(fn, i)
        while ax.poll():
            pass
    h.close()
    assert sys.getrefcount(fn) == rc0
