"""Request is a concurrent.futures.Future (issue 10): asyncio.wrap_future,
concurrent.futures.wait / as_completed, isinstance; actx's owner-thread
rules stay.  AsyncioBridge is constructible."""
import asyncio
import concurrent.futures as cf
import threading
import time

import pytest

HUNG = 20.0


def test_isinstance(pool):
    ax = pool
    req = ax.submit(int)
    assert isinstance(req, cf.Future)
    assert isinstance(req, ax.Request)
    req.result()
    with pytest.raises(TypeError):
        ax.Request()


def test_wrap_future(pool):
    ax = pool

    def fail():
        raise KeyError('w')

    async def main():
        with ax.asyncio_bridge():
            v = await asyncio.wrap_future(ax.submit(lambda: 'v'))
            with pytest.raises(KeyError):
                await asyncio.wrap_future(ax.submit(fail))
            ev = threading.Event()
            blocker = ax.submit(ev.wait, HUNG)
            queued = [ax.submit(int) for _ in range(64)]
            cancelled = [q for q in queued if q.cancel()]
            ev.set()
            for q in cancelled:
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wrap_future(q)
            await asyncio.wrap_future(blocker)
            rest = await asyncio.gather(*(asyncio.wrap_future(q)
                                          for q in queued if not q.cancelled()))
            return v, rest
    v, rest = asyncio.run(asyncio.wait_for(main(), HUNG))
    assert v == 'v' and set(rest) <= {0}


def test_wait_from_other_thread(pool):
    ax = pool
    reqs = [ax.submit(time.sleep, 0.01 * i) for i in range(5)]
    out = []

    def waiter():
        out.append(cf.wait(reqs, timeout=HUNG))
    th = threading.Thread(target=waiter)
    th.start()
    ax.flush()   # the owner completes them
    th.join()
    done, not_done = out[0]
    assert done == set(reqs) and not not_done


def test_wait_first_completed_and_exception(pool):
    ax = pool
    ev = threading.Event()

    def fail():
        raise ValueError('x')
    slow = ax.submit(ev.wait, HUNG)
    bad = ax.submit(fail)
    out = []

    def waiter():
        out.append(cf.wait([slow, bad], timeout=HUNG,
                           return_when=cf.FIRST_EXCEPTION))
        ev.set()
    th = threading.Thread(target=waiter)
    th.start()
    ax.flush()
    th.join()
    done, not_done = out[0]
    assert bad in done
    assert slow.result() is True


def test_as_completed_from_other_thread(pool):
    ax = pool
    reqs = [ax.submit(time.sleep, d) for d in (0.1, 0.05, 0)]
    order = []

    def waiter():
        for r in cf.as_completed(reqs, timeout=HUNG):
            order.append(r)
    th = threading.Thread(target=waiter)
    th.start()
    ax.flush()
    th.join()
    assert sorted(order, key=id) == sorted(reqs, key=id)


def test_wait_on_owner_thread(pool):
    """wait() and as_completed() are concurrent.futures' own (Request uses
    Future's public API only): on the owner thread they cannot complete a
    pending request (only the owner's polls do), so they report it as not
    done; done ones are fine."""
    ax = pool
    ev = threading.Event()
    req = ax.submit(ev.wait, HUNG)
    done, not_done = cf.wait([req], timeout=0)
    assert not_done == {req}
    with pytest.raises(cf.TimeoutError):
        list(cf.as_completed([req], timeout=0))
    ev.set()
    assert req.result() is True
    done, not_done = cf.wait([req], timeout=0)
    assert done == {req}
    assert list(cf.as_completed([req])) == [req]


def test_done_callback_added_on_other_thread(pool):
    """Added from any thread; runs on the owner thread, in the request's
    context."""
    ax = pool
    seen = []
    ev = threading.Event()
    with ax.async_context() as c:
        req = ax.submit(ev.wait, HUNG)
        th = threading.Thread(target=req.add_done_callback, args=(
            lambda r: seen.append((threading.get_ident(), ax.context_id())),))
        th.start()
        th.join()
        ev.set()
        ax.flush()
        assert seen == [(threading.get_ident(), c.id)]
    late = []
    th = threading.Thread(target=req.add_done_callback, args=(late.append,))
    th.start()
    th.join()
    assert late == [req]  # already done: at once, on the calling thread


