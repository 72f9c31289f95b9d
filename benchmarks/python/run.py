"""Python benchmarks: both actx backends side by side, against asyncio and
uvloop (Debian's python3-uvloop) measured in the same run.  A process
loads one actx backend, so each backend runs in a child interpreter of
its own (Backend), called figure by figure: the repetitions of every
implementation still interleave.

    PYTHONPATH=build/release/python /usr/bin/python3 benchmarks/python/run.py

(`scons bench:py` does that, always on the release build; `scons bench`
includes it.)  Options: --help (bench_util.py has the common ones, the same
as the C programs').  Each figure is the median of its repetitions, with
their min-max; "x faster" > 1 means actx is faster.
"""
import asyncio
import concurrent.futures
import json
import os
import select
import subprocess
import sys
import threading
import time

import bench_util

actx = None    # imported by main() after the command line: --help runs
uvloop = None  # without the bindings


# --- 1. with async_context(): pass --------------------------------------
def bench_ctx(ax, n=200000):
    ctx = ax.async_context
    t0 = time.perf_counter()
    for _ in range(n):
        with ctx():
            pass
    return (time.perf_counter() - t0) / n * 1e6


# --- 2. BH schedule + run vs asyncio call_soon + run ----------------------
def bench_bh(ax, n=200000):
    left = [n]

    def cb():
        left[0] -= 1
        if left[0]:
            bh.schedule()
        else:
            bh.delete()
    bh = ax.BottomHalf(cb)
    t0 = time.perf_counter()
    bh.schedule()
    ax.run()
    return (time.perf_counter() - t0) / n * 1e6


def bench_asyncio_call_soon(new_loop, n=200000):
    loop = new_loop()
    left = [n]

    def cb():
        left[0] -= 1
        if left[0]:
            loop.call_soon(cb)
        else:
            loop.stop()
    t0 = time.perf_counter()
    loop.call_soon(cb)
    loop.run_forever()
    dt = time.perf_counter() - t0
    loop.close()
    return dt / n * 1e6


# --- 3. cross-thread call_soon from 2 threads ----------------------------
def bench_xthread_actx(ax, n=100000, producers=2):
    h = ax.current_context()
    done = [0]
    total = n * producers

    def fn():
        done[0] += 1
        if done[0] == total:
            ax.stop(h)
    start = threading.Barrier(producers + 1)

    def producer():
        start.wait()
        cs = h.call_soon
        for _ in range(n):
            cs(fn)
    ths = [threading.Thread(target=producer) for _ in range(producers)]
    for t in ths:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    ax.run()
    dt = time.perf_counter() - t0
    for t in ths:
        t.join()
    h.close()
    assert done[0] == total
    return total / dt


def bench_xthread_asyncio(new_loop, n=100000, producers=2):
    loop = new_loop()
    done = [0]
    total = n * producers

    def fn():
        done[0] += 1
        if done[0] == total:
            loop.stop()
    start = threading.Barrier(producers + 1)

    def producer():
        start.wait()
        cs = loop.call_soon_threadsafe
        for _ in range(n):
            cs(fn)
    ths = [threading.Thread(target=producer) for _ in range(producers)]
    for t in ths:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    loop.run_forever()
    dt = time.perf_counter() - t0
    for t in ths:
        t.join()
    loop.close()
    return total / dt


# --- 4. submit trivial + flush vs run_in_executor + gather ----------------
def trivial():
    return 1


def bench_submit(ax, n=20000):
    t0 = time.perf_counter()
    for _ in range(n):
        ax.submit(trivial)
    ax.flush()
    return n / (time.perf_counter() - t0)


def bench_executor(new_loop, n=20000):
    loop = new_loop()
    ex = concurrent.futures.ThreadPoolExecutor()
    loop.set_default_executor(ex)

    async def main():
        await asyncio.gather(*[loop.run_in_executor(None, trivial)
                               for _ in range(n)])
    loop.run_until_complete(main())  # warm the executor's threads
    t0 = time.perf_counter()
    loop.run_until_complete(main())
    dt = time.perf_counter() - t0
    ex.shutdown()
    loop.close()
    return n / dt


# --- 5. call_later (schedule + fire) vs asyncio's call_later --------------
def _delay(i):
    return (i % 1000) * 1e-6  # spread over 1 ms: a real heap, no sleeping


