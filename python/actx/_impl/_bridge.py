"""The asyncio bridge."""

from . import _asyncio
from . import _loop

__all__ = ['AsyncioBridge', 'asyncio_bridge']

# --------------------------------------------------------------------------
# asyncio

AsyncioBridge = _asyncio.bridge_class(_loop, """\
``AsyncioBridge(loop=None)``: drive the calling thread's actx loop (its
current context) from the asyncio event loop ``loop`` (default: the
running one) running on this thread, so that actx callbacks run and
coroutines can ``await`` actx Requests (or
``asyncio.wrap_future(request)``).  One bridge per thread; close() it, or
use it with ``with`` or ``async with``.  A bridge left open ends with its
asyncio loop: the next bridge on the thread closes it (ResourceWarning).
Exceptions from actx callbacks go to the
asyncio loop's exception handler (KeyboardInterrupt and SystemExit
propagate).""")


def asyncio_bridge(loop=None) -> AsyncioBridge:
    """Same as AsyncioBridge(loop)."""
    return AsyncioBridge(loop)
