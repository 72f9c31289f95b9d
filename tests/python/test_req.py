"""Requests: submit, pread/pwrite/fsync, result/exception/cancel/callbacks,
deadlock detection."""
import errno
import os
import threading
import time

import pytest


def test_submit_result_on_pool_thread(pool):
    ax = pool
    me = threading.get_ident()
    req = ax.submit(lambda a, b: (a + b, threading.get_ident()), 2, 3)
    value, tid = req.result()
    assert value == 5 and tid != me
    assert req.done() and not req.cancelled()


def test_submit_exception_delivered_to_result(pool):
    ax = pool

    def boom():
        raise KeyError('work')
    req = ax.submit(boom)
    with pytest.raises(KeyError) as ei:
        req.result()
    assert 'boom' in str(ei.traceback[-1].name)
    assert isinstance(req.exception(), KeyError)
    assert ax.submit(lambda: 1).result() == 1


def test_done_callbacks_owner_thread_and_context(pool):
    ax = pool
    me = threading.get_ident()
    seen = []
    with ax.async_context():
        req = ax.submit(time.sleep, 0.01)
        req.add_done_callback(
            lambda r: seen.append((threading.get_ident(), ax.context_id(),
                                   r is req)))
        ax.flush()
        assert seen == [(me, 1, True)]
        req.add_done_callback(lambda r: seen.append('late'))
        assert seen[-1] == 'late'


def test_many_submits_flush(pool):
    ax = pool
    jobs = [ax.submit(pow, i, 2) for i in range(100)]
    ax.flush()
    assert all(j.done() for j in jobs)
    assert [j.result() for j in jobs] == [i * i for i in range(100)]


def test_cancel(pool):
    ax = pool
    ev = threading.Event()
    # Occupy every worker so the last job stays queued.
    blockers = [ax.submit(ev.wait, 10) for _ in range(64)]
    last = ax.submit(int)
    cancelled = last.cancel()
    ev.set()
    ax.flush()
    if cancelled:
        assert last.cancelled() and last.done()
        with pytest.raises(ax.CancelledError):
            last.result()
        import concurrent.futures
        with pytest.raises(concurrent.futures.CancelledError):
            last.result()
    else:
        assert last.result() == 0
    assert all(b.result() for b in blockers)
    assert last.cancel() is cancelled


def test_result_outer_request_deadlock(pool):
    ax = pool
    ev, req = threading.Event(), None
    req = ax.submit(ev.wait, 10)
    with ax.async_context():
        bh = ax.BottomHalf(int)  # the child could still make progress
        t0 = time.monotonic()
        with pytest.raises(ax.DeadlockError):
            req.result()
        assert time.monotonic() - t0 < 5  # at once, not after the 10 s
        bh.delete()
    ev.set()
    assert req.result() is True


def test_deadlock_is_runtimeerror(ax):
    assert issubclass(ax.DeadlockError, RuntimeError)


def test_result_timeout(pool):
    ax = pool
    ev = threading.Event()
    req = ax.submit(ev.wait, 10)
    with pytest.raises(TimeoutError):
        req.result(timeout=0.05)
    ev.set()
    assert req.result(timeout=10) is True


def test_flush_child_ignores_parent(pool):
    ax = pool
    ev = threading.Event()
    parent = ax.submit(ev.wait, 10)
    with ax.async_context():
        child = ax.submit(lambda: 'c')
        t0 = time.monotonic()
        ax.flush()
        assert time.monotonic() - t0 < 5
        assert child.done() and not parent.done()
    ev.set()
    ax.flush()
    assert parent.done()


def test_pwrite_pread_fsync(pool, tmp_path):
    ax = pool
    fd = os.open(tmp_path / 'f', os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert ax.pwrite(fd, b'hello world', 0).result() == 11
        assert ax.pwrite(fd, bytearray(b'HELLO'), 0).result() == 5
        assert ax.pwrite(fd, memoryview(b'!'), 11).result() == 1
        assert ax.fsync(fd).result() is None
        assert ax.pread(fd, 4096, 0).result() == b'HELLO world!'
        assert ax.pread(fd, 5, 6).result() == b'world'
        assert ax.pread(fd, 10, 100).result() == b''
    finally:
        os.close(fd)


def test_io_backend_in_stats(ax):
    # 0: the worker pool does file AIO; 1: the thread's io_uring (where
    # the kernel lets this process use it).
    ax.poll()  # the thread's loop exists
    backend = ax.stats()['io_backend']
    if os.environ.get('ACTX_IO') == 'pool':
        assert backend == 0
    else:
        assert backend in (0, 1)


def test_pread_closed_fd_ebadf(pool, tmp_path):
    ax = pool
    fd = os.open(tmp_path / 'f', os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    with pytest.raises(OSError) as ei:
        ax.pread(fd, 10, 0).result()
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError) as ei:
        ax.pread(-1, 10, 0).result()
    assert ei.value.errno == errno.EBADF


def test_wrong_types(ax):
    with pytest.raises(TypeError):
        ax.submit(3)
    with pytest.raises(TypeError):
        ax.pread('x', 10, 0)
    with pytest.raises(TypeError):
        ax.pread(0, 'ten', 0)
    with pytest.raises(TypeError):
        ax.pwrite(0, 'text', 0)
    with pytest.raises(TypeError):
        ax.pwrite(0, 5, 0)
    with pytest.raises(TypeError):
        ax.fsync(1.5)
    with pytest.raises(TypeError):
        ax.stop(object())
    with pytest.raises(TypeError):
        ax.current_context().call_soon(None)


def test_result_from_other_thread_refused(pool):
    ax = pool
    req = ax.submit(int)
    err = []
    th = threading.Thread(target=lambda: err.append(
        pytest.raises(RuntimeError, req.result)))
    th.start()
    th.join()
    assert err
    assert req.result() == 0


def test_work_function_uses_runtime(pool):
    """A work function may use actx on its pool thread (its own loop)."""
    ax = pool

    def nested():
        with ax.async_context():
            return ax.submit(lambda: 41).result() + 1
    assert ax.submit(nested).result() == 42


def test_await_in_pool_all_blocked(pool):
    ax = pool

    def nested():
        return ax.submit(lambda: 1).result()
    jobs = [ax.submit(nested) for _ in range(32)]
    assert [j.result(timeout=30) for j in jobs] == [1] * 32