def bench_call_later_actx(ax, n=100000):
    count = [0]

    def cb():
        count[0] += 1
    cl = ax.call_later
    t0 = time.perf_counter()
    for i in range(n):
        cl(_delay(i), cb)
    ax.run()  # returns once no timer is left
    dt = time.perf_counter() - t0
    assert count[0] == n
    return dt / n * 1e6


def bench_call_later_asyncio(new_loop, n=100000):
    loop = new_loop()
    count = [0]

    def cb():
        count[0] += 1
        if count[0] == n:
            loop.stop()
    cl = loop.call_later
    t0 = time.perf_counter()
    for i in range(n):
        cl(_delay(i), cb)
    loop.run_forever()
    dt = time.perf_counter() - t0
    loop.close()
    return dt / n * 1e6


# --- 6. fd reader wake-up round trip vs asyncio's add_reader ---------------
# A pinger writes a byte to a pipe and waits for the answer; the loop's
# reader reads the byte and answers on a second pipe.  Time per round
# trip, timed by the pinger from its first ping to its last answer, so
# that nobody's start-up is counted.  actx runs with adaptive polling on
# (FD_POLL_MAX_NS), as a user who cares about this latency would set it
# (asyncio has no such setting: it sleeps in epoll at once).  Two pingers:
#
#   spinning  (the figure with the target) another process, which spins on
#             its non-blocking end of the answer pipe: the trip is then
#             the loop's part - its wake-up, the dispatch, the answer -
#             plus the pinger's own checks and calls.  A process, not a
#             thread: a Python thread spinning would hold the GIL the
#             loop's reader needs.
#   sleeping  a thread of this process, blocked in os.read for the answer:
#             every trip also pays for waking that thread, whatever the
#             loop does.  No target: shown so that the figure with one is
#             not read alone.
#
# The pinger's part of a trip is the same for every loop, and a loop's own
# part cannot go below the three system calls its reader needs (see
# whether the ping is there, read it, answer).  So the figure carries two
# references measured in the same run with no event loop at all: 'no
# loop: C on epoll' (bench_fd_floor, python/fd-floor-echo.c) and 'no loop:
# Python on epoll' (bench_fd_floor_py); the note prints both over
# asyncio's time, the best ratio a loop can reach with this pinger on the
# host, and the target is read against them.  benchmarks/README.md ("The
# Python fd round trip") has the measurements behind this design.
FD_POLL_MAX_NS = 50000

_SPIN_PINGER = r"""
import os, select, sys, time
out_w, in_r, n = map(int, sys.argv[1:])
p = select.poll()
p.register(in_r, select.POLLIN)
poll, read, write = p.poll, os.read, os.write
write(out_w, b'r')  # started: the loop may install its reader now
while not poll(0):  # the loop says "go" on the answer pipe
    pass
read(in_r, 1)
t0 = time.perf_counter()
for _ in range(n):
    write(out_w, b'p')
    while not poll(0):
        pass
    read(in_r, 1)
print(time.perf_counter() - t0)
"""


def _pinger(n, out_w, in_r, start, took):
    start.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        os.write(out_w, b'p')
        os.read(in_r, 1)
    took.append(time.perf_counter() - t0)


def _round_trip(n, install, loop_run, pinger):
    """us per trip, timed by the pinger from its first ping to its last
    answer: nobody's start-up (an interpreter, a program) is counted."""
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    fds = [a_r, a_w, b_r, b_w]
    left = [n]
    proc = None
    try:
        if pinger == 'spinning':
            proc = subprocess.Popen(
                [sys.executable, '-c', _SPIN_PINGER, str(a_w), str(b_r),
                 str(n)], pass_fds=(a_w, b_r), stdout=subprocess.PIPE)
            for fd in (a_w, b_r):  # the pinger's ends: EOF if it dies
                os.close(fd)
                fds.remove(fd)
            if os.read(a_r, 1) != b'r':
                raise RuntimeError('the pinger did not start')
            install(a_r, left, b_w)
            os.write(b_w, b'g')
            loop_run()
            out = proc.communicate(timeout=60)[0]
            if proc.returncode != 0:
                raise RuntimeError('the pinger failed')
            dt = float(out)
        else:
            start = threading.Barrier(2)
            took = []
            th = threading.Thread(target=_pinger,
                                  args=(n, a_w, b_r, start, took))
            th.start()
            install(a_r, left, b_w)
            start.wait()
            loop_run()
            th.join()
            dt = took[0]
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()  # the loop failed: never leave a spinning pinger
            proc.wait()
        for fd in fds:
            os.close(fd)
    return dt / n * 1e6


