"""An exception raised by a callback propagates out of the call that ran
it, with its traceback; the runtime stays consistent."""
import sys
import threading
import time

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


def test_second_exception_reaches_hook_as_itself(ax, monkeypatch):
    """The hook gets an UnraisableHookArgs (the type sys's default hook
    requires) carrying the real exception and its traceback."""
    reported = []
    monkeypatch.setattr(sys, 'unraisablehook', reported.append)
    a = ax.BottomHalf(bad_callback)
    b = ax.BottomHalf(lambda: 1 / 0)
    a.schedule()
    b.schedule()
    with pytest.raises(ValueError):
        ax.poll()
    a.delete()
    b.delete()
    (args,) = reported
    assert type(args).__name__ == 'UnraisableHookArgs'
    assert isinstance(args.exc_value, ZeroDivisionError)
    assert args.exc_traceback is args.exc_value.__traceback__
    assert args.exc_traceback is not None
    assert 'actx callback' in args.err_msg


def test_exception_at_thread_exit_reaches_hook(ax, monkeypatch):
    import threading
    reported = []
    monkeypatch.setattr(sys, 'unraisablehook', reported.append)
    handles = []
    posted = threading.Event()

    def owner():
        handles.append(ax.current_context())
        posted.wait()   # ends without polling: shutdown runs the call

    th = threading.Thread(target=owner)
    th.start()
    while not handles:
        posted.wait(0.001)
    handles[0].call_soon(bad_callback)
    posted.set()
    th.join()
    handles[0].close()
    (args,) = reported
    assert isinstance(args.exc_value, ValueError)
    assert 'thread exit' in args.err_msg


def test_default_hook_prints_the_exception(backend):
    """With sys's own hook: the report, not a TypeError about its
    argument."""
    from conftest import run_child
    r = run_child(backend, '''
        import actx, threading
        def bad():
            raise ValueError('first')
        def worse():
            raise KeyError('second')
        a = actx.BottomHalf(bad)
        b = actx.BottomHalf(worse)
        a.schedule(); b.schedule()
        try:
            actx.poll()
        except ValueError:
            print('first raised')
        def owner(hs, ev):
            hs.append(actx.current_context())
            ev.wait()
        hs, ev = [], threading.Event()
        t = threading.Thread(target=owner, args=(hs, ev))
        t.start()
        while not hs:
            ev.wait(0.001)
        hs[0].call_soon(worse)
        ev.set()
        t.join()
        print('done')
    ''', timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['first', 'raised', 'done']
    assert 'TypeError' not in r.stderr
    assert r.stderr.count("KeyError: 'second'") == 2, r.stderr
    assert 'Exception ignored in actx callback' in r.stderr
    assert 'thread exit' in r.stderr


# A callback that waits (a nested blocking call) while an earlier callback
# of the same call has raised: the earlier exception belongs to the outer
# call, the one that ran both callbacks, and comes out of it; the nested
# wait raises only what its own callbacks raise.
NESTED_WAITS = ['result', 'flush', 'poll', 'poll_timeout', 'process_queue',
                'run', 'with_exit']


def _nested_wait(ax, how, r):
    if how == 'result':
        return r.result()
    if how == 'flush':
        ax.flush()
    elif how == 'poll':
        while not r.done():
            ax.poll(True)
    elif how == 'poll_timeout':
        while not r.done():
            ax.poll(True, timeout=5)
    elif how == 'process_queue':
        while not r.done():
            ax.process_queue()
    elif how == 'run':
        ax.run()
    return r.result()


@pytest.mark.parametrize('how', NESTED_WAITS)
def test_nested_wait_does_not_raise_an_outer_callbacks_exception(pool, how):
    ax = pool
    got = []

    def waits():
        try:
            with ax.async_context():
                r = ax.submit(int, '5')
                if how == 'with_exit':
                    got.append(r)
                else:
                    got.append(_nested_wait(ax, how, r))
        except BaseException as e:  # noqa: B902 - recorded, checked below
            got.append(e)
    bad = ax.BottomHalf(bad_callback)
    nested = ax.BottomHalf(waits)
    bad.schedule()
    nested.schedule()
    with pytest.raises(ValueError, match='from the callback'):
        ax.poll()
    if how == 'with_exit':
        assert len(got) == 1 and got[0].result() == 5
    else:
        assert got == [5]
    assert ax.poll() is False  # nothing left pending on this thread
    bad.delete()
    nested.delete()


@pytest.mark.parametrize('how', ['result', 'flush', 'poll'])
def test_nested_wait_raises_its_own_callbacks_exception(pool, how):
    ax = pool
    got = []

    def waits():
        with ax.async_context():
            r = ax.submit(int, '5')
            r.add_done_callback(lambda r: got.append('inner') or 1 / 0)
            try:
                _nested_wait(ax, how, r)
            except ZeroDivisionError:
                got.append('own')
    bad = ax.BottomHalf(bad_callback)
    nested = ax.BottomHalf(waits)
    bad.schedule()
    nested.schedule()
    with pytest.raises(ValueError, match='from the callback'):
        ax.poll()
    assert got == ['inner', 'own']
    bad.delete()
    nested.delete()


def test_nested_wait_keyboardinterrupt_of_an_outer_callback(pool):
    """A KeyboardInterrupt (or SystemExit) an earlier callback raised is
    not held back by a later callback's nested wait: the wait raises it at
    once (Ctrl-C waits for nothing) and it comes out of the outer call."""
    ax = pool
    got = []

    def ki():
        raise KeyboardInterrupt

    def waits():
        with ax.async_context():
            r = ax.submit(time.sleep, 0.05)
            got.append('waiting')
            r.result()
            got.append('never')
    a = ax.BottomHalf(ki)
    b = ax.BottomHalf(waits)
    a.schedule()
    b.schedule()
    with pytest.raises(KeyboardInterrupt):
        ax.poll()
    assert got == ['waiting']
    ax.flush()  # the job, re-homed to the root when its block was left
    a.delete()
    b.delete()


def test_nested_wait_under_run_with_a_handler(pool):
    """run(exception_handler=) gets the outer callback's exception once;
    a later callback's nested wait is not failed by it."""
    ax = pool
    seen = []
    got = []
    h = ax.current_context()

    def waits():
        with ax.async_context():
            got.append(ax.submit(int, '5').result())
        ax.stop(h)
    bad = ax.BottomHalf(bad_callback)
    nested = ax.BottomHalf(waits)
    bad.schedule()
    nested.schedule()
    ax.run(exception_handler=seen.append)
    assert got == [5]
    assert [type(c['exception']) for c in seen] == [ValueError]
    bad.delete()
    nested.delete()
