"""Version 1.2's additions to the Python API (docs/python.md)."""
import asyncio
import concurrent.futures as cf
import contextvars
import logging
import threading

import pytest

from conftest import run_child

HUNG = 30  # a bound that only a hang reaches

var = contextvars.ContextVar('var', default='unset')


# --- contextvars -----------------------------------------------------------

def test_callbacks_run_in_a_copy_of_their_registration_context(ax):
    seen = {}
    ev = threading.Event()
    var.set('registered')
    h = ax.current_context()
    bh = ax.BottomHalf(lambda: seen.setdefault('bh', var.get()))
    ax.call_later(0, lambda: seen.setdefault('timer', var.get()))
    req = ax.submit(lambda: seen.setdefault('work', var.get()))
    req.add_done_callback(lambda r: seen.setdefault('done', var.get()))

    def other():
        var.set('other thread')
        h.call_soon(lambda: seen.setdefault('call', var.get()))
        ev.set()
    threading.Thread(target=other).start()
    ev.wait(HUNG)
    var.set('changed later')
    bh.schedule()
    req.result()
    ax.flush()
    ax.poll()
    ax.poll()
    bh.delete()
    h.close()
    assert seen == {'bh': 'registered', 'timer': 'registered',
                    'work': 'registered', 'done': 'registered',
                    'call': 'other thread'}


def test_a_callback_changing_a_var_leaves_the_caller_alone(ax):
    var.set('mine')
    ax.call_later(0, var.set, 'theirs')
    ax.poll()
    assert var.get() == 'mine'


def test_fd_handler_runs_in_its_registration_context(ax):
    import os
    r, w = os.pipe()
    seen = []
    try:
        var.set('reader')

        def on_read():
            seen.append(var.get())
            os.read(r, 1)
            ax.remove_reader(r)
        ax.add_reader(r, on_read)
        var.set('later')
        os.write(w, b'x')
        ax.run()
    finally:
        os.close(r)
        os.close(w)
    assert seen == ['reader']


def test_a_bh_run_again_by_a_nested_poll_runs(ax):
    """A BH that reschedules itself and polls (a nested wait in its
    callback) runs again inside that poll, in a copy of its Context as
    the outer run left it; Context.run() refused the Context the outer
    run had entered (RuntimeError, the nested run lost)."""
    seen = []
    var.set('made')

    def fn():
        seen.append(var.get())
        if len(seen) == 1:
            var.set('first run')
            bh.schedule()
            ax.poll()
            seen.append(('after nested', var.get()))
    bh = ax.BottomHalf(fn)
    bh.schedule()
    ax.poll()
    bh.schedule()
    ax.poll()
    bh.delete()
    assert seen == ['made', 'first run', ('after nested', 'first run'),
                    'first run']
    assert var.get() == 'made'


def test_an_fd_handler_run_again_by_a_nested_poll_runs(ax):
    """A reader that polls while its fd is still readable is run again by
    that poll (level-triggered), as without contextvars."""
    import os
    r, w = os.pipe()
    seen = []
    try:
        def on_read():
            seen.append(len(seen))
            if len(seen) == 1:
                ax.poll()
            else:
                os.read(r, 1)
                ax.remove_reader(r)
        ax.add_reader(r, on_read)
        os.write(w, b'x')
        ax.run()
    finally:
        os.close(r)
        os.close(w)
    assert seen == [0, 1]


def test_a_bh_or_fd_handler_raising_runtime_error_runs_once(ax):
    """A callback's own RuntimeError is raised by the poll that ran it, as
    is, after one run: only a run that Context.run refused (nested in a
    run of the same callback) runs again, in a copy of its Context."""
    import os
    runs = []

    def fn(what):
        runs.append(what)
        raise RuntimeError(what)
    bh = ax.BottomHalf(fn, 'bh')
    bh.schedule()
    with pytest.raises(RuntimeError, match='^bh$'):
        ax.poll()
    bh.delete()
    r, w = os.pipe()
    try:
        os.write(w, b'x')
        ax.add_reader(r, fn, 'fd')
        with pytest.raises(RuntimeError, match='^fd$'):
            ax.poll()
        ax.remove_reader(r)
    finally:
        os.close(r)
        os.close(w)
    assert runs == ['bh', 'fd']


