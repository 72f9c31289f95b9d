"""actx driven from asyncio."""
import asyncio
import threading

import pytest


def test_bridge_runs_call_soon_and_bh(ax):
    seen = []

    async def main():
        with ax.asyncio_bridge() as br:
            h = ax.current_context()
            threading.Thread(target=h.call_soon,
                             args=(seen.append, 'call')).start()
            bh = ax.BottomHalf(seen.append, 'bh')
            bh.schedule()
            for _ in range(200):
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.01)
            bh.delete()
            h.close()
    asyncio.run(main())
    assert sorted(seen) == ['bh', 'call']


def test_bridge_await_request(pool):
    ax = pool

    async def main():
        with ax.asyncio_bridge():
            r1 = ax.submit(lambda: 'x')
            r2 = ax.submit(threading.get_ident)
            other = asyncio.create_task(asyncio.sleep(0.01, 'y'))
            v = await r1
            await r2
            return v, await other
    assert asyncio.run(main()) == ('x', 'y')


@pytest.mark.parametrize('kind', ['submit', 'new_request'])
def test_request_awaited_by_a_task_of_a_closed_loop(pool, kind, caplog):
    """A task of a loop that was closed while it awaited a request of
    this thread: completing the request later wakes nobody, quietly (as
    asyncio.wrap_future does; the cross-thread wake-up already did).  The
    wake-up called set_result() on the closed loop's future, and
    concurrent.futures logged RuntimeError('Event loop is closed')."""
    ax = pool
    ev = threading.Event()
    loop = asyncio.new_event_loop()
    try:
        br = ax.asyncio_bridge(loop)
        if kind == 'submit':
            req = ax.submit(ev.wait, 30)
        else:
            req = ax.new_request()

        async def waiter():
            return await req
        task = loop.create_task(waiter())
        loop.run_until_complete(asyncio.sleep(0))
        br.close()
    finally:
        loop.close()
    if kind == 'submit':
        ev.set()
    else:
        req.set_result(True)
    with caplog.at_level('ERROR'):
        assert req.result() is True
        ax.flush()
    assert [r.getMessage() for r in caplog.records] == []
    assert not task.done()  # its loop closed before it could finish


def test_await_without_bridge(pool):
    ax = pool

    async def main():
        await ax.submit(int)
    with pytest.raises(RuntimeError):
        asyncio.run(main())
    ax.flush()


def test_bridge_callback_exception_to_handler(ax):
    errors = []

    def boom():
        raise ValueError('cb')

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda l, c: errors.append(c))
        with ax.asyncio_bridge():
            h = ax.current_context()
            h.call_soon(boom)
            for _ in range(100):
                if errors:
                    break
                await asyncio.sleep(0.01)
            h.close()
    asyncio.run(main())
    assert isinstance(errors[0]['exception'], ValueError)


HUNG = 20  # seconds: only tells "finished" from "hung"


@pytest.mark.parametrize('reuse', [False, True], ids=['fresh', 'fd-reused'])
def test_bridge_follows_loop_recreated_after_thread_shutdown(pool, reuse):
    """Issue 19 item 4: after actx.thread_shutdown() the thread's next loop
    must be told that its owner waits in asyncio (the dead loop's fds are
    closed, and an idle pipe may take their numbers meanwhile); the open
    bridge follows it."""
    ax = pool
    import os

    async def main():
        with ax.asyncio_bridge():
            assert await ax.submit(lambda: 1) == 1
            ax.thread_shutdown()
            pipe = None
            if reuse:
                pipe = os.pipe()  # takes the freed numbers, stays idle
            try:
                # Completion from a pool thread (mailbox, eventfd).
                r = ax.submit(lambda: 2)
                assert await asyncio.wait_for(r, HUNG) == 2
                # A call from another thread, a timer, a BH.
                loop = asyncio.get_running_loop()
                fut = loop.create_future()
                h = ax.current_context()
                threading.Thread(target=h.call_soon,
                                 args=(fut.set_result, 'call')).start()
                assert await asyncio.wait_for(fut, HUNG) == 'call'
                h.close()
                fut = loop.create_future()
                ax.call_later(0.01, fut.set_result, 'timer')
                assert await asyncio.wait_for(fut, HUNG) == 'timer'
            finally:
                if pipe:
                    os.close(pipe[0])
                    os.close(pipe[1])
    asyncio.run(main())


def test_thread_shutdown_twice_under_bridge(ax):
    async def main():
        with ax.asyncio_bridge() as br:
            ax.thread_shutdown()
            ax.thread_shutdown()
            assert await asyncio.wait_for(ax.submit(int, 3), HUNG) == 3
        br.close()  # idempotent after the with block
    asyncio.run(main())
