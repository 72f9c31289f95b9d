"""Contexts held across `await` by asyncio tasks, and exits that are not
the current context's (issue 10, cases 2 and 3).

The rule (see help(actx)): a thread's context stack is shared by all its
tasks; an exit pops only its own context and only when it is current
(else RuntimeError, nothing changes; but a cancelled task's exit is
deferred: its context is cancelled and popped once it is current again);
after every pop the bridge runs
what became runnable in the parent.  Time bounds only tell "finished"
from "hung".
"""
import asyncio
import threading
import time

import pytest

HUNG = 20  # seconds: only separates "finished" from "hung"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, HUNG))


def _later(d, fn, *args):
    t = threading.Timer(d, fn, args)
    t.daemon = True
    t.start()
    return t


async def _hold(ax, kind, d):
    """Hold a context across an await of work of that context that becomes
    ready after d seconds; return the context's id."""
    loop = asyncio.get_running_loop()
    with ax.async_context() as c:
        if kind == 'request':
            await ax.submit(time.sleep, d)
        elif kind == 'wrap_future':
            await asyncio.wrap_future(ax.submit(time.sleep, d))
        elif kind == 'bh':
            fut = loop.create_future()
            bh = ax.BottomHalf(fut.set_result, None)
            _later(d, bh.schedule)
            await fut
            bh.delete()
        elif kind == 'call_soon':
            fut = loop.create_future()
            h = ax.current_context()
            _later(d, h.call_soon, fut.set_result, None)
            await fut
            h.close()
        elif kind == 'call_later':
            fut = loop.create_future()
            ax.call_later(d, fut.set_result, None)
            await fut
        else:
            raise AssertionError(kind)
        assert ax.context_id() == c.id
        return c.id


KINDS = ('request', 'wrap_future', 'bh', 'call_soon', 'call_later')
DELAYS = {
    'two, inner first': (0.2, 0.05),
    'two, outer first': (0.05, 0.2),
    'three, inner first': (0.3, 0.15, 0.05),
    'three, outer first': (0.05, 0.15, 0.3),
}


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('delays', list(DELAYS.values()), ids=list(DELAYS))
def test_tasks_hold_contexts_across_await(pool, kind, delays):
    """Issue 10 case 2 (kind=request, delays 0.05/0.2): an outer task's
    work becomes ready while an inner task's context is current; it runs
    when the inner task pops, without anyone polling by hand."""
    ax = pool

    async def main():
        with ax.asyncio_bridge():
            return await asyncio.gather(*(_hold(ax, kind, d)
                                          for d in delays))
    assert run(main()) == list(range(1, len(delays) + 1))
    assert ax.context_id() == 0


@pytest.mark.parametrize('kind', ('request', 'bh', 'call_soon'))
def test_mixed_kinds_three_tasks(pool, kind):
    ax = pool
    other = {'request': 'bh', 'bh': 'call_soon', 'call_soon': 'request'}

    async def main():
        with ax.asyncio_bridge():
            return await asyncio.gather(_hold(ax, kind, 0.05),
                                        _hold(ax, other[kind], 0.1),
                                        _hold(ax, kind, 0.2))
    assert run(main()) == [1, 2, 3]


def test_out_of_order_exit_across_tasks(ax):
    """A task that leaves its context while a later task's context is
    current gets RuntimeError; nothing is popped; it can exit once the
    later task has left."""
    log = []

    async def first(b_left):
        cm = ax.async_context()
        cm.__enter__()
        await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match='reverse order'):
            cm.__exit__(None, None, None)
        log.append(('refused', ax.context_id(), cm.id))
        await b_left.wait()
        cm.__exit__(None, None, None)
        log.append(('left', ax.context_id()))

    async def second(b_left):
        with ax.async_context() as c:
            await asyncio.sleep(0.1)
            log.append(('second', c.id))
        b_left.set()

    async def main():
        with ax.asyncio_bridge():
            ev = asyncio.Event()
            await asyncio.gather(first(ev), second(ev))
    run(main())
    assert log == [('refused', 2, 1), ('second', 2), ('left', 0)]


def test_out_of_order_with_block_raises_not_hangs(ax):
    async def holder(d):
        with ax.async_context():
            await asyncio.sleep(d)

    async def main():
        with ax.asyncio_bridge():
            await asyncio.gather(holder(0.01), holder(0.1))
    with pytest.raises(RuntimeError, match='reverse order'):
        run(main())
    # The refused context stayed pushed (the fixture's teardown checks
    # nothing else is left).
    assert ax.context_id() == 1
    ax.pop()


