"""call_later / call_at timers and add_reader / add_writer fd handlers:
per context, on the owner thread, exceptions re-raised by the call that
ran them (issue 10)."""
import errno
import math
import os
import socket
import tempfile
import threading
import time

import pytest

from conftest import run_child

HUNG = 20.0  # only separates "finished" from "hung"


def wait_until(ax, cond):
    deadline = time.monotonic() + HUNG
    while not cond():
        assert time.monotonic() < deadline, 'hung'
        ax.poll(True)


# ------------------------------------------------------------------------
# Timers

def test_call_later_order_and_when(ax):
    seen = []
    t0 = ax.time()
    a = ax.call_later(0.03, seen.append, 'a')
    b = ax.call_at(a.when() - 0.02, seen.append, 'b')
    c = ax.call_at(a.when() - 0.01, seen.append, 'c')
    assert isinstance(a, ax.Timer)
    assert t0 + 0.03 <= a.when() < t0 + 0.03 + HUNG
    ax.run()  # returns once no timer is armed
    assert seen == ['b', 'c', 'a']
    assert ax.time() >= a.when()
    assert not (a.cancelled() or b.cancelled() or c.cancelled())


def test_time_is_the_runtime_clock(ax):
    assert abs(ax.time() - time.monotonic()) < 1.0


def test_call_later_zero_and_negative_and_past(ax):
    seen = []
    ax.call_later(0, seen.append, 1)
    ax.call_later(-5, seen.append, 2)
    ax.call_at(0, seen.append, 3)
    wait_until(ax, lambda: len(seen) == 3)
    assert sorted(seen) == [1, 2, 3]


def test_cancel(ax):
    seen = []
    t = ax.call_later(0.01, seen.append, 'x')
    t.cancel()
    t.cancel()
    assert t.cancelled()
    assert not ax.poll(True)  # nothing left: returns at once
    assert seen == []
    done = ax.call_later(0, seen.append, 'y')
    wait_until(ax, lambda: seen)
    done.cancel()  # after it ran: a no-op
    assert not done.cancelled() and seen == ['y']


def test_cancel_from_own_callback_and_other_timer(ax):
    seen = []
    b = ax.call_later(0.05, seen.append, 'b')

    def first():
        seen.append('a')
        b.cancel()
    ax.call_later(0, first)
    ax.run()
    assert seen == ['a']


def test_cancel_on_other_thread_refused(ax):
    t = ax.call_later(10, int)
    err = []

    def other():
        try:
            t.cancel()
        except RuntimeError as e:
            err.append(e)
    th = threading.Thread(target=other)
    th.start()
    th.join()
    assert err and not t.cancelled()
    t.cancel()


def test_timer_runs_only_in_its_context(ax):
    seen = []
    ax.call_later(0, lambda: seen.append(ax.context_id()))
    with ax.async_context():
        ax.call_later(0.05, lambda: seen.append(ax.context_id()))
        time.sleep(0.01)
        ax.poll()        # the root's due timer waits
        assert 0 not in seen
        ax.run()         # the child's fires, then nothing is left here
        assert seen == [1]
    wait_until(ax, lambda: len(seen) == 2)
    assert seen == [1, 0]


def test_timer_made_in_child_rehomed_at_pop(ax):
    seen = []
    with ax.async_context():
        t = ax.call_later(0.05, lambda: seen.append(ax.context_id()))
    assert seen == []  # pop runs BHs, not timers that are not due
    wait_until(ax, lambda: seen)
    assert seen == [0] and not t.cancelled()


def test_timer_due_in_child_fires_after_pop(ax):
    seen = []
    with ax.async_context():
        ax.call_later(0, lambda: seen.append(ax.context_id()))
        with ax.async_context():
            time.sleep(0.01)
            ax.poll()
            assert seen == []
    wait_until(ax, lambda: seen)
    assert seen == [0]


def test_timer_exception_raised_by_poll(ax):
    def boom():
        raise ValueError('timer')
    seen = []
    ax.call_later(0, boom)
    ax.call_later(0, seen.append, 'after')
    with pytest.raises(ValueError, match='timer'):
        wait_until(ax, lambda: seen)
    wait_until(ax, lambda: seen)
    assert seen == ['after']