def bench_fd_actx(ax, n=20000, pinger='spinning'):
    def install(r, left, w):
        def on_read():
            os.read(r, 1)
            os.write(w, b'q')
            left[0] -= 1
            if not left[0]:
                ax.remove_reader(r)
        ax.add_reader(r, on_read)
    ax.set_poll_max_ns(FD_POLL_MAX_NS)
    try:
        return _round_trip(n, install, ax.run, pinger)
    finally:
        ax.set_poll_max_ns(0)


def bench_fd_asyncio(new_loop, n=20000, pinger='spinning'):
    loop = new_loop()

    def install(r, left, w):
        def on_read():
            os.read(r, 1)
            os.write(w, b'q')
            left[0] -= 1
            if not left[0]:
                loop.remove_reader(r)
                loop.stop()
        loop.add_reader(r, on_read)
    try:
        return _round_trip(n, install, loop.run_forever, pinger)
    finally:
        loop.close()

def _floor_program():
    """The floor's echo program (benchmarks/python/fd-floor-echo.c, built
    by benchmarks/SConscript): $ACTX_BENCH_FLOOR_ECHO, else the release
    build's, else the debug build's; None, and the row shows '-', if there
    is none."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    for exe in [os.environ.get('ACTX_BENCH_FLOOR_ECHO')] + [
            os.path.join(top, 'build', m, 'benchmarks', 'fd-floor-echo')
            for m in ('release', 'debug')]:
        if exe and os.access(exe, os.X_OK):
            return exe
    return None


def bench_fd_floor(_, n=20000, pinger='spinning'):
    """The same trips answered by no event loop at all: a C program that
    spins on a zero-timeout epoll_wait of the ping pipe, reads the ping and
    answers - the three system calls a readiness loop's reader cannot do
    without.  No such loop takes less than this here, with this pinger;
    measured in the same run so that the target is read against it."""
    exe = _floor_program()
    if exe is None:
        return None
    procs = []

    def install(r, left, w):
        ready_r, ready_w = os.pipe()
        procs.append(subprocess.Popen(
            [exe, str(r), str(w), str(left[0]), str(ready_w)],
            pass_fds=(r, w, ready_w)))
        os.close(ready_w)
        ok = os.read(ready_r, 1) == b'r'
        os.close(ready_r)
        if not ok:
            raise RuntimeError('the floor echo program did not start')

    def wait():
        if procs[0].wait(timeout=60) != 0:
            raise RuntimeError('the floor echo program failed')
    try:
        return _round_trip(n, install, wait, pinger)
    finally:
        if procs and procs[0].poll() is None:
            procs[0].kill()
            procs[0].wait()


def bench_fd_floor_py(_, n=20000, pinger='spinning'):
    """The same trips answered by Python with no event loop: this process
    spins on a zero-timeout select.epoll poll of the ping pipe and answers
    with os.read and os.write, the calls every loop's Python reader makes.
    No loop whose reader is Python takes less than this here."""
    ep = select.epoll()

    def install(r, left, w):
        ep.register(r, select.EPOLLIN)

        def echo():
            poll, read, write = ep.poll, os.read, os.write
            for _ in range(left[0]):
                while not poll(0):
                    pass
                read(r, 1)
                write(w, b'q')
        install.echo = echo
    try:
        return _round_trip(n, install, lambda: install.echo(), pinger)
    finally:
        ep.close()


def build_of(module):
    """The build mode of the bindings: build/<mode>/python/actx/..."""
    parts = os.path.abspath(module.__file__).split(os.sep)
    if len(parts) >= 5 and parts[-3] == 'python' and parts[-5] == 'build':
        return parts[-4]
    return 'installed'


class Backend:
    """One actx backend measured in a child interpreter of its own (a
    process loads exactly one backend): call(fn, kw) runs fn(actx, **kw)
    there, one figure at a time, so the repetitions still interleave with
    the peers'."""

    def __init__(self, name):
        self.p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--serve', name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, ACTX_BACKEND=name))

    def call(self, fn, kw):
        self.p.stdin.write(json.dumps([fn.__name__, kw]) + '\n')
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError('run.py: the %s backend\'s child died'
                               % fn.__name__)
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def serve():
    """The child of Backend: fn name and keywords in, its value out."""
    global actx
    import actx as actx_module
    actx = actx_module
    for line in sys.stdin:
        name, kw = json.loads(line)
        print(json.dumps(globals()[name](actx, **kw)), flush=True)


