"""Handles, call_soon across threads, stop, the GIL."""
import errno
import sys
import threading
import time

import pytest

from conftest import ASAN, run_child


def test_call_soon_runs_on_owner_in_context(ax):
    me = threading.get_ident()
    seen = []
    with ax.async_context() as c:
        h = ax.current_context()
        assert h.id == c.id == 1

        def poster():
            h.call_soon(lambda x: seen.append(
                (x, threading.get_ident(), ax.context_id())), 'v')
        th = threading.Thread(target=poster)
        th.start()
        th.join()
        assert ax.poll(True) is True
        assert seen == [('v', me, 1)]
        h.close()


def test_call_soon_never_inline(ax):
    seen = []
    h = ax.current_context()
    h.call_soon(seen.append, 1)
    assert seen == []
    ax.poll()
    assert seen == [1]
    h.close()


def test_popped_handle_calls_run_in_parent(ax):
    seen = []
    with ax.async_context():
        h = ax.current_context()
    h.call_soon(lambda: seen.append(ax.context_id()))
    ax.poll()
    assert seen == [0]
    h.close()


def test_call_soon_epipe_after_owner_exit(ax):
    box = {}

    def t():
        box['h'] = ax.current_context()
    th = threading.Thread(target=t)
    th.start()
    th.join()
    with pytest.raises(OSError) as ei:
        box['h'].call_soon(int)
    assert ei.value.errno == errno.EPIPE
    with pytest.raises(OSError):
        ax.stop(box['h'])
    box['h'].close()


def test_accepted_calls_run_at_thread_exit(ax):
    seen = []
    ready = threading.Event()
    go = threading.Event()

    def t():
        box.append(ax.current_context())
        ready.set()
        go.wait()
    box = []
    th = threading.Thread(target=t)
    th.start()
    ready.wait()
    for i in range(10):
        box[0].call_soon(seen.append, i)
    box[0].close()
    go.set()
    th.join()
    # join() returns when the Python thread is done, before the native
    # thread's exit handlers (where the runtime shuts the loop down) run:
    # wait for the calls with a bound that only separates "ran" from "lost".
    deadline = time.monotonic() + 10
    while len(seen) < 10 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert seen == list(range(10))


def test_stop_from_thread(ax):
    h = ax.current_context()
    th = threading.Timer(0.05, ax.stop, (h,))
    th.start()
    t0 = time.monotonic()
    ax.run()
    assert time.monotonic() - t0 < 5
    th.join()
    h.close()


def test_stop_before_run(ax):
    h = ax.current_context()
    ax.stop(h)
    ax.run()  # returns after one iteration although h is held
    h.close()


def test_stop_popped_handle_stops_parent(ax):
    with ax.async_context():
        h = ax.current_context()
    ax.stop(h)
    ax.run()
    h.close()


def test_blocking_poll_releases_gil(ax):
    """A Python thread keeps running while another blocks in poll."""
    count = [0]
    stop = threading.Event()
    h = ax.current_context()

    def counter():
        while not stop.is_set():
            count[0] += 1
    th = threading.Thread(target=counter)
    th.start()
    t = threading.Timer(0.3, lambda: (stop.set(), h.call_soon(int)))
    t.start()
    before = count[0]
    ax.poll(True)
    mid = count[0]
    th.join()
    t.join()
    h.close()
    assert mid - before > 1000


def test_blocking_flush_and_result_release_gil(pool):
    ax = pool
    count = [0]
    done = threading.Event()

    def counter():
        while not done.is_set():
            count[0] += 1
    th = threading.Thread(target=counter)
    th.start()
    r = ax.submit(time.sleep, 0.2)
    c0 = count[0]
    r.result()
    c1 = count[0]
    ax.submit(time.sleep, 0.2)
    ax.flush()
    c2 = count[0]
    done.set()
    th.join()
    assert c1 - c0 > 1000 and c2 - c1 > 1000