def test_timer_bad_arguments(ax):
    with pytest.raises(TypeError):
        ax.call_later(0, None)
    with pytest.raises(TypeError):
        ax.call_later('1', int)
    with pytest.raises(TypeError):
        ax.call_at(None, int)
    with pytest.raises(ValueError):
        ax.call_later(math.nan, int)
    with pytest.raises(ValueError):
        ax.call_at(math.nan, int)
    far = ax.call_later(math.inf, int)
    assert far.when() > 1e9
    far.cancel()
    assert not ax.poll(True)


def test_timers_cancelled_at_thread_exit(ax):
    timers = []

    def owner():
        timers.append(ax.call_later(60, int))
    th = threading.Thread(target=owner)
    th.start()
    th.join()
    # The thread's runtime ends with its thread state, which may be just
    # after join() returned.
    deadline = time.monotonic() + HUNG
    while not timers[0].cancelled():
        assert time.monotonic() < deadline, 'never cancelled'
        time.sleep(0.001)


def test_thread_shutdown_cancels_timers_and_fds(ax):
    out = []

    def owner():
        r, w = os.pipe()
        t = ax.call_later(60, int)
        ax.add_reader(r, int)
        ax.thread_shutdown()
        out.append((t.cancelled(), ax.remove_reader(r)))
        os.close(r)
        os.close(w)
    th = threading.Thread(target=owner)
    th.start()
    th.join()
    assert out == [(True, False)]


def test_timer_on_other_thread_runs_there(ax):
    out = []

    def owner():
        me = threading.get_ident()
        ax.call_later(0.01, lambda: out.append(threading.get_ident() == me))
        ax.run()
    th = threading.Thread(target=owner)
    th.start()
    th.join()
    assert out == [True]



# The timers of a context share one C timer (python/actx/_impl/_timers.py, _Timers):
# what that must not change.

def test_same_deadline_runs_in_creation_order(ax):
    seen = []
    when = ax.time() + 0.01
    for i in range(5):
        ax.call_at(when, seen.append, i)
    ax.call_at(when - 0.005, seen.append, 'early')
    ax.run()
    assert seen == ['early', 0, 1, 2, 3, 4]


def test_cancelling_every_timer_lets_run_return(ax):
    # A cancelled timer must not keep the context's C timer armed: run()
    # returns at once instead of waiting an hour.
    ts = [ax.call_later(3600 + i, int) for i in range(200)]
    for t in ts:
        t.cancel()
    t0 = time.monotonic()
    ax.run()
    assert time.monotonic() - t0 < HUNG
    assert all(t.cancelled() for t in ts)


def test_many_cancelled_among_pending(ax):
    # Cancels leave stale deadlines behind (compacted); none of them may
    # run, every pending one must, in deadline order.
    seen = []
    ts = [ax.call_later(0.001 * (i % 10), seen.append, i)
          for i in range(500)]
    for t in ts[::2] + ts[1::4]:
        t.cancel()
    ax.run()
    left = [i for i in range(500) if not ts[i].cancelled()]
    assert sorted(seen) == left
    assert [ts[i].when() for i in seen] == \
        sorted(ts[i].when() for i in seen)


def test_exception_does_not_stop_other_due_timers(ax):
    seen = []

    def boom():
        raise KeyError('first')
    when = ax.time() + 0.005
    ax.call_at(when, boom)
    ax.call_at(when + 1e-6, seen.append, 'after')
    with pytest.raises(KeyError):
        ax.run()
    ax.run()
    assert seen == ['after']


def test_nested_poll_in_timer_runs_other_due_timers(ax):
    seen = []

    def outer():
        seen.append('outer')
        # Both others are due: a poll nested here runs them.
        wait_until(ax, lambda: len(seen) == 3)
        seen.append('outer done')
    when = ax.time() + 0.005
    ax.call_at(when, outer)
    ax.call_at(when + 1e-6, seen.append, 'a')
    ax.call_at(when + 2e-6, seen.append, 'b')
    ax.run()
    assert seen == ['outer', 'a', 'b', 'outer done']


