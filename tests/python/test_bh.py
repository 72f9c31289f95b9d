"""BottomHalf from Python."""
import threading
import time

import pytest


def test_schedule_runs_once(ax):
    ran = []
    bh = ax.BottomHalf(ran.append, 'x')
    bh.schedule()
    bh.schedule()
    assert ax.poll() is True
    assert ax.poll() is False
    assert ran == ['x']
    bh.delete()


def test_order_and_reschedule_next_poll(ax):
    ran = []
    a = ax.BottomHalf(lambda: ran.append('a'))
    b = ax.BottomHalf(lambda: (ran.append('b'), a.schedule()))
    a.schedule()
    b.schedule()
    ax.poll()
    assert ran == ['a', 'b']  # scheduling order; b rescheduled a
    ax.poll()
    assert ran == ['a', 'b', 'a']
    a.delete()
    b.delete()


def test_cancel_and_delete(ax):
    ran = []
    bh = ax.BottomHalf(ran.append, 1)
    bh.schedule()
    bh.cancel()
    assert ax.poll() is False
    bh.schedule()
    bh.delete()
    assert bh.deleted
    assert ax.poll() is False
    assert ran == []
    bh.delete()  # idempotent
    with pytest.raises(RuntimeError):
        bh.schedule()


def test_delete_from_own_callback(ax):
    ran = []

    def cb():
        ran.append(1)
        bh.delete()
    bh = ax.BottomHalf(cb)
    bh.schedule()
    ax.poll()
    assert ran == [1] and bh.deleted
    assert ax.stats()['live_bhs'] == 0


def test_context_manager_deletes(ax):
    with ax.BottomHalf(int) as bh:
        bh.schedule()
    assert bh.deleted
    assert ax.poll() is False


def test_idle(ax):
    ran = []
    bh = ax.BottomHalf(ran.append, 1)
    bh.schedule_idle()
    t0 = time.monotonic()
    assert ax.poll(True) is False  # only an idle BH: runs it, returns 0
    assert ran == [1]
    assert time.monotonic() - t0 < 1.0
    bh.delete()


def test_wrong_types(ax):
    with pytest.raises(TypeError):
        ax.BottomHalf(42)


def test_delete_from_other_thread_refused(ax):
    bh = ax.BottomHalf(int)
    err = []

    def t():
        try:
            bh.delete()
        except RuntimeError as e:
            err.append(e)
    th = threading.Thread(target=t)
    th.start()
    th.join()
    assert err and not bh.deleted
    bh.delete()


def test_cross_thread_schedule_wakes_blocking_poll(ax):
    ran = []
    bh = ax.BottomHalf(lambda: ran.append(threading.get_ident()))
    th = threading.Timer(0.05, bh.schedule)
    th.start()
    t0 = time.monotonic()
    assert ax.poll(True) is True
    assert time.monotonic() - t0 < 5
    th.join()
    assert ran == [threading.get_ident()]
    bh.delete()


def test_thread_exit_deletes_bhs(ax):
    out = {}

    def t():
        bhs = [ax.BottomHalf(int) for _ in range(5)]
        bhs[0].schedule()
        out['live'] = ax.stats()['live_bhs']
    th = threading.Thread(target=t)
    th.start()
    th.join()
    assert out['live'] == 5
