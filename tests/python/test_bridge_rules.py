"""The asyncio bridge's loop, callback exceptions under a handler, and the
ResourceWarnings of loops that end (docs/python.md, SPEC 3.9 and 5).
Each case failed before the fix named in its docstring."""
import asyncio
import contextlib
import logging
import sys
import threading
import warnings

import pytest

from conftest import run_child

HUNG = 30  # a bound that only a hang reaches


def _in_thread(fn):
    """fn() on a new thread (a bridge is per thread: a misuse that left
    state behind must not leak into the other tests); its result, or its
    exception raised here."""
    out = {}

    def main():
        try:
            out['value'] = fn()
        except BaseException as e:  # noqa: B902 - re-raised by the test
            out['error'] = e
    t = threading.Thread(target=main)
    t.start()
    t.join(HUNG)
    assert not t.is_alive()
    if 'error' in out:
        raise out['error']
    return out.get('value')


async def _one_bridge(ax):
    with ax.asyncio_bridge():
        return await ax.submit(lambda: 1)


def _thread_still_works(ax):
    """Everything that touches the thread's bridge slot works, and no
    bridge was left open (no ResourceWarning for one)."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        h = ax.current_context()
        got = []
        h.call_soon(got.append, 'ran')
        ax.poll()
        h.close()
        assert got == ['ran']
        assert asyncio.run(_one_bridge(ax)) == 1
        with ax.LoopThread():
            pass
        ax.thread_shutdown()
        assert asyncio.run(_one_bridge(ax)) == 1
    assert [str(x.message) for x in w
            if issubclass(x.category, ResourceWarning)] == []


# --- F6: a bad argument ----------------------------------------------------

@pytest.mark.parametrize('bad', ['x', 5, object()],
                         ids=['str', 'int', 'object'])
def test_bridge_refuses_a_non_loop_and_keeps_no_state(ax, bad):
    """Before: AttributeError, and the thread's later call_soon,
    thread_shutdown(), LoopThread() and bridges raised AttributeError."""
    def main():
        with pytest.raises(TypeError):
            ax.AsyncioBridge(bad)
        with pytest.raises(TypeError):
            ax.asyncio_bridge(bad)
        _thread_still_works(ax)
    _in_thread(main)


# --- F7: the loop must run on this thread ----------------------------------

def test_bridge_refuses_a_loop_running_on_another_thread(ax):
    """Before: accepted (its call_soon then ran on the wrong thread), and
    this thread's next bridge got 'this thread already has one'."""
    other = asyncio.new_event_loop()
    th = threading.Thread(target=other.run_forever, daemon=True)
    th.start()
    try:
        running = threading.Event()
        other.call_soon_threadsafe(running.set)
        assert running.wait(HUNG)

        def main():
            with pytest.raises(RuntimeError, match='another thread'):
                ax.AsyncioBridge(other)
            _thread_still_works(ax)
        _in_thread(main)
    finally:
        other.call_soon_threadsafe(other.stop)
        th.join(HUNG)
        other.close()


def test_bridge_without_a_running_loop_is_refused(ax):
    """As asyncio.get_running_loop(): RuntimeError, no loop made.  Before:
    a bridge on a new loop that never ran (on the main thread)."""
    assert threading.current_thread() is threading.main_thread()
    br = None
    try:
        with pytest.raises(RuntimeError, match='no running event loop'):
            br = ax.asyncio_bridge()
    finally:
        if br is not None:
            br.close()
    assert asyncio.run(_one_bridge(ax)) == 1


def test_bridge_refuses_a_closed_loop_and_a_second_loop(ax):
    """A closed loop, or a loop that cannot run here because another one
    runs on this thread: RuntimeError, no state.  Before: the closed
    loop's bridge stayed registered (the next bridge warned)."""
    def main():
        loop = asyncio.new_event_loop()
        loop.close()
        with pytest.raises(RuntimeError, match='closed'):
            ax.AsyncioBridge(loop)

        async def second():
            idle = asyncio.new_event_loop()
            try:
                with pytest.raises(RuntimeError, match='another'):
                    ax.AsyncioBridge(idle)
            finally:
                idle.close()
        asyncio.run(second())
        _thread_still_works(ax)
    _in_thread(main)