def test_a_nested_run_raising_is_not_chained_to_the_refusal(ax):
    """The exception of a nested run (run again in a copy of the BH's
    Context) is its own, not one raised while handling Context.run's
    refusal ("cannot enter context")."""
    seen = []

    def fn():
        seen.append(len(seen))
        if len(seen) == 1:
            bh.schedule()
            try:
                ax.poll()
            except ValueError as e:
                seen.append((e.args, e.__context__))
        else:
            raise ValueError('nested')
    bh = ax.BottomHalf(fn)
    bh.schedule()
    ax.poll()
    bh.delete()
    assert seen == [0, 1, (('nested',), None)]


def test_done_callback_added_when_done_runs_in_a_copy(ax):
    """add_done_callback() on a request that is done already runs the
    callback at once, in a copy of the caller's context like every
    callback: a var it sets does not leak into the caller."""
    req = ax.submit(int)
    req.result()
    var.set('caller')
    seen = []

    def cb(r):
        seen.append(var.get())
        var.set('callback')
    req.add_done_callback(cb)
    assert seen == ['caller']
    assert var.get() == 'caller'


def test_call_soon_from_empty_contexts_runs_each_in_its_own(ax):
    """A thread whose context is empty: each call still runs in a context
    of its own (a var one sets is unset for the next, and for the owner),
    interleaved with calls made while a var was set, with and without
    arguments."""
    h = ax.current_context()
    seen = []

    def look(tag, *rest):
        seen.append((tag, var.get()) + rest)
        var.set('set by ' + tag)

    def other():
        h.call_soon(look, 'a')
        h.call_soon(look, 'b', 1, 2)
        tok = var.set('producer')
        h.call_soon(look, 'c')
        h.call_soon(look, 'd', 3)
        var.reset(tok)
        h.call_soon(look, 'e')
    th = threading.Thread(target=other)
    th.start()
    th.join()
    var.set('owner')
    ax.poll()
    h.close()
    assert var.get() == 'owner'
    assert seen == [('a', 'unset'), ('b', 'unset', 1, 2), ('c', 'producer'),
                    ('d', 'producer', 3), ('e', 'unset')]


def test_timers_from_an_empty_context_each_run_in_their_own(ax):
    """Timers scheduled while the context is empty run one after another
    in one poll, each in a context of its own: what one sets is unset for
    the next (also when it raised), the owner's context is untouched."""
    seen = []

    def look(tag, fail=False):
        seen.append((tag, var.get()))
        var.set('set by ' + tag)
        if fail:
            raise KeyError(tag)

    def schedule():
        ax.call_later(0, look, 'a')
        ax.call_later(0, look, 'b', True)
        tok = var.set('scheduler')
        ax.call_later(0, look, 'c')
        var.reset(tok)
        ax.call_later(0, look, 'd')
        ax.call_at(ax.time(), look, 'e')
    contextvars.Context().run(schedule)
    var.set('owner')
    with pytest.raises(KeyError):
        ax.run()
    ax.run()
    assert var.get() == 'owner'
    assert seen == [('a', 'unset'), ('b', 'unset'), ('c', 'scheduler'),
                    ('d', 'unset'), ('e', 'unset')]


def test_timers_run_by_a_nested_poll_each_in_their_own_context(ax):
    """Timers from an empty context that a poll nested in one of them runs
    (the rest of the same round) each run in a context of their own: what
    they set is unset for the next and for the timer whose poll ran them;
    what that timer set before its poll is unseen by them."""
    seen = []

    def outer():
        var.set('set by outer')
        ax.poll()  # runs b, c and d
        seen.append(('outer after poll', var.get()))

    def look(tag):
        seen.append((tag, var.get()))
        var.set('set by ' + tag)

    def quiet(tag):
        seen.append((tag, var.get()))

    def schedule():
        ax.call_later(0, outer)
        ax.call_later(0, look, 'b')
        ax.call_later(0, quiet, 'c')
        ax.call_later(0, look, 'd')
        ax.call_later(0, quiet, 'e')
    contextvars.Context().run(schedule)
    mine = var.get()
    ax.poll()
    ax.poll()
    assert var.get() == mine
    assert seen == [('b', 'unset'), ('c', 'unset'), ('d', 'unset'),
                    ('e', 'unset'), ('outer after poll', 'set by outer')]


def test_submit_from_an_empty_context_each_in_its_own(ax):
    """Work functions submitted while the context is empty each run in a
    context of their own: what one sets (on whichever pool thread) is unset
    for the next."""
    def work(tag):
        seen = var.get()
        var.set('set by ' + tag)
        return seen

    def submit_all():
        return [ax.submit(work, str(i)) for i in range(50)]
    reqs = contextvars.Context().run(submit_all)
    assert [r.result() for r in reqs] == ['unset'] * 50


