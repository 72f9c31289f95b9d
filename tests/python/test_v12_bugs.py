"""Version 1.2's fixes (issue 20, "Bugs"): each case failed on 1.1."""
import asyncio
import concurrent.futures as cf
import copy
import errno
import math
import os
import pickle
import threading
import warnings

import pytest

from conftest import run_child

HUNG = 30  # a bound that only a hang reaches


def _owner_thread(ax, make, started, release):
    """A thread that makes a request with make() and polls until it is
    done; started gets the request, release lets the work finish."""
    out = {}

    def main():
        req = make()
        started.put(req)
        try:
            req.result(timeout=HUNG)
            ax.flush()
        except BaseException as e:  # noqa: B902 - reported to the test
            out['error'] = e
    t = threading.Thread(target=main)
    t.start()
    return t, out


# --- 1. await on a request owned by another thread ------------------------

def test_await_request_of_another_thread(ax):
    """The wake-up crosses threads through call_soon_threadsafe: asyncio's
    debug mode finds no non-thread-safe call, the owner's poll raises
    nothing and the await returns the value."""
    import queue
    q = queue.Queue()
    go = threading.Event()
    t, out = _owner_thread(ax, lambda: ax.submit(
        lambda: go.wait(HUNG) and 'value'), q, go)
    req = q.get(timeout=HUNG)

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, go.set)
        with ax.asyncio_bridge():
            return await asyncio.wait_for(_aw(req), HUNG)
    try:
        assert asyncio.run(main(), debug=True) == 'value'
    finally:
        go.set()
        t.join()
    assert 'error' not in out, out.get('error')


async def _aw(req):
    return await req


# --- 2. pickling and copying -----------------------------------------------

def _loop_bound(ax):
    """One of each loop-bound object (and what must be cleaned up)."""
    ev = threading.Event()
    h = ax.current_context()
    bh = ax.BottomHalf(lambda: None)
    tm = ax.call_later(HUNG, lambda: None)
    req = ax.submit(ev.wait, HUNG)
    ctx = ax.async_context()
    objs = [h, bh, tm, req, ctx]

    def done():
        ev.set()
        req.result()
        tm.cancel()
        bh.delete()
        h.close()
    return objs, done


@pytest.mark.parametrize('how', ['pickle', 'copy', 'deepcopy'])
def test_loop_bound_objects_refuse_pickle_and_copy(ax, how):
    objs, done = _loop_bound(ax)
    try:
        for o in objs:
            with pytest.raises(TypeError):
                if how == 'pickle':
                    pickle.dumps(o)
                elif how == 'copy':
                    copy.copy(o)
                else:
                    copy.deepcopy(o)
    finally:
        done()


def test_bridge_refuses_pickle(ax):
    async def main():
        with ax.asyncio_bridge() as br:
            for f in (pickle.dumps, copy.copy, copy.deepcopy):
                with pytest.raises(TypeError):
                    f(br)
    asyncio.run(main())


# --- 3. the bridge is not sticky -------------------------------------------

def test_bridge_async_with(ax):
    async def main():
        async with ax.asyncio_bridge():
            return await ax.submit(lambda: 7)
    assert asyncio.run(main()) == 7
    # The thread is not left bridged: a new bridge starts.
    asyncio.run(_one_bridge(ax))


async def _one_bridge(ax):
    with ax.asyncio_bridge():
        return await ax.submit(lambda: 1)