def test_shared_object_never_pops_other_tasks_context(ax):
    """One async_context object entered by two tasks: an exit pops the
    exiting task's own context, never the other task's."""
    cm = ax.async_context()
    log = []

    async def a(ev):
        with pytest.raises(RuntimeError):
            with cm:
                await asyncio.sleep(0.01)
        log.append(('a refused', ax.context_id(), len(cm._toks)))
        await ev.wait()
        cm.__exit__(None, None, None)
        log.append(('a left', ax.context_id()))

    async def b(ev):
        with cm:
            await asyncio.sleep(0.1)
            log.append(('b', ax.context_id()))
        ev.set()

    async def main():
        ev = asyncio.Event()
        await asyncio.gather(a(ev), b(ev))
    run(main())
    assert log == [('a refused', 2, 2), ('b', 2), ('a left', 0)]


@pytest.mark.parametrize('how', ['aclose_task', 'shutdown_asyncgens'])
def test_async_generator_closed_by_asyncio_pops_its_context(ax, how):
    """An async generator suspended inside ``with async_context():`` is
    closed by asyncio in a task of its own (aclose() from its finalizer
    or loop.shutdown_asyncgens() at the end of asyncio.run()).  Its exit
    finds its context current on its thread, so it pops it (SPEC 3.8
    refuses only another context on top or another thread); it raised
    RuntimeError ("exited by a task that did not enter it") and left the
    context pushed for good."""
    log = []

    async def agen():
        with ax.async_context() as c:
            yield c.id
            yield 0
        log.append('left')

    async def main():
        with ax.asyncio_bridge():
            ag = agen()
            log.append(await ag.__anext__())
            if how == 'aclose_task':
                await asyncio.create_task(ag.aclose())
                log.append(ax.context_id())
            else:
                log.append(ax.context_id())
                main.ag = ag  # closed by asyncio.run()'s shutdown
    run(main())
    if how == 'aclose_task':
        assert log == [1, 0]
    else:
        assert log == [1, 1]
        assert main.ag.ag_frame is None  # closed
    assert ax.context_id() == 0


# ------------------------------------------------------------------------
# Wrong-thread and out-of-order __exit__ (issue 10 case 3), no asyncio.

def test_exit_on_wrong_thread_changes_nothing(ax):
    cm = ax.async_context()
    cm.__enter__()
    errs = []

    def other():
        try:
            cm.__exit__(None, None, None)
        except RuntimeError as e:
            errs.append(str(e))
    for _ in range(2):  # the second: a thread whose runtime exists
        th = threading.Thread(target=other)
        th.start()
        th.join()
    assert len(errs) == 2 and 'other than the one' in errs[0]
    assert ax.context_id() == 1 and cm.id == 1
    cm.__exit__(None, None, None)
    assert ax.context_id() == 0
    with pytest.raises(RuntimeError):
        cm.id


def test_exit_wrong_thread_with_its_own_context(ax):
    """The other thread has contexts of its own pushed: still refused."""
    cm = ax.async_context()
    cm.__enter__()
    errs = []

    def other():
        with ax.async_context():
            try:
                cm.__exit__(None, None, None)
            except RuntimeError as e:
                errs.append(e)
            errs.append(ax.context_id())
    th = threading.Thread(target=other)
    th.start()
    th.join()
    assert isinstance(errs[0], RuntimeError) and errs[1] == 1
    assert ax.context_id() == 1
    cm.__exit__(None, None, None)


def test_exit_out_of_order_changes_nothing(ax):
    a = ax.async_context()
    b = ax.async_context()
    a.__enter__()
    b.__enter__()
    with pytest.raises(RuntimeError, match='reverse order'):
        a.__exit__(None, None, None)
    assert ax.context_id() == 2 and a.id == 1 and b.id == 2
    b.__exit__(None, None, None)
    assert ax.context_id() == 1
    a.__exit__(None, None, None)
    assert ax.context_id() == 0


def test_exit_not_entered(ax):
    with pytest.raises(RuntimeError, match='not entered'):
        ax.async_context().__exit__(None, None, None)


def test_pop_kicks_bridge(ax):
    """Work of the parent that arrived while a child was current runs
    after a plain pop() too."""
    seen = []

    async def main():
        loop = asyncio.get_running_loop()
        with ax.asyncio_bridge():
            h = ax.current_context()
            ax.push()
            t = threading.Thread(target=h.call_soon, args=(seen.append, 1))
            t.start()
            t.join()
            await asyncio.sleep(0.05)  # the bridge polls the child only
            assert seen == []
            ax.pop()
            fut = loop.create_future()
            h.call_soon(fut.set_result, None)
            await fut
            h.close()
    run(main())
    assert seen == [1]