def test_call_soon_from_many_threads_keeps_each_threads_order(ax):
    """Calls of several threads through one handle: none lost, none run
    twice, each thread's in the order it made them (three entries a call
    in the queue never mix)."""
    h = ax.current_context()
    seen = {i: [] for i in range(4)}
    n = 5000

    def producer(i):
        cs = h.call_soon
        for k in range(n):
            if k % 2:
                cs(seen[i].append, k)
            else:
                cs(seen[i].append, k, *())
    ths = [threading.Thread(target=producer, args=(i,)) for i in range(4)]
    for t in ths:
        t.start()
    while any(t.is_alive() for t in ths) or sum(map(len, seen.values())) \
            < 4 * n:
        ax.poll(True, timeout=0.05)
    for t in ths:
        t.join()
    h.close()
    assert all(seen[i] == list(range(n)) for i in range(4))


def test_refused_call_is_taken_back(ax):
    """A call refused (EPIPE: the owner's runtime shut down) is taken out
    of the queue: a later drain never runs it."""
    box = []
    th = threading.Thread(target=lambda: box.append(ax.current_context()))
    th.start()
    th.join()  # its runtime shut down as it ended
    h = box[0]
    for args in ((), (1,), (1,)):  # equal calls: each refused, none left
        with pytest.raises(OSError):
            h.call_soon(print, *args)
    assert len(h._poster.dq) == 0
    h.close()


# --- poll(timeout=), set_pool_size -----------------------------------------

def test_poll_with_timeout_returns(ax):
    """On a thread of its own, so that nothing an earlier test left on the
    main thread's loop (a late completion, a timer) can arrive here."""
    out = []

    def body():
        h = ax.current_context()  # something could still come: poll waits
        try:
            out.append(ax.poll(True, timeout=0.01))
            out.append(ax.poll(block=True, timeout=0))
            h.call_soon(lambda: None)
            out.append(ax.poll(True, timeout=HUNG))
        finally:
            h.close()
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert out == [False, False, True]


