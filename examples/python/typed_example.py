"""A small typed actx program: `mypy --strict` passes on it (scons test
runs that, and runs it).

    PYTHONPATH=build/debug/python /usr/bin/python3 examples/python/typed_example.py
"""
import asyncio
import concurrent.futures
import os
import threading
import time
from typing import List

import actx


def square(x: int) -> int:
    return x * x


def with_contexts() -> List[int]:
    with actx.async_context() as ctx:
        assert ctx.id == actx.context_id() == 1
        jobs: List[actx.Request[int]] = [actx.submit(square, i)
                                         for i in range(5)]
        actx.flush()
        return [j.result() for j in jobs]


def timers_and_fds() -> List[str]:
    seen: List[str] = []
    r, w = os.pipe()

    def on_read() -> None:
        seen.append(os.read(r, 16).decode())
        actx.remove_reader(r)

    actx.add_reader(r, on_read)
    t: actx.Timer = actx.call_later(0.01, os.write, w, b'fd')
    actx.call_at(t.when() - 0.005, seen.append, 'timer')
    actx.run()  # returns when no timer, fd handler or request is left
    os.close(r)
    os.close(w)
    return seen


def waited_elsewhere() -> bool:
    req = actx.submit(time.sleep, 0.01)
    box: List[bool] = []

    def other() -> None:
        done, _ = concurrent.futures.wait([req], timeout=10)
        box.append(req in done)
    th = threading.Thread(target=other)
    th.start()
    actx.flush()  # the owner thread completes it
    th.join()
    return box[0]


async def task(delay: float) -> int:
    with actx.async_context() as ctx:
        await actx.submit(time.sleep, delay)
        return ctx.id


async def in_asyncio() -> List[int]:
    with actx.asyncio_bridge():
        return list(await asyncio.gather(task(0.05), task(0.2)))


def version_1_2() -> List[object]:
    """Deadlines, new_request, LoopThread, poll(timeout=)."""
    out: List[object] = []
    try:
        with actx.async_context(timeout=0.01) as ctx:
            out.append(ctx.deadline is not None)
            actx.submit(time.sleep, 0.2).result()
    except actx.ContextTimeout:
        out.append('timed out')
    req = actx.new_request()
    with actx.LoopThread(name='other') as lt:
        lt.call_soon(req.set_result, 'from a LoopThread')
        out.append(req.result(timeout=10))
    out.append(actx.poll(True, timeout=0))
    return out


def main() -> None:
    print('squares', with_contexts())
    print('1.2', version_1_2())
    print('events', timers_and_fds())
    print('waited from another thread', waited_elsewhere())
    print('asyncio tasks held contexts', asyncio.run(in_asyncio()))
    print('backend', actx.BACKEND)


if __name__ == '__main__':
    main()
