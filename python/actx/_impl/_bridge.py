"""The asyncio bridge."""

from . import _asyncio
from . import _loop

__all__ = ['AsyncioBridge', 'asyncio_bridge']

# --------------------------------------------------------------------------
# asyncio

AsyncioBridge = _asyncio.bridge_class(_loop, """\
``AsyncioBridge(loop=None)``: drive the calling thread's actx loop (its
current context) from the asyncio event loop ``loop`` running on this
thread, so that actx callbacks run and coroutines can ``await`` actx
Requests (or ``asyncio.wrap_future(request)``).  ``loop`` defaults to
the running one (RuntimeError without one, as
asyncio.get_running_loop()); a loop not running yet is accepted and must
then run on this thread.  A loop running on another thread, a closed
loop, or another loop than the one running here: RuntimeError; not an
event loop: TypeError (nothing changes).  One bridge per thread;
close() it, or use it with ``with`` or ``async with``.  A bridge left
open ends with its asyncio loop, and gives a ResourceWarning when the
loop shuts down (asyncio.run()), else when the next bridge starts on the
thread, the thread ends or the interpreter exits.  Every exception from
actx callbacks goes to the asyncio loop's exception handler, in order
(KeyboardInterrupt and SystemExit propagate).""")


def asyncio_bridge(loop=None) -> AsyncioBridge:
    """Same as AsyncioBridge(loop)."""
    return AsyncioBridge(loop)