def test_set_pool_size(backend):
    r = run_child(backend, '''
        import errno, threading, actx
        actx.set_pool_size(1)
        for bad in (0, 5000):
            try:
                actx.set_pool_size(bad)
            except OSError as e:
                assert e.errno in (errno.EINVAL, errno.EBUSY), e
        try:
            actx.set_pool_size('2')
        except TypeError:
            pass
        # One worker: a second job waits for the first.
        ev = threading.Event()
        a = actx.submit(ev.wait, 30)
        b = actx.submit(lambda: 'b')
        assert b.cancel() is True
        ev.set()
        assert a.result() is True
        try:
            actx.set_pool_size(2)
        except OSError as e:
            assert e.errno == errno.EBUSY
        else:
            raise AssertionError('no EBUSY once the pool started')
        print('ok')
        ''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok'


# --- new_request -----------------------------------------------------------

def test_new_request_completed_from_another_thread(ax):
    req = ax.new_request()
    ran = []
    req.add_done_callback(lambda r: ran.append(threading.get_ident()))
    t = threading.Thread(target=req.set_result, args=('v',))
    t.start()
    t.join()
    assert req.result(timeout=HUNG) == 'v'
    assert ran == [threading.get_ident()]  # on the owner thread
    with pytest.raises(cf.InvalidStateError):
        req.set_result('again')
    with pytest.raises(cf.InvalidStateError):
        req.set_exception(ValueError())


def test_new_request_exception_and_flush(ax):
    with ax.async_context():
        req = ax.new_request()
        threading.Thread(target=req.set_exception,
                         args=(ValueError('bad'),)).start()
        ax.flush()  # waits for it: it is outstanding in this context
        assert req.done()
        with pytest.raises(ValueError):
            req.result()


def test_new_request_cancel(ax):
    req = ax.new_request()
    assert req.cancel() is True
    assert req.cancelled() and req.done()
    with pytest.raises(cf.InvalidStateError):
        req.set_result(1)
    ax.flush()


def test_new_request_awaited_from_asyncio(ax):
    async def main():
        with ax.asyncio_bridge():
            req = ax.new_request()
            loop = asyncio.get_running_loop()
            loop.call_later(0.001, lambda: threading.Thread(
                target=req.set_result, args=(5,)).start())
            return await asyncio.wait_for(_aw(req), HUNG)
    assert asyncio.run(main()) == 5


async def _aw(req):
    return await req


def test_actx_requests_refuse_set_result(ax):
    req = ax.submit(lambda: 1)
    with pytest.raises(RuntimeError):
        req.set_result(2)
    assert req.result() == 1


# --- LoopThread ------------------------------------------------------------

def test_loop_thread(ax):
    with ax.LoopThread(name='svc') as lt:
        assert lt.name == 'svc'
        out = cf.Future()
        lt.call_soon(lambda: out.set_result(
            (threading.current_thread().name, ax.context_id())))
        assert out.result(HUNG) == ('svc', 0)
        # Its handle is an ordinary one.
        out2 = cf.Future()
        lt.handle.call_soon(out2.set_result, 'via handle')
        assert out2.result(HUNG) == 'via handle'
        # A callback's exception is logged; the loop goes on.
        lt.call_soon(lambda: 1 / 0)
        out3 = cf.Future()
        lt.call_soon(out3.set_result, 'still running')
        assert out3.result(HUNG) == 'still running'
    assert not lt.is_alive()
    with pytest.raises(OSError):
        lt.call_soon(lambda: None)
    lt.stop()  # idempotent


def test_loop_thread_cross_loop_request(ax):
    """A request made on a LoopThread, awaited on this thread's loop."""
    with ax.LoopThread() as lt:
        got = cf.Future()
        lt.call_soon(lambda: got.set_result(ax.submit(lambda: 'x')))
        req = got.result(HUNG)
        assert cf.wait([req], timeout=HUNG).done == {req}
        assert req.done()


# --- logging ---------------------------------------------------------------

def test_runtime_diagnostics_go_to_logging(ax, caplog):
    """actx_req_complete() on a pool request is misuse the runtime reports
    through its log handler (in every build): it reaches logging."""
    import sys
    B = sys.modules['actx._impl._backend'].B
    ev = threading.Event()
    req = ax.submit(ev.wait, HUNG)
    try:
        with caplog.at_level(logging.DEBUG, logger='actx'):
            assert B.req_complete(req._p, 0) < 0
    finally:
        ev.set()
    assert req.result() is True
    msgs = [rec for rec in caplog.records if rec.name == 'actx']
    assert msgs, caplog.records
    assert msgs[0].levelno >= logging.WARNING
    assert 'actx_req_complete' in msgs[0].getMessage()


# --- run(exception_handler=) -----------------------------------------------

def test_run_exception_handler(ax):
    seen, out = [], []
    ax.call_later(0, lambda: 1 / 0)
    ax.call_later(0.001, out.append, 'after')
    ax.run(exception_handler=seen.append)
    assert out == ['after']
    assert len(seen) == 1
    assert isinstance(seen[0]['exception'], ZeroDivisionError)
    assert 'message' in seen[0]


def test_run_without_handler_still_raises(ax):
    ax.call_later(0, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ax.run()


@pytest.mark.parametrize('handler', [5, 'log', object()])
def test_run_refuses_a_handler_that_is_not_callable(ax, handler):
    """At once: nothing runs (and nothing ends run() later in a
    TypeError of its own making)."""
    seen = []
    ax.call_later(0, seen.append, 'ran')
    with pytest.raises(TypeError, match='exception_handler'):
        ax.run(exception_handler=handler)
    assert seen == []
    ax.run()
    assert seen == ['ran']


# --- ResourceWarnings ------------------------------------------------------

def test_thread_ending_with_work_warns(backend):
    r = run_child(backend, '''
        import threading, warnings, actx
        warnings.simplefilter('always')
        got = []
        warnings.showwarning = lambda m, c, *a, **k: got.append((c, str(m)))
        def main():
            actx.push()                       # left pushed
            actx.new_request()                # never completed
        t = threading.Thread(target=main)
        t.start()
        t.join()
        assert any(c is ResourceWarning and 'pushed' in m for c, m in got), got
        assert any('outstanding' in m for c, m in got), got
        print('ok')
        ''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok'


def test_interpreter_exit_with_unpolled_work_warns(backend):
    r = run_child(backend, '''
        import warnings, actx
        warnings.simplefilter('always')
        req = actx.new_request()
        req.set_result(1)           # the main thread never polls
        ''')
    assert r.returncode == 0, r.stderr
    assert 'ResourceWarning' in r.stderr and 'outstanding' in r.stderr


def test_no_warning_for_a_clean_thread(backend):
    r = run_child(backend, '''
        import threading, warnings, actx
        warnings.simplefilter('error')
        def main():
            with actx.async_context():
                actx.submit(lambda: 1).result()
        t = threading.Thread(target=main)
        t.start()
        t.join()
        print('ok')
        ''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok' and 'Warning' not in r.stderr
