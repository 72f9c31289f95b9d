"""actx driven from asyncio."""
import asyncio
import threading

import pytest


def test_bridge_runs_call_soon_and_bh(ax):
    seen = []

    async def main():
        with ax.asyncio_bridge() as br:
            h = ax.current_context()
            threading.Thread(target=h.call_soon,
                             args=(seen.append, 'call')).start()
            bh = ax.BottomHalf(seen.append, 'bh')
            bh.schedule()
            for _ in range(200):
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.01)
            bh.delete()
            h.close()
    asyncio.run(main())
    assert sorted(seen) == ['bh', 'call']


def test_bridge_await_request(pool):
    ax = pool

    async def main():
        with ax.asyncio_bridge():
            r1 = ax.submit(lambda: 'x')
            r2 = ax.submit(threading.get_ident)
            other = asyncio.create_task(asyncio.sleep(0.01, 'y'))
            v = await r1
            await r2
            return v, await other
    assert asyncio.run(main()) == ('x', 'y')


def test_await_without_bridge(pool):
    ax = pool

    async def main():
        await ax.submit(int)
    with pytest.raises(RuntimeError):
        asyncio.run(main())
    ax.flush()


def test_bridge_callback_exception_to_handler(ax):
    errors = []

    def boom():
        raise ValueError('cb')

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda l, c: errors.append(c))
        with ax.asyncio_bridge():
            h = ax.current_context()
            h.call_soon(boom)
            for _ in range(100):
                if errors:
                    break
                await asyncio.sleep(0.01)
            h.close()
    asyncio.run(main())
    assert isinstance(errors[0]['exception'], ValueError)