def test_bridge_on_a_loop_that_runs_later_here(ax):
    """The documented use that stays: a loop not running yet, which the
    thread then runs (run_until_complete)."""
    async def wait():
        return await asyncio.wait_for(ax.submit(lambda: 'later'), HUNG)

    def main():
        loop = asyncio.new_event_loop()
        try:
            with ax.AsyncioBridge(loop):
                return loop.run_until_complete(wait())
        finally:
            loop.close()
    assert _in_thread(main) == 'later'


def test_bridge_whose_loop_then_runs_on_another_thread_closes(ax):
    """A loop given before it ran, then run on another thread: the bridge
    closes at the loop's first look (the loop's exception handler gets a
    RuntimeError) and never polls that thread's actx."""
    def main():
        loop = asyncio.new_event_loop()
        try:
            ax.AsyncioBridge(loop)
            errors = []
            loop.set_exception_handler(
                lambda lp, c: errors.append(c['exception']))

            async def settle():
                await asyncio.sleep(0)
            _in_thread(lambda: loop.run_until_complete(settle()))
        finally:
            loop.close()
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
        _thread_still_works(ax)
    _in_thread(main)


# --- F8: every callback exception reaches the handler ----------------------

def _fail_twice(ax, then=None):
    """Two callbacks that raise, in one drain of call_soon calls (one poll
    iteration), then then()."""
    h = ax.current_context()
    h.call_soon(lambda: 1 / 0)
    h.call_soon(int, 'x')
    if then is not None:
        h.call_soon(then)
    h.close()


def test_run_handler_gets_every_exception_in_order(ax, monkeypatch):
    """Before: only the first exception of a poll iteration reached the
    handler; the ValueError went to sys.unraisablehook."""
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    got = []
    _fail_twice(ax, lambda: _fail_twice(ax))
    ax.run(exception_handler=lambda c: got.append(type(c['exception'])))
    assert got == [ZeroDivisionError, ValueError] * 2
    assert unraisable == []


@contextlib.contextmanager
def _actx_log_exc_types(logged):
    """Append the exception type (or None) of each record logged to
    logging.getLogger("actx") to logged while the block runs."""
    class Rec(logging.Handler):
        def emit(self, record):
            logged.append(record.exc_info[0] if record.exc_info else None)
    log = logging.getLogger('actx')
    rec = Rec()
    log.addHandler(rec)
    try:
        yield
    finally:
        log.removeHandler(rec)