def test_stress_call_soon_4_threads(ax):
    """4 Python threads post 100,000 call_soons into one loop that pushes
    and pops while polling: each runs exactly once, in the right context,
    on the loop's thread."""
    N = 100000
    PER = N // 4
    me = threading.get_ident()
    runs = bytearray(N)
    bad = []
    root = ax.current_context()
    gen = [0]           # generation of the current child context
    child = [None]      # (handle, generation) of the current child
    lock = threading.Lock()
    posted = [0]

    def record(i, h_gen):
        runs[i] += 1
        depth = ax.context_id()
        if threading.get_ident() != me:
            bad.append(('thread', i))
        if h_gen is None:
            ok = depth == 0
        else:
            ok = depth == (1 if h_gen == gen[0] and child[0] else 0)
        if not ok:
            bad.append(('context', i, h_gen, gen[0], depth))

    def poster(k):
        for j in range(PER):
            i = k * PER + j
            if j % 2:
                c = child[0]
                if c is not None:
                    c[0].call_soon(record, i, c[1])
                    continue
            root.call_soon(record, i, None)
        with lock:
            posted[0] += 1

    threads = [threading.Thread(target=poster, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while True:
        ax.push()
        gen[0] += 1
        child[0] = (ax.current_context(), gen[0])
        for _ in range(3):
            ax.poll()
        child[0] = None  # the handle dies with the last poster using it
        ax.pop()
        ax.poll()
        with lock:
            if posted[0] == 4:
                break
    for t in threads:
        t.join()
    while ax.poll():
        pass
    root.close()
    assert bad == []
    assert runs.count(1) == N, 'runs: %d missing, %d twice' % (
        runs.count(0), N - runs.count(0) - runs.count(1))


def test_pool_thread_keeps_its_thread_state(backend):
    """A pool thread is one Python thread for its life, as an executor's
    is: threading.local() data (a per-thread connection) persists from
    job to job, and goes when the thread retires."""
    r = run_child(backend, '''
        import os, threading, time, weakref, actx
        actx.set_pool_size(1)
        tl = threading.local()
        conns = []

        class Conn:
            pass

        def connect():
            if getattr(tl, 'conn', None) is None:
                tl.conn = Conn()
                conns.append(weakref.ref(tl.conn))
            return threading.get_ident()

        a = actx.submit(connect).result()
        b = actx.submit(connect).result()
        assert a == b and len(conns) == 1, (a, b, len(conns))

        # A nested wait on the pool thread: a second thread runs connect,
        # beyond the size, and retires after 200 ms idle (actx.h).
        def nested():
            return actx.submit(connect).result()

        def threads():
            return len(os.listdir('/proc/self/task'))

        c = actx.submit(nested).result()
        assert c != a and len(conns) == 2, (a, c, len(conns))
        n = threads()
        deadline = time.monotonic() + 20
        while threads() >= n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert threads() < n, 'the extra pool thread did not retire'
        assert any(w() is None for w in conns), 'a retired thread kept it'
        print('ok')
        ''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok'


def test_making_requests_keeps_the_gil(pool, tmp_path):
    """Making a request does not drop the GIL (under cffi a cffi call
    would): a pool thread waiting for the GIL to run a submitted job does
    not take it at the next submit, so a submit loop runs on without a GIL
    hand-off per call.  With no forced switch (a switch interval longer
    than the test), no job can run before the loop ends."""
    ax = pool
    path = tmp_path / 'f'
    path.write_bytes(b'x' * 64)
    ran = []
    old = sys.getswitchinterval()
    with open(path, 'r+b') as f:
        fd = f.fileno()
        sys.setswitchinterval(1000.0)
        try:
            first = ax.submit(ran.append, -1)
            # The pool thread wakes and waits for the GIL to run it.
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:
                pass
            reqs = [first]
            for i in range(200):
                reqs.append(ax.submit(ran.append, i))
                reqs.append(ax.pread(fd, 8, 0))
                reqs.append(ax.pwrite(fd, b'y', 1))
                reqs.append(ax.fsync(fd))
                reqs.append(ax.new_request())
            seen = list(ran)
        finally:
            sys.setswitchinterval(old)
        for r in reqs[5::5]:
            r.set_result(None)
        for r in reqs:
            r.result()
    assert seen == [], 'jobs ran during the loop: %d' % len(seen)
    assert sorted(ran) == list(range(-1, 200))


def test_handle_hash_and_equality_survive_close(ax):
    """Handles on one context are equal and hash alike; a handle closed
    while in a set or dict can still be found and removed (its hash does
    not change, and it equals itself), and equals no other handle."""
    h1 = ax.current_context()
    h2 = ax.current_context()
    assert h1 == h2 and hash(h1) == hash(h2)
    with ax.async_context():
        inner = ax.current_context()
    assert inner != h1
    s = {h1, inner}
    d = {h1: 'root'}
    before = hash(h1)
    h1.close()
    assert hash(h1) == before
    assert h1 == h1 and h1 != h2 and h2 != h1
    assert h1 in s and d[h1] == 'root'
    s.discard(h1)
    assert h1 not in s and s == {inner}
    del d[h1]
    inner.close()
    h2.close()
