"""Objects live exactly as long as C needs them."""
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
    misleading diagnostic)."""
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
                assert not req.done() and not req.cancelled()
        assert [r.getMessage() for r in caplog.records
                if r.name == 'actx'] == []
    finally:
        ev.set()
    assert ax.context_id() == 0
    assert ax.submit(pow, 3, 3).result() == 27  # the new loop works


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
