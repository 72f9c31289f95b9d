"""Python benchmarks: both actx backends side by side, against asyncio and
uvloop (Debian's python3-uvloop) measured in the same run.

    PYTHONPATH=build/<mode>/python /usr/bin/python3 benchmarks/python/run.py

(`scons bench:py` does that; `scons bench` includes it.)  Each number is
the best of several repetitions.  Ratios > 1 mean actx is faster.
"""
import asyncio
import concurrent.futures
import os
import sys
import threading
import time

import actx

try:
    import uvloop
except ImportError:
    uvloop = None

REPEAT = 5
APIS = {name: actx._api(name) for name in ('cffi', 'swig')}


def best(fn, *args):
    return min(fn(*args) for _ in range(REPEAT))


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
# Another thread writes a byte to a pipe and blocks reading the answer; the
# loop sleeps until the pipe is readable, its reader reads the byte and
# answers on a second pipe.  Time per round trip.
def _pinger(n, out_w, in_r, start):
    start.wait()
    for _ in range(n):
        os.write(out_w, b'p')
        os.read(in_r, 1)


def _round_trip(n, install, loop_run):
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    start = threading.Barrier(2)
    th = threading.Thread(target=_pinger, args=(n, a_w, b_r, start))
    th.start()
    left = [n]
    install(a_r, left, b_w)
    start.wait()
    t0 = time.perf_counter()
    loop_run()
    dt = time.perf_counter() - t0
    th.join()
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)
    return dt / n * 1e6


def bench_fd_actx(ax, n=20000):
    def install(r, left, w):
        def on_read():
            os.read(r, 1)
            os.write(w, b'q')
            left[0] -= 1
            if not left[0]:
                ax.remove_reader(r)
        ax.add_reader(r, on_read)
    return _round_trip(n, install, ax.run)


def bench_fd_asyncio(new_loop, n=20000):
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
        return _round_trip(n, install, loop.run_forever)
    finally:
        loop.close()


def main():
    loops = {'asyncio': asyncio.new_event_loop}
    if uvloop is not None:
        loops['uvloop'] = uvloop.new_event_loop
    rows = []

    def row(name, unit, actx_vals, peers, lower_better, target=None):
        rows.append((name, unit, actx_vals, peers, lower_better, target))

    print('actx Python benchmarks (%s, CPUs: %d, best of %d)' % (
        sys.version.split()[0], os.cpu_count(), REPEAT))
    row('with async_context(): pass', 'us/block',
        {k: best(bench_ctx, a) for k, a in APIS.items()}, {}, True,
        'cffi <= 1.5 us')
    row('BH schedule + run (vs call_soon + run)', 'us/op',
        {k: best(bench_bh, a) for k, a in APIS.items()},
        {k: best(bench_asyncio_call_soon, f) for k, f in loops.items()},
        True, 'faster than asyncio')
    row('cross-thread call_soon, 2 threads', 'calls/s',
        {k: best(bench_xthread_actx, a) for k, a in APIS.items()},
        {k: best(bench_xthread_asyncio, f) for k, f in loops.items()},
        False, '>= 3x asyncio, > uvloop')
    row('submit trivial + flush (vs executor+gather)', 'jobs/s',
        {k: best(bench_submit, a) for k, a in APIS.items()},
        {'asyncio': best(bench_executor, asyncio.new_event_loop)},
        False, '>= 2x asyncio')

    row('call_later, 100k timers over 1 ms (vs call_later)', 'us/timer',
        {k: best(bench_call_later_actx, a) for k, a in APIS.items()},
        {k: best(bench_call_later_asyncio, f) for k, f in loops.items()},
        True, '>= 2x asyncio')
    row('fd reader wake-up round trip (vs add_reader)', 'us/trip',
        {k: best(bench_fd_actx, a) for k, a in APIS.items()},
        {k: best(bench_fd_asyncio, f) for k, f in loops.items()},
        True, "<= 0.5x asyncio's time")

    def fmt(v, unit):
        if unit.startswith('us'):
            return '%.3f' % v
        return '%.0f k' % (v / 1e3)
    print()
    print('%-44s %-9s %10s %10s %10s %10s  %s' % (
        'benchmark', 'unit', 'cffi', 'swig', 'asyncio', 'uvloop',
        'ratio actx/peer (cffi, swig)'))
    for name, unit, av, pv, lower, target in rows:
        cells = [fmt(av[k], unit) for k in ('cffi', 'swig')]
        cells += [fmt(pv[k], unit) if k in pv else '-'
                  for k in ('asyncio', 'uvloop')]
        ratios = []
        for peer, v in pv.items():
            r = [(v / av[k]) if lower else (av[k] / v) for k in ('cffi',
                                                                'swig')]
            ratios.append('%s %.2fx/%.2fx' % (peer, r[0], r[1]))
        print('%-44s %-9s %10s %10s %10s %10s  %s' % (
            name, unit, *cells, ', '.join(ratios) or '-'))
        print('%-44s target: %s' % ('', target))


if __name__ == '__main__':
    main()