def main():
    global actx, uvloop
    if sys.argv[1:2] == ['--serve']:
        return serve()
    run = bench_util.Run(
        'run.py', 'actx Python bindings (cffi and SWIG backends) beside '
        'asyncio and uvloop: context blocks, BHs vs call_soon, cross-thread '
        'call_soon, pool submissions.', reps=5)
    run.parse()  # exits here on --help or a bad option
    import actx as actx_module
    actx = actx_module
    try:
        import uvloop as uvloop_module
        uvloop = uvloop_module
    except ImportError:
        uvloop = None
    run.banner(build_of(actx))
    print('run.py: Python %s; the bindings: %s' % (
        sys.version.split()[0], os.path.dirname(actx.__file__)))
    apis = {'actx ' + name: Backend(name) for name in ('cffi', 'swig')}
    loops = {'asyncio': asyncio.new_event_loop}
    if uvloop is not None:
        loops['uvloop'] = uvloop.new_event_loop
    sc = run.scale

    def n(k):
        return max(1000, int(k * sc))

    def figure(name, unit, better, actx_fn, peer_fn, peers, kw, refs={},
               div=1):
        """Interleaved repetitions: each actx backend (actx_fn(actx, **kw)
        / div, in its child), then each peer, then each reference (name:
        fn(None, **kw))."""
        f = run.figure(name, unit, better)
        for _ in range(run.reps):
            for k, a in apis.items():
                f.add(k, a.call(actx_fn, kw) / div, actx=True)
            for k, p in peers.items():
                f.add(k, peer_fn(p, **kw))
            for k, fn in refs.items():
                f.add(k, fn(None, **kw), ref=True)
        return f

    run.group('py', 'Python bindings (one thread unless said)')
    f = figure('with async_context(): pass', 'us/block', 'lower',
               bench_ctx, None, {}, {'n': n(200000)})
    f.target_abs(1.5)
    f.done()
    f = figure('BH schedule + run (vs call_soon + run)', 'us/op', 'lower',
               bench_bh, bench_asyncio_call_soon, loops, {'n': n(200000)})
    f.target_ratio('asyncio', 1.0)
    f.done()
    f = figure('cross-thread call_soon, 2 threads', 'k calls/s', 'higher',
               bench_xthread_actx,
               lambda p, n: bench_xthread_asyncio(p, n) / 1e3, loops,
               {'n': n(100000)}, div=1e3)
    f.target_ratio('asyncio', 3.0)
    f.note('target also: > uvloop')
    f.done()
    f = figure('submit trivial + flush (vs executor+gather)', 'k jobs/s',
               'higher', bench_submit,
               lambda p, n: bench_executor(p, n) / 1e3,
               {'asyncio': asyncio.new_event_loop}, {'n': n(20000)},
               div=1e3)
    f.target_ratio('asyncio', 2.0)
    f.note('asyncio: run_in_executor + gather')
    f.done()
    f = figure('call_later, timers over 1 ms (vs call_later)', 'us/timer',
               'lower', bench_call_later_actx, bench_call_later_asyncio,
               loops, {'n': n(100000)})
    f.target_ratio('asyncio', 2.0)
    f.note('schedule + fire')
    f.done()
    floor_c, floor_py = 'no loop: C on epoll', 'no loop: Python on epoll'
    f = figure('fd reader wake-up round trip (vs add_reader)', 'us/trip',
               'lower', bench_fd_actx, bench_fd_asyncio, loops,
               {'n': n(20000)}, refs={floor_c: bench_fd_floor,
                                      floor_py: bench_fd_floor_py})
    f.target_ratio('asyncio', 2.0)
    f.note("target: <= 0.5x asyncio's time; a spinning pinger process; "
           "actx with set_poll_max_ns(%d)" % FD_POLL_MAX_NS)
    f.note("floors (see run.py), the least a loop can take here: with a C "
           "reader %s asyncio's time, with a Python reader %s"
           % (f.time_ratio(floor_c, 'asyncio'),
              f.time_ratio(floor_py, 'asyncio')))
    f.done()
    f = figure('fd round trip, pinger thread sleeps (vs add_reader)',
               'us/trip', 'lower', bench_fd_actx, bench_fd_asyncio, loops,
               {'n': n(20000), 'pinger': 'sleeping'})
    f.note("no target: every trip also wakes the pinger (see run.py); "
           "actx with set_poll_max_ns(%d)" % FD_POLL_MAX_NS)
    f.done()
    for a in apis.values():
        a.close()
    return run.finish()


if __name__ == '__main__':
    sys.exit(main())
