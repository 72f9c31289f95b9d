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