# ------------------------------------------------------------------------
# A cancelled task that leaves its context while a later one is current
# (issue 19 item 9): its CancelledError goes on, and the context is
# cancelled and popped as soon as it is current again; nothing stays
# pushed.

def test_cancelled_task_context_popped_when_on_top(pool):
    ax = pool
    ev = threading.Event()
    ran = []
    log = []

    async def a():
        with ax.async_context():
            # Queued behind the blockers: not started when cancelled.
            log.append(ax.submit(ran.append, 1))
            await asyncio.sleep(HUNG)

    async def b(left):
        with ax.async_context() as c:
            await left.wait()
            log.append(('b', c.id))

    async def main():
        with ax.asyncio_bridge():
            blockers = [ax.submit(ev.wait, HUNG) for _ in range(64)]
            left = asyncio.Event()
            ta = asyncio.ensure_future(a())
            tb = asyncio.ensure_future(b(left))
            await asyncio.sleep(0.05)
            assert ax.context_id() == 2
            ta.cancel()
            with pytest.raises(asyncio.CancelledError):
                await ta
            assert ta.cancelled()
            # B's context is current: A's stays pushed below it for now.
            assert ax.context_id() == 2 and not log[0].done()
            left.set()
            await tb
            # B's pop cancelled and popped A's context.
            assert ax.context_id() == 0
            assert log[0].cancelled() and ran == []
            ev.set()
            # Root requests complete.
            await asyncio.gather(*blockers)
    try:
        run(main())
    finally:
        ev.set()
    assert log[1] == ('b', 2)


def test_wait_for_timeout_keeps_timeout_error(ax):
    """wait_for cancels the inner task: the caller sees TimeoutError (not
    RuntimeError) and both contexts are gone at the end."""
    async def a(a_in):
        with ax.async_context():
            a_in.set()
            await asyncio.sleep(HUNG)

    async def b(b_in, left):
        with ax.async_context():
            b_in.set()
            await left.wait()

    async def main():
        with ax.asyncio_bridge():
            a_in, b_in, left = asyncio.Event(), asyncio.Event(), \
                asyncio.Event()
            # The timeout only has to come after B entered.
            ta = asyncio.ensure_future(asyncio.wait_for(a(a_in), 1))
            await a_in.wait()
            tb = asyncio.ensure_future(b(b_in, left))
            await b_in.wait()
            with pytest.raises(asyncio.TimeoutError):
                await ta
            assert ax.context_id() == 2
            left.set()
            await tb
            assert ax.context_id() == 0
            req = ax.new_request()
            threading.Thread(target=req.set_result, args=(7,)).start()
            assert await req == 7
    run(main())


def test_several_cancelled_contexts_popped_in_turn(ax):
    """Two cancelled tasks under a third: when the third leaves, both
    contexts are popped (each cancelled first), innermost first."""
    async def holder():
        with ax.async_context():
            await asyncio.sleep(HUNG)

    async def top(left):
        with ax.async_context() as c:
            await left.wait()
            return c.id

    async def main():
        with ax.asyncio_bridge():
            left = asyncio.Event()
            t1 = asyncio.ensure_future(holder())
            await asyncio.sleep(0)
            t2 = asyncio.ensure_future(holder())
            await asyncio.sleep(0)
            t3 = asyncio.ensure_future(top(left))
            await asyncio.sleep(0.01)
            assert ax.context_id() == 3
            t1.cancel()
            t2.cancel()
            await asyncio.gather(t1, t2, return_exceptions=True)
            assert t1.cancelled() and t2.cancelled()
            assert ax.context_id() == 3
            left.set()
            assert await t3 == 3
            assert ax.context_id() == 0
    run(main())


def test_cancelled_top_context_pops_deferred_below(ax):
    """The context above the deferred one is itself left by a cancelled
    task (it is current, so it is popped at once), and the deferred one
    under it follows."""
    async def holder():
        with ax.async_context():
            await asyncio.sleep(HUNG)

    async def main():
        with ax.asyncio_bridge():
            t1 = asyncio.ensure_future(holder())
            await asyncio.sleep(0)
            t2 = asyncio.ensure_future(holder())
            await asyncio.sleep(0.01)
            assert ax.context_id() == 2
            t1.cancel()
            await asyncio.gather(t1, return_exceptions=True)
            assert ax.context_id() == 2
            t2.cancel()
            await asyncio.gather(t2, return_exceptions=True)
            assert ax.context_id() == 0
    run(main())
