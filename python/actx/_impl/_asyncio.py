"""actx inside asyncio: the embedding protocol of actx_backend_fd().

asyncio watches the runtime's backend fd (add_reader); whenever it is
readable, or the runtime's timeout (idle BHs, timers) passes, or the
runtime said there is work right now, the bridge runs one non-blocking
poll of the current actx context and re-arms.  Re-arming calls
backend_timeout_ms(), which tells the runtime that its owner is about to
sleep in someone else's loop, so every cross-thread post writes the
eventfd and wakes asyncio.
"""
import asyncio
import warnings


class BridgeBase:
    """Drives the calling thread's actx loop from an asyncio loop running
    on the same thread (api: the backend's API module).  Exceptions from
    actx callbacks go to the asyncio loop's exception handler.  Each API
    module makes its public AsyncioBridge from these methods
    (bridge_class)."""

    def __init__(self, api, loop=None):
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = asyncio.get_event_loop()
        self._api = api
        self._loop = loop
        self._timer = None
        self._soon = None
        from . import _common
        self._bridges = _common.bridges
        st = api._state()
        old = self._bridges.get(st.ident)
        if old is not None and old._stale(loop):
            old.close()
            try:
                warnings.warn('an actx asyncio bridge was not closed before '
                              'its loop ended; closed now', ResourceWarning,
                              stacklevel=3)
            except Warning as w:
                # -W error: reported as Python reports a ResourceWarning
                # raised in __del__, not raised into the new bridge's caller.
                _common._unraisable(w, 'AsyncioBridge')

        if st.ident in self._bridges:
            raise RuntimeError('this thread already has an asyncio bridge')
        self._bridges[st.ident] = self
        self._st = st
        self._fd = api.backend_fd()
        loop.add_reader(self._fd, self._ready)
        self._arm()

    def _arm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        t = self._api.backend_timeout_ms()
        if t == 0:
            if self._soon is None:
                self._soon = self._loop.call_soon(self._ready)
        elif t > 0:
            self._timer = self._loop.call_later(t / 1000.0, self._ready)

    def _detach(self):
        """Stop watching the fd and the timeout (close(); before this
        thread's runtime shuts down, thread_shutdown(), while the number is
        still the loop's)."""
        if self._st is None:
            return
        if not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _reattach(self):
        """After thread_shutdown(): the thread's next loop is made now, and
        the bridge watches its fd (a new number, or the old number reused by
        another file) from here on."""
        if self._st is None or self._loop.is_closed():
            self.close()
            return
        self._st = self._api._state()
        self._fd = self._api.backend_fd()
        self._loop.add_reader(self._fd, self._ready)
        self._arm()

    def _stale(self, loop):
        """Its loop ended (closed, or another loop runs on the thread
        while it does not): the bridge ends with it."""
        mine = self._loop
        return mine.is_closed() or (mine is not loop and
                                    not mine.is_running())

    def _kick(self):
        # Work was made on this thread (no eventfd write): look soon.
        if self._soon is None and self._st is not None:
            if self._loop.is_closed():
                self.close()  # its loop ended without closing it
                return
            self._soon = self._loop.call_soon(self._ready)

    def _ready(self):
        self._soon = None
        if self._st is None:
            return
        try:
            self._api.poll(False)
        except (SystemExit, KeyboardInterrupt):
            self._arm()
            raise
        except BaseException as e:
            self._loop.call_exception_handler({
                'message': 'exception in an actx callback',
                'exception': e,
            })
        self._arm()

    def close(self):
        """Stop driving the actx loop.  Idempotent; also happens when its
        asyncio loop has closed and another bridge starts on the thread."""
        if self._st is None:
            return
        self._detach()
        if self._soon is not None:
            self._soon.cancel()
        self._bridges.pop(self._st.ident, None)
        self._st = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        return False

    async def wait(self, req):
        """Await an actx Request (same as ``await req``)."""
        return await req


def bridge_class(api, doc):
    """The public AsyncioBridge of one API module: BridgeBase's methods,
    constructed as AsyncioBridge(loop=None), with no internal base class
    (help() shows it as actx.AsyncioBridge)."""
    ns = {k: v for k, v in vars(BridgeBase).items()
          if k not in ('__dict__', '__weakref__', '__doc__', '__module__',
                       '__init__')}
    base_init = BridgeBase.__init__

    def __init__(self, loop=None):
        base_init(self, api, loop)
    ns.update(__init__=__init__, __doc__=doc, __module__='actx',
              __qualname__='AsyncioBridge')
    from . import _common
    return _common.loop_bound(type('AsyncioBridge', (), ns))