def test_bridge_left_open_ends_with_its_loop(ax):
    async def leak():
        ax.asyncio_bridge()  # never closed
        return await ax.submit(lambda: 1)
    with pytest.warns(ResourceWarning):  # when asyncio.run's loop ends
        assert asyncio.run(leak()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert asyncio.run(_one_bridge(ax)) == 1


# --- 4. cancellation -------------------------------------------------------

def _queued(ax, ran):
    """A request whose work is queued behind busy workers (more blockers
    than the pool has workers)."""
    ev = threading.Event()
    blockers = [ax.submit(ev.wait, HUNG) for _ in range(64)]
    req = ax.submit(ran.append, 'ran')
    return req, blockers, ev


def _restore(ax, blockers, ev):
    ev.set()
    for b in blockers:
        b.result()
    ax.flush()


def test_cancel_is_done_at_once(ax):
    ran = []
    req, blocker, ev = _queued(ax, ran)
    try:
        waiter = cf.Future()
        th = threading.Thread(target=lambda: waiter.set_result(
            cf.wait([req], timeout=HUNG)))
        th.start()
        assert req.cancel() is True
        assert req.cancelled() and req.done()
        with pytest.raises(cf.CancelledError):
            req.result()
        # Waiters in concurrent.futures.wait() are woken too.
        assert waiter.result(HUNG).done == {req}
        th.join()
    finally:
        _restore(ax, blocker, ev)
    assert ran == []


def test_wait_for_timeout_cancels_the_request(ax):
    ran = []
    req, blocker, ev = _queued(ax, ran)

    async def main():
        with ax.asyncio_bridge():
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(_aw(req), 0.01)
    try:
        asyncio.run(main())
        assert req.cancelled()
    finally:
        _restore(ax, blocker, ev)
    assert ran == []


def test_cancelling_the_task_cancels_the_request(ax):
    ran = []
    req, blocker, ev = _queued(ax, ran)

    async def main():
        with ax.asyncio_bridge():
            task = asyncio.ensure_future(_aw(req))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    try:
        asyncio.run(main())
        assert req.cancelled()
    finally:
        _restore(ax, blocker, ev)
    assert ran == []


def test_wait_for_timeout_cancels_a_loop_threads_request(ax):
    """The request belongs to a LoopThread's loop; the awaiting loop is
    another thread's: the cancel reaches the owner through its handle."""
    ran = []
    ev = threading.Event()
    with ax.LoopThread() as lt:
        made = cf.Future()

        def make():
            blockers = [ax.submit(ev.wait, HUNG) for _ in range(64)]
            made.set_result((blockers, ax.submit(ran.append, 'ran')))
        lt.call_soon(make)
        blockers, req = made.result(HUNG)

        async def main():
            with ax.asyncio_bridge():
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(_aw(req), 0.01)
        try:
            asyncio.run(main())
            assert cf.wait([req], timeout=HUNG).done == {req}
            assert req.cancelled()
        finally:
            ev.set()
        cf.wait(blockers, timeout=HUNG)
    assert ran == []


# --- 5. a closed fd is EBADF -----------------------------------------------

@pytest.mark.parametrize('op', ['pread', 'pwrite', 'fsync'])
def test_closed_fd_is_ebadf_on_a_fresh_loop(ax, tmp_path, op):
    """On a thread whose loop has done no file I/O yet, the closed number
    is the lowest free one: the ring the runtime makes then would take
    it."""
    out = []

    def main():
        fd = os.open(tmp_path / 'f', os.O_RDWR | os.O_CREAT)
        os.close(fd)
        try:
            if op == 'pread':
                ax.pread(fd, 10).result(timeout=HUNG)
            elif op == 'pwrite':
                ax.pwrite(fd, b'x').result(timeout=HUNG)
            else:
                ax.fsync(fd).result(timeout=HUNG)
        except OSError as e:
            out.append(e.errno)
        except BaseException as e:  # noqa: B902 - reported to the test
            out.append(e)
    t = threading.Thread(target=main)
    t.start()
    t.join()
    assert out == [errno.EBADF]


@pytest.mark.parametrize('io', ['pool', 'io_uring'])
@pytest.mark.parametrize('op', ['pread', 'pwrite'])
def test_closed_fd_taken_by_the_runtime_is_ebadf(backend, io, op):
    """A closed number the runtime then takes for its own eventfd (the
    thread's first actx call makes its loop) is EBADF: never a read that
    waits for the runtime's next wake-up, never a write into it."""
    r = run_child(backend, '''
        import errno, os
        os.environ['ACTX_IO'] = %r
        import actx
        fd = os.open('/dev/null', os.O_RDONLY)
        os.close(fd)
        actx.submit(int).result()  # the loop's fds take the lowest numbers
        assert 'eventfd' in os.readlink('/proc/self/fd/%%d' %% fd) or \\
            'io_uring' in os.readlink('/proc/self/fd/%%d' %% fd), fd
        try:
            if %r == 'pread':
                actx.pread(fd, 10).result(timeout=20)
            else:
                actx.pwrite(fd, b'12345678').result(timeout=20)
        except OSError as e:
            print(errno.errorcode[e.errno])
        ''' % (io, op))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'EBADF'


# --- 6. awaiting an outer context's request --------------------------------

def test_await_outer_request_in_nested_context_is_deadlock(ax):
    ev = threading.Event()

    async def main():
        with ax.asyncio_bridge():
            req = ax.submit(ev.wait, HUNG)
            try:
                with ax.async_context():
                    with pytest.raises(ax.DeadlockError):
                        await asyncio.wait_for(_aw(req), HUNG)
            finally:
                ev.set()
            assert await req is True
    asyncio.run(main())


# --- 7. small ones ---------------------------------------------------------

def test_timer_repr(ax):
    assert 'Timer' in repr(ax.Timer())
    t = ax.call_later(HUNG, lambda: None)
    assert 'pending' in repr(t)
    t.cancel()
    assert 'cancelled' in repr(t)


def test_result_timeout_nan_is_a_timeout(ax):
    ev = threading.Event()
    req = ax.submit(ev.wait, HUNG)
    try:
        with pytest.raises(TimeoutError):
            req.result(timeout=math.nan)
    finally:
        ev.set()
    assert req.result() is True


def test_type_errors_name_no_binding_internals(ax):
    for call in (lambda: ax.set_poll_max_ns('x'),
                 lambda: ax.set_poll_max_ns(1.5),
                 lambda: ax.set_poll_max_ns(1 << 70),
                 lambda: ax.set_pool_size(1 << 40),
                 lambda: ax.pread(0, 1, 1 << 70),
                 lambda: ax.pwrite(1 << 40, b'x'),
                 lambda: ax.fsync('0')):
        with pytest.raises((TypeError, OverflowError)) as e:
            call()
        assert 'int64_t' not in str(e.value)
        assert 'in method' not in str(e.value)


def test_bottom_half_repr(ax):
    def work():
        pass
    bh = ax.BottomHalf(work)
    assert 'work' in repr(bh)
    bh.delete()
    assert 'deleted' in repr(bh)


def test_dropped_scheduled_bottom_half_runs_once_and_lets_run_return(ax):
    out = []
    ax.BottomHalf(out.append, 1).schedule()  # no reference kept
    ax.run()
    assert out == [1]