def test_loop_thread_logs_every_exception(ax, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    logged = []
    with _actx_log_exc_types(logged):
        with ax.LoopThread() as lt:
            done = threading.Event()

            lt.call_soon(_fail_twice, ax, done.set)
            assert done.wait(HUNG)
    assert logged == [ZeroDivisionError, ValueError]
    assert unraisable == []


def test_bridge_handler_gets_every_exception(ax, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    got = []

    async def main():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.set_exception_handler(
            lambda lp, c: got.append(type(c['exception'])))
        with ax.asyncio_bridge():
            _fail_twice(ax, lambda: done.set_result(None))
            await asyncio.wait_for(done, HUNG)
    asyncio.run(main())
    assert got == [ZeroDivisionError, ValueError]
    assert unraisable == []


def _exit():
    raise SystemExit(7)


def test_run_handler_gets_the_exceptions_before_a_system_exit(
        ax, monkeypatch):
    """A SystemExit (or KeyboardInterrupt) after ordinary exceptions of
    the same iteration ends run(), after the handler got those, in order
    (docs/python.md: every exception is handled, in the order raised).
    Before: the SystemExit replaced them, they were only its
    __context__, and the handler never saw them."""
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    got = []
    _fail_twice(ax, _exit)
    with pytest.raises(SystemExit):
        ax.run(exception_handler=lambda c: got.append(type(c['exception'])))
    assert got == [ZeroDivisionError, ValueError]
    assert unraisable == []


def test_loop_thread_logs_the_exceptions_before_a_system_exit(
        ax, monkeypatch):
    """Before: the thread ended by the SystemExit (which
    threading.excepthook ignores) and the earlier exceptions were lost
    without a trace."""
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    ended = []
    monkeypatch.setattr(threading, 'excepthook',
                        lambda a: ended.append(a.exc_type))
    logged = []
    with _actx_log_exc_types(logged):
        with ax.LoopThread() as lt:
            lt.call_soon(_fail_twice, ax, _exit)
            lt.join(HUNG)
            assert not lt.is_alive()
    assert logged == [ZeroDivisionError, ValueError]
    assert ended == [SystemExit]
    assert unraisable == []


def test_bridge_handler_gets_the_exceptions_before_a_system_exit(
        ax, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    got = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(
            lambda lp, c: got.append(type(c['exception'])))
        with ax.asyncio_bridge():
            _fail_twice(ax, _exit)
            await asyncio.sleep(HUNG)
    with pytest.raises(SystemExit):
        asyncio.run(main())
    assert got == [ZeroDivisionError, ValueError]
    assert unraisable == []


# --- F10: a bridge left open when its loop ends -----------------------------

def test_bridge_left_open_warns_when_asyncio_run_ends(backend):
    """Before: no warning until another bridge started on the thread."""
    r = run_child(backend, '''
        import asyncio, gc, threading, warnings, actx
        warnings.simplefilter('always')
        got = []
        warnings.showwarning = lambda m, c, *a, **k: got.append((c, str(m)))
        async def leak():
            actx.asyncio_bridge()             # never closed
            return await actx.submit(lambda: 1)
        def bridge_warnings():
            n = [m for c, m in got if c is ResourceWarning and 'bridge' in m]
            del got[:]
            return n
        assert asyncio.run(leak()) == 1
        assert len(bridge_warnings()) == 1, got
        th = threading.Thread(target=lambda: asyncio.run(leak()))
        th.start(); th.join()
        assert len(bridge_warnings()) == 1, got
        # A later bridge, on a loop run by hand and closed without
        # shutdown_asyncgens(): the thread's end notices.
        async def one():
            return await actx.submit(int)
        def by_hand():
            loop = asyncio.new_event_loop()
            actx.AsyncioBridge(loop)
            loop.run_until_complete(one())
            loop.close()
        th = threading.Thread(target=by_hand)
        th.start(); th.join()
        assert len(bridge_warnings()) == 1, got
        # Each warned once: later bridges start quietly.
        async def ok():
            with actx.asyncio_bridge():
                return await actx.submit(lambda: 2)
        assert asyncio.run(ok()) == 2
        gc.collect()
        assert bridge_warnings() == [], got
        print('ok')
        ''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok' and 'Warning' not in r.stderr


def test_bridge_left_open_still_drives_the_loops_shutdown(backend):
    """The warning comes at loop.shutdown_asyncgens(); the bridge drives
    actx until the loop closes: an async generator's finally that awaits
    actx work then (closed in the same shutdown) finishes."""
    r = run_child(backend, '''
        import asyncio, warnings, actx
        warnings.simplefilter('always')
        got, out, keep = [], [], []
        warnings.showwarning = lambda m, c, *a, **k: got.append(c)
        async def agen():
            try:
                yield 1
            finally:
                out.append(await actx.submit(lambda: 'in finally'))
        async def main():
            actx.asyncio_bridge()             # never closed
            g = agen()
            await g.__anext__()               # shutdown_asyncgens closes it
            keep.append(g)
        for _ in range(5):                    # either closing order
            asyncio.run(main())
        assert out == ['in finally'] * 5, out
        assert got == [ResourceWarning] * 5, got
        print('ok')
        ''', timeout=HUNG)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok'


def test_next_bridge_ends_a_bridge_whose_loop_closed(ax):
    """A loop closed by hand (no shutdown_asyncgens()) with its bridge
    open: the next bridge on the thread closes it, with the warning, and
    the thread's end warns no more."""
    async def one():
        return await ax.submit(int)

    def main():
        loop = asyncio.new_event_loop()
        ax.AsyncioBridge(loop)
        assert loop.run_until_complete(one()) == 0
        loop.close()
        with pytest.warns(ResourceWarning, match='bridge'):
            assert asyncio.run(_one_bridge(ax)) == 1
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        _in_thread(main)
    assert [x for x in w if issubclass(x.category, ResourceWarning)] == []


# --- F11: the warning names the thread ---------------------------------------

def test_thread_end_warning_names_the_thread(backend):
    """Before: "thread 'Dummy-1' ends" (the thread had left threading's
    registry when its runtime shut down)."""
    r = run_child(backend, '''
        import threading, warnings, actx
        warnings.simplefilter('always')
        got = []
        warnings.showwarning = lambda m, c, *a, **k: got.append((c, str(m)))
        t = threading.Thread(target=lambda: actx.call_later(10, print),
                             name='my-worker')
        t.start()
        t.join()
        assert [m for c, m in got if c is ResourceWarning and
                "thread 'my-worker' ends" in m], got
        print('ok')
        ''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok'