def test_wrap_future_cancelled_on_another_thread_than_the_owner(pool):
    """asyncio.wrap_future() of a LoopThread's request, timed out by
    wait_for() on this thread: the wrapper cancels its source here, and
    Request.cancel() on a thread other than the owner raised
    RuntimeError into the loop's exception handler.  As
    concurrent.futures.Future.cancel(), it returns False there, and the
    LoopThread cancels the queued request, as for ``await req``."""
    ax = pool
    ev = threading.Event()

    def make(fn, *args):
        box = []
        made = threading.Event()

        def mk():
            box.append(ax.submit(fn, *args))
            made.set()
        lt.call_soon(mk)
        assert made.wait(HUNG)
        return box[0]

    async def main():
        errors = []
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: errors.append(context))
        # More blockers than the pool has workers: req is queued.
        blockers = [make(ev.wait, HUNG) for _ in range(64)]
        req = make(int)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.wrap_future(req), 0.01)
        done, _ = await asyncio.get_running_loop().run_in_executor(
            None, cf.wait, [req], HUNG)
        ev.set()
        await asyncio.gather(*(asyncio.wrap_future(b) for b in blockers))
        return errors, req, done

    with ax.LoopThread() as lt:
        try:
            errors, req, done = asyncio.run(asyncio.wait_for(main(), HUNG))
        finally:
            ev.set()
    assert errors == []
    assert done == {req} and req.cancelled()


def test_set_result_refused(pool):
    ax = pool
    req = ax.submit(int)
    with pytest.raises(RuntimeError):
        req.set_result(1)
    with pytest.raises(RuntimeError):
        req.set_exception(ValueError())
    with pytest.raises(RuntimeError):
        req.set_running_or_notify_cancel()
    assert req.result() == 0


def test_io_request_is_future(pool, tmp_path):
    import os
    ax = pool
    p = tmp_path / 'f'
    p.write_bytes(b'hello')
    fd = os.open(p, os.O_RDONLY)
    try:
        req = ax.pread(fd, 5, 0)
        out = []
        th = threading.Thread(target=lambda: out.append(
            cf.wait([req], timeout=HUNG)))
        th.start()
        ax.flush()
        th.join()
        assert req in out[0].done and req.result() == b'hello'
    finally:
        os.close(fd)


def test_asyncio_bridge_constructible(ax):
    seen = []

    async def main():
        br = ax.AsyncioBridge()
        try:
            h = ax.current_context()
            fut = asyncio.get_running_loop().create_future()
            h.call_soon(fut.set_result, 'ok')
            seen.append(await fut)
            h.close()
        finally:
            br.close()
    asyncio.run(asyncio.wait_for(main(), HUNG))
    loop = asyncio.new_event_loop()
    try:
        with ax.AsyncioBridge(loop) as br:
            assert isinstance(br, ax.AsyncioBridge)
            h = ax.current_context()
            fut = loop.create_future()
            h.call_soon(fut.set_result, 'explicit')
            seen.append(loop.run_until_complete(
                asyncio.wait_for(fut, HUNG)))
            h.close()
    finally:
        loop.close()
    assert seen == ['ok', 'explicit']


async def _await(req, how):
    if how == 'await':
        return await req
    return await asyncio.wrap_future(req)


@pytest.mark.parametrize('kind', ['submit', 'new_request'])
@pytest.mark.parametrize('how', ['await', 'wrap_future'])
def test_await_of_a_request_its_owner_cancels(pool, how, kind):
    """A request cancelled by its owner (req.cancel()) cancels the task
    that awaits it, as asyncio does for a cancelled future:
    asyncio.CancelledError is raised into the coroutine.  ``await req``
    and ``await asyncio.wrap_future(req)`` agree, also for a request
    cancelled before the await."""
    ax = pool
    ev = threading.Event()
    blockers = []

    async def main():
        with ax.asyncio_bridge():
            if kind == 'submit':
                # More blockers than the pool has workers: req is queued.
                blockers.extend(ax.submit(ev.wait, HUNG) for _ in range(64))
                req = ax.submit(int)
            else:
                req = ax.new_request()
            seen = []

            async def waiter():
                try:
                    return await _await(req, how)
                except BaseException as e:
                    seen.append(type(e))
                    raise
            waiting = asyncio.ensure_future(waiter())
            await asyncio.sleep(0.01)  # it waits in the await
            assert req.cancel() is True
            await asyncio.wait([waiting], timeout=HUNG)
            late = asyncio.ensure_future(_await(req, how))
            await asyncio.wait([late], timeout=HUNG)
            ev.set()
            for b in blockers:
                await b
            # How each task ended (its exception retrieved here).
            return [t.cancelled() or t.exception()
                    for t in (waiting, late)], seen
    try:
        ended, seen = asyncio.run(asyncio.wait_for(main(), HUNG))
    finally:
        ev.set()
        ax.flush()
    assert ended == [True, True]  # both tasks cancelled
    assert seen == [asyncio.CancelledError]
