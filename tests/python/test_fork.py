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


def test_child_makes_fresh_python_state(backend):
    """A parent that used call_later(): the child's timers fire.  The child kept the parent's
    Python thread state, whose timer heap held the parent loop's C timer
    (actx.h: the child must not use it): the child's call_later() was
    armed there and never ran ("actx_timer_mod: not called on the owner
    thread")."""
    r = run_child(backend, '''
        import actx, os, threading
        ev = threading.Event()
        busy = actx.submit(ev.wait, 30)  # a work function at the fork
        parent = actx.call_later(3600, print, 'parent timer')
        pid = os.fork()
        if pid == 0:
            try:
                got = []
                assert actx.context_id() == 0
                actx.call_later(0, got.append, 'root')
                with actx.async_context() as c:
                    assert c.id == 1
                    actx.call_later(0, got.append, 'pushed')
                    for _ in range(100):
                        if got:
                            break
                        actx.poll(True, timeout=0.1)
                for _ in range(100):
                    if len(got) == 2:
                        break
                    actx.poll(True, timeout=0.1)
                assert got == ['pushed', 'root'], got
                os._exit(0)
            except BaseException:
                import traceback
                traceback.print_exc()
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        ev.set()
        assert busy.result() is True
        parent.cancel()
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        print('ok', flush=True)
    ''', timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok'



def test_child_drops_the_parents_asyncio_bridge(backend):
    """A parent with an asyncio bridge open (on a loop not running at the
    fork).  The child kept it in its record of bridges: thread_shutdown()
    there reattached it to the child's new loop, registering the child's
    backend fd in the loop's selector, an epoll set the child shares with
    the parent: the parent's loop then woke for the child's posts (and
    spun while the child left them unread).  And the child's own bridge
    warned (ResourceWarning) that the parent's was left open."""
    r = run_child(backend, '''
        import actx, asyncio, os, sys, threading
        loop = asyncio.new_event_loop()
        br = actx.asyncio_bridge(loop)
        async def job(v):
            return await actx.submit(int, v)
        assert loop.run_until_complete(job(1)) == 1
        c2p_r, c2p_w = os.pipe()
        p2c_r, p2c_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                unraisable = []
                sys.unraisablehook = unraisable.append
                actx.thread_shutdown()
                # A post from another thread while the loop may sleep in
                # an embedding loop, left unread: its eventfd readable.
                h = actx.current_context()
                actx.backend_timeout_ms()
                t = threading.Thread(target=h.call_soon, args=(int,))
                t.start()
                t.join()
                os.write(c2p_w, b'x')
                os.read(p2c_r, 1)  # until the parent looked
                async def main():
                    async with actx.asyncio_bridge():
                        return await actx.submit(int, 7)
                assert asyncio.run(main()) == 7
                assert not unraisable, [u.exc_value for u in unraisable]
                code = 0
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        os.read(c2p_r, 1)
        # No post was made to the parent's loops since it ran: nothing is
        # ready in its selector's epoll set.
        ready = loop._selector._selector.poll(0)
        os.write(p2c_w, b'x')
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert ready == [], ready
        assert loop.run_until_complete(job(2)) == 2
        br.close()
        loop.close()
        print('ok', flush=True)
    ''', timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok'


def test_child_refuses_calls_to_the_parents_contexts(backend):
    """call_soon() on a handle of the parent's context, in the child, is
    refused with EPIPE (its loop is not the child's).  A handle whose
    drain was pending at the fork (its queue word POSTED) queued the call
    without asking C: accepted, never run, never reported."""
    r = run_child(backend, '''
        import actx, errno, os
        h = actx.current_context()
        got = []
        h.call_soon(got.append, 'parent')  # a drain pending at the fork
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                for _ in range(2):
                    try:
                        h.call_soon(print, 'child')
                        print('accepted', flush=True)
                    except OSError as e:
                        assert e.errno == errno.EPIPE, e
                try:
                    actx.stop(h)
                    print('stop accepted', flush=True)
                except OSError as e:
                    assert e.errno == errno.EPIPE, e
                actx.poll()
                code = 0
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        actx.poll()
        assert got == ['parent'], got
        print('ok', flush=True)
    ''', timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'ok', r.stdout
