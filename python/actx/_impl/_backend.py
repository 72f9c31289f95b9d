"""The one seam between the API modules and the two bindings.

INTERFACE below is the whole backend interface, written once: each name
the API modules call (as ``B.name``) with the C it stands for.  A backend
module (_backend_cffi, _backend_swig) is the extension's functions under
these names: the entries whose C is a plain libactx function (PLAIN) come
straight from the extension (no Python frame between the API and C); the
others the backend module defines itself (pointers, opaque objects, the
coalesced call queue).  load() imports exactly one backend and checks it
against INTERFACE; the API modules (_context, _loop, _bh, _timers, _fds,
_request, _handle, _bridge) read ``B`` from here when they are imported.

Conventions every backend keeps: a pointer is an opaque Python value
(hashable; ctx_key() gives the same key for the same context); a call
that makes an object raises OSError(errno) when C returns NULL; int
results are C's (negative errno on failure).
"""
import importlib
import importlib.util
import sys

# name: (C, plain) - plain: the libactx function of that name, as is.
INTERFACE = {
    # context stack
    'push': ('int actx_push(void)', True),
    'pop': ('int actx_pop(void)', True),
    'context_id': ('int actx_context_id(void)', True),
    'push_deadline': ('int actx_push_deadline(uint64_t deadline_ns)', True),
    'deadline': ('uint64_t actx_deadline(void)', True),
    'cancel_context': ('int actx_cancel_context(void), GIL released',
                       True),
    # running the loop
    'poll_nb': ('int actx_poll(false)', False),
    'poll_block': ('int actx_py_poll_block(void), GIL released', True),
    'poll_timeout': ('int actx_poll_timeout(int64_t ns), GIL released',
                     True),
    'process_queue': ('int actx_process_queue(void)', True),
    'flush': ('int actx_flush(void), GIL released', True),
    'flush_slice': ('int actx_py_flush_slice(int ms), GIL released', True),
    'can_progress': ('bool actx_can_progress(void)', True),
    'backend_fd': ('int actx_backend_fd(void)', True),
    'backend_timeout_ms': ('int actx_backend_timeout_ms(void)', True),
    'thread_shutdown': ('void actx_thread_shutdown(void), GIL released',
                        True),
    'pool_set_size': ('int actx_pool_set_size(int n)', True),
    'set_poll_max_ns': ('int actx_set_poll_max_ns(int64_t ns)', True),
    'now_ns': ('uint64_t actx_now_ns(void)', True),
    'stop': ('int actx_stop(actx_ctx *ctx)', True),
    'set_exiting': ('void actx_py_set_exiting(void)', True),
    'version_string': ('str actx_version_string(void)', False),
    'strerror': ('str actx_strerror(int err)', False),
    'stats': ('dict of struct actx_stats (actx_stats)', False),
    # bottom halves
    'bh_new': ('actx_bh *actx_py_bh_new((fn, args)) -> (bh, keep)', False),
    'bh_schedule': ('void actx_bh_schedule(actx_bh *bh)', True),
    'bh_schedule_idle': ('void actx_bh_schedule_idle(actx_bh *bh)', True),
    'bh_cancel': ('void actx_bh_cancel(actx_bh *bh)', True),
    'bh_delete': ('void actx_bh_delete(actx_bh *bh)', True),
    'bh_scheduled': ('bool actx_bh_scheduled(actx_bh *bh)', True),
    # timers (one C timer per context, firing (fn, ()))
    'timer_new': ('actx_timer *actx_py_timer_new((fn, ())) -> (t, keep)',
                  False),
    'timer_mod': ('void actx_timer_mod(actx_timer *t, uint64_t ns)', True),
    'timer_del': ('void actx_timer_del(actx_timer *t)', True),
    'timer_free': ('void actx_timer_free(actx_timer *t)', True),
    # fd handlers
    'fd_opaque': ('what C holds for an fd entry (kept by the entry)', False),
    'set_fd': ('int actx_py_set_fd(int fd, opaque, int rd, int wr)', True),
    # requests (the request object is held until done or refused)
    'submit': ('actx_req *actx_py_submit(request)', False),
    'pread': ('actx_req *actx_py_pread(fd, bytearray, off, request)',
              False),
    'pwrite': ('actx_req *actx_py_pwrite(fd, bytes, off, request)', False),
    'fsync': ('actx_req *actx_py_fsync(fd, request)', False),
    'req_cancel': ('int actx_req_cancel(actx_req *req)', True),
    'req_new': ('actx_req *actx_py_req_new(request)', False),
    'req_complete': ('int actx_req_complete(actx_req *req, long ret)',
                     True),
    # contexts across threads
    'ctx_current': ('actx_ctx *actx_ctx_current(void)', True),
    'ctx_unref': ('void actx_ctx_unref(actx_ctx *ctx)', True),
    'ctx_id': ('int actx_ctx_id(actx_ctx *ctx)', True),
    'ctx_key': ('the identity of an actx_ctx *', False),
    'make_poster': ('a coalesced call queue on actx_ctx * '
                    '(_common.Poster: .post((fn, args, cx)) -> int, .dq, '
                    '.word, .kick(call), .close(); actx_py_q_*)', False),
}

NAMES = ('cffi', 'swig')
# The modules each backend needs (its extension; cffi's runtime module).
NEEDS = {'cffi': (__package__ + '._actx_cffi', '_cffi_backend'),
         'swig': (__package__ + '._actx_swig',)}


def c_name(name):
    """The C function of a plain entry."""
    return INTERFACE[name][0].split('(')[0].split()[-1].lstrip('*')


def load(name):
    """Import backend name (the module actx._impl._backend_<name>), fill
    in its plain entries from its extension (its C attribute) and check
    that it has the whole interface."""
    if name not in NAMES:
        raise ValueError('actx backend must be one of %s, not %r' %
                         (', '.join(NAMES), name))
    mod = importlib.import_module(__package__ + '._backend_' + name)
    for n, (sig, plain) in INTERFACE.items():
        if plain and not hasattr(mod, n):
            setattr(mod, n, getattr(mod.C, c_name(n)))
    missing = [n for n in INTERFACE if not hasattr(mod, n)]
    if missing:
        raise ImportError('actx: backend %s lacks %s' % (name,
                                                        ', '.join(missing)))
    return mod


def why(name, e):
    """Why backend name failed to load with e: the module it needs that
    cannot be found (a failed `from . import` hides it), else e."""
    for m in NEEDS[name]:
        try:
            found = m in sys.modules or importlib.util.find_spec(m)
        except ImportError:
            found = False
        if not found:
            return 'No module named %r' % m
    return str(e)


B = None  # the backend in use (select())


def select(name):
    """Make backend name the one the API modules use (before they are
    imported, or before they are imported again)."""
    global B
    try:
        B = load(name)
    except ImportError as e:
        raise ImportError('actx: the %s backend cannot be loaded: %s'
                          % (name, why(name, e))) from e
    return B