def test_timer_made_due_by_its_callback_runs_at_next_poll(ax):
    # A callback that keeps making due timers cannot starve the loop:
    # each round runs what was due when it started.
    rounds = []

    def again(k):
        rounds.append(k)
        if k < 50:
            ax.call_at(0, again, k + 1)
    ax.call_at(0, again, 0)
    time.sleep(0.001)
    ax.poll()
    assert rounds == [0]
    ax.run()
    assert rounds == list(range(51))


def test_pop_merges_child_timers_in_deadline_order(ax):
    seen = []
    base = ax.time() + 0.02
    ax.call_at(base + 0.002, seen.append, 'root-2')
    ax.call_at(base + 0.004, seen.append, 'root-4')
    with ax.async_context():
        ax.call_at(base + 0.001, seen.append, 'child-1')
        ax.call_at(base + 0.003, seen.append, 'child-3')
        gone = ax.call_at(base + 0.0035, seen.append, 'cancelled')
        gone.cancel()
        with ax.async_context():
            ax.call_at(base, seen.append, 'grandchild-0')
    ax.run()
    assert seen == ['grandchild-0', 'child-1', 'root-2', 'child-3',
                    'root-4']
    # After the merge, a moved timer is still cancellable on its own.
    with ax.async_context():
        t = ax.call_later(0.01, seen.append, 'x')
    t.cancel()
    ax.run()
    assert 'x' not in seen and t.cancelled()


def test_dense_deadlines_run_in_order_never_early(ax):
    # Deadlines 1 us apart (many share a bucket of the Python timer
    # queue, part of a bucket is due at a poll): each runs at or after
    # its deadline, all in deadline order.
    seen = []

    def hit(k):
        seen.append((k, ax.time()))
    base = ax.time() + 0.002
    order = list(range(300))
    order = order[::3] + order[1::3] + order[2::3]  # made out of order
    ts = {k: ax.call_at(base + k * 1e-6, hit, k) for k in order}
    ax.run()
    assert [k for k, _ in seen] == list(range(300))
    assert all(now >= ts[k].when() for k, now in seen)


def test_cancel_next_due_timer_from_a_due_timer(ax):
    seen = []
    when = ax.time() + 0.002
    later = []

    def first():
        seen.append('first')
        later[0].cancel()
    ax.call_at(when, first)
    later.append(ax.call_at(when + 1e-6, seen.append, 'second'))
    ax.call_at(when + 2e-6, seen.append, 'third')
    time.sleep(0.005)  # all three due at the same poll
    ax.run()
    assert seen == ['first', 'third'] and later[0].cancelled()

def test_cancel_merged_timer_then_run_returns(ax):
    with ax.async_context():
        t = ax.call_later(3600, int)
    t.cancel()
    t0 = time.monotonic()
    ax.run()
    assert time.monotonic() - t0 < HUNG

# ------------------------------------------------------------------------
# fd handlers

@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


def test_reader_runs_with_args(ax, pipe):
    r, w = pipe
    seen = []

    def on_read(tag):
        seen.append((tag, os.read(r, 10), ax.context_id()))
    ax.add_reader(r, on_read, 'x')
    assert not ax.poll()
    os.write(w, b'ab')
    wait_until(ax, lambda: seen)
    assert seen == [('x', b'ab', 0)]
    assert ax.remove_reader(r) is True
    assert ax.remove_reader(r) is False
    os.write(w, b'c')
    assert not ax.poll()


def test_writer_and_reader_on_one_fd(ax):
    a, b = socket.socketpair()
    try:
        seen = []

        def on_write():
            seen.append('w')
            a.send(b'z')
            ax.remove_writer(a)
        ax.add_writer(a, on_write)
        ax.add_reader(b, lambda: seen.append(b.recv(1)))
        ax.add_reader(a, lambda: seen.append('a readable'))
        wait_until(ax, lambda: len(seen) >= 2)
        assert seen[:2] == ['w', b'z']
        assert ax.remove_writer(a) is False
        assert ax.remove_reader(a) is True
        assert ax.remove_reader(b) is True
    finally:
        a.close()
        b.close()


def test_add_reader_replaces(ax, pipe):
    r, w = pipe
    seen = []
    ax.add_reader(r, seen.append, 1)
    ax.add_reader(r, lambda: seen.append(os.read(r, 1)))
    os.write(w, b'q')
    wait_until(ax, lambda: seen)
    assert seen == [b'q']
    assert ax.remove_reader(r)


