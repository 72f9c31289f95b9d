"""fork(): the child gets fresh loops; nothing it does reaches the
parent's (actx.h, actx_thread_init; docs/concepts.md).

The parent's waits are woken by other threads while the child runs; a
wait never woken fails through the timeout.  (The C suite,
tests/c/test-fork.c, has the cases that hung before the fix.)
"""
import textwrap

import pytest

from conftest import run_child

CHILDREN = {
    'shutdown': 'actx.thread_shutdown()',
    # Sleeps of its own while the parent waits for other threads.
    'busy': '''
        while not select.select([r], [], [], 0)[0]:
            assert actx.submit(time.sleep, 0.001).result() is None
        actx.thread_shutdown()''',
}


@pytest.mark.parametrize('child', sorted(CHILDREN))
def test_child_after_fork_leaves_parent_alone(backend, child):
    body = textwrap.indent(textwrap.dedent(CHILDREN[child]), ' ' * 16)
    r = run_child(backend, '''
        import actx, os, select, threading, time
        assert actx.submit(int, 5).result() == 5
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(w)
%s
                os._exit(0)
            except BaseException:
                os._exit(3)
        os.close(r)
        ctx = actx.current_context()
        for i in range(100):
            # Pool work completes on a worker thread.
            assert actx.submit(int, i).result() == i
            # A call from another thread while this one sleeps.
            done = []
            def later():
                time.sleep(0.001)
                ctx.call_soon(done.append, i)
            t = threading.Thread(target=later)
            t.start()
            while not done:
                actx.poll(True)
            t.join()
            assert done == [i]
        os.close(w)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        print('ok', flush=True)
    ''' % body, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok'
