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
import sys
import threading
import warnings
import weakref

_get_running_loop = asyncio.events._get_running_loop
_get_ident = threading.get_ident


async def _loop_end(ref):
    """Started on a bridge's running loop, so that the loop knows it (its
    asyncgen hooks): when the loop shuts down (asyncio.run() and
    asyncio.Runner call loop.shutdown_asyncgens()) it closes this
    generator, and a bridge still open gives its ResourceWarning.  It
    still drives actx until the loop closes (other async generators'
    finally blocks and the rest of the shutdown may await actx work);
    then it is closed at the next actx call, bridge or thread end.
    close() finishes the generator quietly."""
    try:
        yield
    finally:
        br = ref()
        if br is not None and br._watch is not None:
            br._watch = None
            br._left_open()


class BridgeBase:
    """Drives the calling thread's actx loop from an asyncio loop running
    on the same thread (api: the backend's API module).  Exceptions from
    actx callbacks go to the asyncio loop's exception handler.  Each API
    module makes its public AsyncioBridge from these methods
    (bridge_class)."""

    def __init__(self, api, loop=None):
        self._st = None  # None: closed (or never opened)
        here = _get_running_loop()
        if loop is None:
            if here is None:
                raise RuntimeError('no running event loop: make the bridge '
                                   'in a coroutine, or pass the loop that '
                                   'will run on this thread')
            loop = here
        elif not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError('AsyncioBridge() takes an asyncio event loop, '
                            'not %s' % type(loop).__name__)
        elif loop is not here:
            if loop.is_closed():
                raise RuntimeError('the event loop is closed')
            if loop.is_running():
                raise RuntimeError('the event loop runs on another thread: '
                                   'a bridge needs a loop that runs on '
                                   'this thread')
            if here is not None:
                raise RuntimeError('another event loop runs on this thread '
                                   '(the bridge needs the one that runs '
                                   'here)')
        self._api = api
        self._loop = loop
        f = sys._getframe(1)
        while f.f_back is not None and \
                f.f_globals.get('__name__', '').partition('.')[0] == 'actx':
            f = f.f_back
        # The line that made it (the caller outside actx), for _ended().
        self._where = (f.f_code.co_filename, f.f_lineno,
                       f.f_globals.get('__name__', '?'))
        self._timer = None
        self._soon = None
        # _loop_end() once started on the running loop (None: not yet;
        # False: never, the loop was shutting down already).
        self._watch = None
        self._warned = False
        from . import _common
        self._bridges = _common.bridges
        st = api._state()
        old = self._bridges.get(st.ident)
        if old is not None and old._stale(loop):
            old._ended()
        if st.ident in self._bridges:
            raise RuntimeError('this thread already has an asyncio bridge')
        fd = api.backend_fd()
        loop.add_reader(fd, self._ready)
        # Registered only now: a refused loop leaves nothing behind.
        self._fd = fd
        self._st = st
        self._bridges[st.ident] = self
        try:
            self._arm()
            if loop is here:
                self._watch_end()
            elif self._soon is None:
                # It runs later: look (and start watching) when it starts.
                self._soon = loop.call_soon(self._ready)
        except BaseException:
            self.close()
            raise

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

    def _forked(self):
        """In a fork() child: the bridge is its parent's, and its loop's
        selector is shared with the parent (see _common._after_fork_child):
        it is closed here without a call on its loop and without a
        warning, as if the child had never had it."""
        self._st = None
        self._warned = True
        self._timer = self._soon = None
        ag = self._watch
        if ag:
            # Finished here, as close() does: a generator dropped unfinished
            # would go to its loop's finalizer hook, which writes the
            # loop's self-pipe, also the parent's.
            self._watch = None
            try:
                ag.aclose().send(None)
            except StopIteration:
                pass
        self._watch = None

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
                self._ended()  # its loop ended without closing it
                return
            self._soon = self._loop.call_soon(self._ready)

    def _watch_end(self):
        """Start _loop_end() on the running loop (its asyncgen hooks)."""
        if getattr(self._loop, '_asyncgens_shutdown_called', False):
            self._watch = False  # the loop is shutting down already
            return
        ag = _loop_end(weakref.ref(self))
        try:
            ag.asend(None).send(None)
        except StopIteration:
            pass  # at its yield
        self._watch = ag

    def _ended(self):
        """Its loop ended (or its thread) with the bridge open: close it,
        with a ResourceWarning unless given already."""
        if self._st is None:
            return
        self.close()
        self._left_open()

    def _left_open(self):
        """The ResourceWarning, once, at the line that made the bridge."""
        if self._warned:
            return
        self._warned = True
        filename, lineno, module = self._where
        try:
            warnings.warn_explicit(
                'an actx asyncio bridge was not closed before its loop '
                'ended', ResourceWarning, filename, lineno, module)
        except Warning as w:
            # -W error: reported as Python reports a ResourceWarning
            # raised in __del__, not raised into an unrelated caller.
            from . import _common
            _common._unraisable(w, 'AsyncioBridge')

    def _ready(self):
        self._soon = None
        st = self._st
        if st is None:
            return
        if self._watch is None:
            if _get_ident() != st.ident:
                # A loop given before it ran, run on another thread.
                self.close()
                self._loop.call_exception_handler({
                    'message': 'actx asyncio bridge closed',
                    'exception': RuntimeError(
                        'the bridge\'s event loop runs on another thread '
                        'than the bridge\'s: a bridge needs a loop that '
                        'runs on its thread'),
                })
                return
            self._watch_end()
        # Every exception a callback raises in this poll reaches the
        # loop's handler, in order (_common.store_exception keeps the
        # ones after the first in more).
        api = self._api
        more, prev = api.collect_exceptions(st.ident)
        try:
            try:
                api.poll(False)
            except (SystemExit, KeyboardInterrupt):
                # The handler first gets what was raised before it.
                from . import _common
                for e in _common.take_before(st.ident):
                    self._handle(e)
                self._arm()
                raise
            except BaseException as e:
                self._handle(e)
            while more:
                e = more.pop(0)
                if isinstance(e, (SystemExit, KeyboardInterrupt)):
                    self._arm()
                    raise e
                self._handle(e)
        finally:
            api.end_collect(st.ident, more, prev)
        self._arm()

    def _handle(self, e):
        self._loop.call_exception_handler({
            'message': 'exception in an actx callback',
            'exception': e,
        })

    def close(self):
        """Stop driving the actx loop.  Idempotent; also happens (with a
        ResourceWarning) when its asyncio loop ends with the bridge
        open."""
        if self._st is None:
            return
        self._detach()
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        self._bridges.pop(self._st.ident, None)
        self._st = None
        ag = self._watch
        if ag:
            self._watch = None  # _loop_end() finishes quietly
            try:
                ag.aclose().send(None)
            except StopIteration:
                pass

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