def test_reader_only_in_its_context(ax, pipe):
    r, w = pipe
    seen = []
    ax.add_reader(r, lambda: seen.append((os.read(r, 1), ax.context_id())))
    os.write(w, b'1')
    with ax.async_context():
        ax.call_later(0.02, int)
        ax.run()  # 20 ms in the child: the root's ready fd waits
        assert seen == []
    wait_until(ax, lambda: seen)
    assert seen == [(b'1', 0)]
    ax.remove_reader(r)


def test_reader_made_in_child_rehomed_at_pop(ax, pipe):
    r, w = pipe
    seen = []
    with ax.async_context():
        ax.add_reader(r, lambda: seen.append((os.read(r, 1), ax.context_id())))
    os.write(w, b'2')
    wait_until(ax, lambda: seen)
    assert seen == [(b'2', 0)]
    assert ax.remove_reader(r)


def test_reader_exception_raised_by_poll(ax, pipe):
    r, w = pipe

    def boom():
        os.read(r, 1)
        raise KeyError('fd')
    ax.add_reader(r, boom)
    os.write(w, b'x')
    with pytest.raises(KeyError):
        wait_until(ax, lambda: False)
    ax.remove_reader(r)


def test_writer_exception_raised_by_poll(ax, pipe):
    _, w = pipe

    def boom():
        ax.remove_writer(w)
        raise KeyError('writable')
    ax.add_writer(w, boom)
    with pytest.raises(KeyError):
        wait_until(ax, lambda: False)
    assert ax.remove_writer(w) is False


def test_fd_errors(ax):
    with tempfile.TemporaryFile() as f:
        with pytest.raises(OSError) as ei:
            ax.add_reader(f, int)
        assert ei.value.errno == errno.EPERM
        assert ax.remove_reader(f) is False
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as ei:
        ax.add_reader(r, int)
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError):
        ax.add_reader(-1, int)
    with pytest.raises(TypeError):
        ax.add_reader(0, None)
    with pytest.raises(TypeError):
        ax.add_writer('0', int)
    assert ax.remove_writer(w) is False


def test_failed_update_keeps_handler(ax, pipe):
    """A failing add for a second direction leaves the first in place."""
    r, w = pipe
    seen = []
    ax.add_reader(r, lambda: seen.append(os.read(r, 1)))
    ax.add_writer(r, int)  # a pipe's read end is never writable: fine
    ax.remove_writer(r)
    os.write(w, b'k')
    wait_until(ax, lambda: seen)
    assert ax.remove_reader(r)


def test_reader_in_asyncio_bridge(ax, pipe):
    import asyncio
    r, w = pipe

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with ax.asyncio_bridge():
            ax.add_reader(r, lambda: fut.done() or fut.set_result(
                os.read(r, 3)))
            loop.call_later(0.01, os.write, w, b'abc')
            v = await fut
            ax.remove_reader(r)
            return v
    assert asyncio.run(asyncio.wait_for(main(), HUNG)) == b'abc'


def test_thread_reusing_a_retired_pool_threads_ident(backend):
    """A pool thread whose work function left Python state (here a timer)
    retires; a Python thread that gets its ident later must still get a
    state of its own, shut down at its exit (its timer cancelled), not
    the dead pool thread's."""
    r = run_child(backend, '''
        import threading, time, actx
        actx.set_pool_size(1)
        idents = set()

        def work():
            idents.add(threading.get_ident())
            actx.call_later(1000, int)
            return 1
        actx.submit(work).result()
        time.sleep(6)   # longer than a pool thread stays idle (5 s)
        reused = 0
        for i in range(100):
            out = []

            def owner():
                out.append(actx.call_later(60, int))
                out.append(threading.get_ident())
            th = threading.Thread(target=owner)
            th.start()
            th.join()
            t0 = time.monotonic()
            while not out[0].cancelled():
                assert time.monotonic() - t0 < 20, ('never cancelled', i,
                                                    out[1] in idents)
                time.sleep(0.001)
            reused += out[1] in idents
        print('ok', reused)
    ''', timeout=90)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('ok'), r.stdout
