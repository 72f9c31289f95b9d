"""actx.set_poll_max_ns: adaptive polling before the runtime's blocking
waits sleep.  It is per thread, rejects negative values, and never changes
what runs (the same callbacks, contexts and order as without it)."""
import errno
import threading
import time

import pytest


def test_rejects_negative(ax):
    with pytest.raises(OSError) as ei:
        ax.set_poll_max_ns(-1)
    assert ei.value.errno == errno.EINVAL
    ax.set_poll_max_ns(0)
    ax.set_poll_max_ns(50_000)
    ax.set_poll_max_ns(0)


def _calls_in_order(ax, poll_ns):
    """A loop thread polls (blocking, in C) while another thread posts 30
    calls with short pauses; returns what ran, where and in which context."""
    ran = []
    ready = threading.Event()
    box = {}

    def loop():
        ax.set_poll_max_ns(poll_ns)
        try:
            box['h'] = ax.current_context()
            ready.set()
            while len(ran) < 30:
                ax.poll(block=True)
            with ax.async_context():
                # Submitted work done in an inner context while polling.
                reqs = [ax.submit(lambda i=i: i * i) for i in range(10)]
                ax.flush()
                box['sq'] = [r.result() for r in reqs]
        finally:
            ax.set_poll_max_ns(0)
            ax.thread_shutdown()

    def post(i):
        ran.append((i, threading.get_ident(), ax.context_id()))

    t = threading.Thread(target=loop)
    t.start()
    assert ready.wait(10)
    for i in range(30):
        box['h'].call_soon(post, i)
        time.sleep(0.0002 * (i % 3))
    t.join(60)
    assert not t.is_alive()
    assert box['sq'] == [i * i for i in range(10)]
    return [(i, ident == t.ident, ctx) for i, ident, ctx in ran]


def test_polling_never_changes_what_runs(ax):
    off = _calls_in_order(ax, 0)
    on = _calls_in_order(ax, 1_000_000)
    assert off == [(i, True, 0) for i in range(30)]
    assert on == off


def test_main_thread_fds_with_polling(ax):
    """poll(block=True) and run() on the main thread wait in the runtime's
    blocking poll, window included, which also polls fd handlers: each
    ready fd is handled once, in its context, and an outer context's fd
    waits for the exit of the inner one."""
    import os
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    n = 200
    seen = []

    def on_read():
        os.read(a_r, 1)
        seen.append((ax.context_id(), threading.get_ident()))
        os.write(b_w, b'q')
        if len(seen) == n:
            ax.remove_reader(a_r)

    def pinger():
        for _ in range(n):
            os.write(a_w, b'p')
            os.read(b_r, 1)

    ax.set_poll_max_ns(1_000_000)
    try:
        ax.add_reader(a_r, on_read)
        t = threading.Thread(target=pinger)
        t.start()
        ax.run()
        t.join(60)
        assert not t.is_alive()
        assert seen == [(0, threading.get_ident())] * n

        got, inner = [], []
        ax.add_reader(a_r, lambda: got.append((os.read(a_r, 1),
                                               ax.context_id())))
        with ax.async_context():
            h = ax.current_context()

            def later():
                os.write(a_w, b'x')  # the outer fd: ready while inner polls
                time.sleep(0.01)
                h.call_soon(lambda: inner.append(ax.context_id()))

            t = threading.Thread(target=later)
            t.start()
            while not inner:
                ax.poll(True)
            t.join(60)
            assert inner == [1]
            assert got == []
            del h
        assert ax.poll(True)
        assert got == [(b'x', 0)]
    finally:
        ax.remove_reader(a_r)
        ax.set_poll_max_ns(0)
        for fd in (a_r, a_w, b_r, b_w):
            os.close(fd)
