"""Both backends behave the same: one program, run under each backend in
its own interpreter, gives the same trace (the order callbacks ran in and
the runtime's counters, so call_soon batching shows)."""
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent('''
    import threading
    import actx

    trace = []
    h = actx.current_context()

    def post(n):
        for i in range(n):
            h.call_soon(trace.append, ('call', i))

    # Calls from another thread before the owner polls: one drain.
    t = threading.Thread(target=post, args=(50,))
    t.start()
    t.join()
    before = actx.stats()['calls_run']
    actx.poll()
    trace.append(('drains', actx.stats()['calls_run'] - before))

    # Calls made while a drain runs go to the next one.
    def again():
        trace.append('again')
        h.call_soon(trace.append, 'later')
    h.call_soon(again)
    actx.poll()
    trace.append('between')
    actx.poll()

    bh = actx.BottomHalf(trace.append, 'bh')
    bh.schedule()
    actx.call_later(0, trace.append, 'timer')
    with actx.async_context():
        r = actx.submit(lambda: 'work')
        trace.append(r.result())
        r.add_done_callback(lambda r: trace.append('done-cb'))
    actx.poll()
    actx.poll()
    bh.delete()
    h.close()
    print(trace)
    ''')


def _trace(backend):
    r = subprocess.run([sys.executable, '-c', PROGRAM], capture_output=True,
                       text=True, timeout=60,
                       env=dict(__import__('os').environ,
                                ACTX_BACKEND=backend))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_backends_give_the_same_trace():
    cffi, swig = _trace('cffi'), _trace('swig')
    assert cffi == swig
    assert "('drains', 1)" in cffi
