"""An exception raised by a callback propagates out of the call that ran
it, with its traceback; the runtime stays consistent."""
import sys
import threading

import pytest


def bad_callback():
    raise ValueError('from the callback')


def test_bh_exception_from_poll(ax):
    ran = []
    bad = ax.BottomHalf(bad_callback)
    good = ax.BottomHalf(ran.append, 1)
    bad.schedule()
    good.schedule()
    with pytest.raises(ValueError) as ei:
        ax.poll()
    assert any(e.name == 'bad_callback' for e in ei.traceback)
    assert ran == [1]  # later callbacks of the same call still ran
    assert ax.poll() is False
    bad.schedule()
    with pytest.raises(ValueError):
        ax.poll(True)
    bad.delete()
    good.delete()
    assert ax.poll(True) is False


def test_exception_from_pop_flush(ax):
    ax.push()
    bh = ax.BottomHalf(bad_callback)
    bh.schedule()
    with pytest.raises(ValueError):
        ax.pop()
    assert ax.context_id() == 0
    bh.delete()


def test_exception_from_with_exit(ax):
    with pytest.raises(ValueError):
        with ax.async_context():
            bh = ax.BottomHalf(bad_callback)
            bh.schedule()
    assert ax.context_id() == 0
    bh.delete()


def test_call_soon_exception_from_run(ax):
    h = ax.current_context()
    h.call_soon(bad_callback)
    h.call_soon(ax.stop, h)
    with pytest.raises(ValueError):
        ax.run()
    ax.run()  # the stop is still there: returns after one iteration
    h.close()
    ax.run()  # nothing can make progress: returns


def test_done_callback_exception_from_result_and_flush(pool):
    ax = pool
    r = ax.submit(int)
    r.add_done_callback(lambda r: bad_callback())
    with pytest.raises(ValueError):
        r.result()
    assert r.result() == 0
    r = ax.submit(int)
    r.add_done_callback(lambda r: bad_callback())
    with pytest.raises(ValueError):
        ax.flush()
    ax.flush()


def test_two_exceptions_first_wins_second_reported(ax, monkeypatch):
    reported = []
    monkeypatch.setattr(sys, 'unraisablehook', reported.append)
    a = ax.BottomHalf(bad_callback)
    b = ax.BottomHalf(lambda: 1 / 0)
    a.schedule()
    b.schedule()
    with pytest.raises(ValueError):
        ax.poll()
    assert len(reported) == 1
    assert reported[0].exc_type is ZeroDivisionError
    a.delete()
    b.delete()


def test_keyboardinterrupt_beats_exception(ax):
    def ki():
        raise KeyboardInterrupt
    a = ax.BottomHalf(bad_callback)
    b = ax.BottomHalf(ki)
    a.schedule()
    b.schedule()
    with pytest.raises(KeyboardInterrupt) as ei:
        ax.poll()
    assert isinstance(ei.value.__context__, ValueError)
    a.delete()
    b.delete()


def test_exception_stays_on_its_thread(ax):
    """A callback exception on one thread is not raised on another."""
    out = []

    def t():
        bh = ax.BottomHalf(bad_callback)
        bh.schedule()
        try:
            ax.poll()
        except ValueError:
            out.append('raised')
        bh.delete()
    th = threading.Thread(target=t)
    th.start()
    th.join()
    assert out == ['raised']
    assert ax.poll() is False
