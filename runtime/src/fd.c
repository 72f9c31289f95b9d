/*
 * fd.c - fd handlers: level-triggered read/write callbacks on pollable fds,
 * run only while the context they belong to is current; and the epoll sets
 * the loop waits on.
 *
 * One epoll set per context that has fd handlers.  A wait of the loop
 * (actx__fd_wait) looks only at the set of the current context, so an
 * outer context's fd that turns ready during a nested wait is simply not
 * in the set being waited on: it costs nothing, then or at the pop, and
 * level-triggered epoll reports it again once its context waits again.
 * Every set also holds the loop-wide registrations (the mailbox's eventfd,
 * the io_uring's fd: see actx__fd_loopwide_add), so a wait in any context
 * wakes for cross-thread posts and ring completions.
 *
 *   root         the loop's base set: root's handlers + loop-wide
 *   nested ctx   its own set, taken at its first registration from the
 *                loop's spare sets (or created: the only epoll_create),
 *                given back empty at its pop
 *   no handlers  a nested context without a set of its own waits on the
 *                loop's empty set (loop-wide registrations only)
 *
 * Why this and not the alternatives (measured and argued in
 * docs/nested-waits.md): taking ready outer fds out of the one set and
 * putting them back at the pop (what actx did before) costs two epoll_ctl
 * per ready outer fd per nested wait; EPOLLONESHOT costs an epoll_ctl per
 * event in every context, nested or not; nesting the outer sets into the
 * inner one needs a second wait to harvest them.  Per-context sets cost
 * system calls only for what the nested context itself registers.
 *
 * Pop.  The child's set moves to the parent in O(1) when the parent has no
 * set; otherwise each of the child's own handlers is moved (ADD to the
 * parent's set, then DEL from the child's: two epoll_ctl per handler the
 * child registered, nothing for anyone else's) and the emptied set goes
 * back to the spares.  A move that fails for lack of kernel memory
 * (ENOMEM, ENOSPC) leaves the handler in the old set, "deferred": it is
 * kept (counted in fd_errors, reported) and the move is retried at most
 * every RETRY_NS at the polls of its context, whose sleeps are bounded
 * meanwhile; after RETRY_MAX failed tries the handler is removed with an
 * error through the log handler, rather than polling for ever.
 *
 * Registrations live in a hash table keyed by fd number (memory follows
 * the registered fds, not their numbers).  Each has a key, (generation <<
 * 32 | fd), that is its epoll data; an event is looked up by fd number and
 * ignored unless the generation matches, so registrations are freed at
 * once when removed (also from inside their own handler) and a stale event
 * can never reach freed memory or a newer registration.
 *
 * Counting: a registration holds one objs count on the context it names
 * (f->ctx, resolved lazily with actx__obj_ctx) and adds 1 to the npending
 * of the context it resolves to.  It is always in the set of the context
 * it resolves to (or deferred).
 *
 * Events: a wait hands loop-wide events to their handlers at once (the
 * eventfd is read there) and keeps the others (the "stash", emptied as
 * each wait begins: only the latest wait's events are current, and only
 * for the set it waited on); the actx__fd_poll that follows in the same
 * poll call dispatches them without another syscall.  A stash is fresh
 * only until that call returns: one that returns without dispatching it
 * (a timeout, a signal, a deadline) drops it (actx__fd_stash_drop), or
 * the next call would trust a stash older than the fds that are ready
 * now and skip its look at them.  Without a fresh stash of the current
 * context's set (a non-blocking poll) actx__fd_poll waits with a zero
 * timeout.  Dispatch works on a local copy, so a handler may poll
 * recursively.  Dispatch stops when a handler leaves another context
 * current (actx__pass_ends); the events not dispatched are dropped, and
 * level-triggered epoll reports those fds again at the first wait of
 * their context once it is current.
 *
 * Embedding.  actx_backend_fd() is one more epoll set, made at its first
 * call, whose only member is the set of the current context; it follows
 * the current context when the embedder declares a wait
 * (actx_backend_timeout_ms), so an embedder is woken by what can run now
 * and never spins on an outer context's ready fd.  The member is never a
 * spare: when a pop gives the child's set back, the membership goes with
 * the child's handlers to the parent's set (the current context's from
 * then on).  A set leaves the embed set while its epfd is still open
 * (rebuild, loop close), so the member never names a closed number or
 * freed memory.  The embed set belongs to the thread, not the loop
 * (tls_embed_fd): a loop created after actx_thread_shutdown() adopts it,
 * so a host loop that watches the fd follows the new loop (GLib, libuv: a
 * number closed under them could be reused by any file).  Between loops
 * it has no member and is never readable; thread exit closes it
 * (actx__fd_embed_release).
 *
 * Closed fds.  Closing an fd removes it from epoll only when no dup keeps
 * the open file alive; actx finds out when epoll_ctl fails (EBADF, or
 * ENOENT/EPERM when the number now names another file): the handler is
 * removed and loop->st.fd_errors counted.  If a dup kept the file alive,
 * its registration can no longer be removed by fd number and would keep
 * reporting stale events; the set is rebuilt (a new epoll set with the
 * registrations that should be in it).  Closing an fd and opening another
 * with the same number while the handler stays registered is undetectable
 * in general (as in libuv and GLib): remove handlers before closing their
 * fds.  Registering the number again re-arms it whatever the events.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define STASH_MAX 64 /* events taken per wait */
#define RETRY_NS (10 * 1000 * 1000ULL)
#define RETRY_MAX 100

typedef struct fdset fdset;

struct actx__fd {
    int fd;
    uint32_t gen;
    uint32_t ev;   /* EPOLLIN | EPOLLOUT as wanted */
    bool loopwide; /* in every set; on_read runs as its events arrive */
    bool deferred; /* left in an old set: a move failed (retried) */
    int tries;     /* failed moves, while deferred */
    uint64_t retry_at;
    actx_fn *on_read, *on_write;
    void *opaque;
    actx_ctx *ctx;             /* user fds: holds one objs count */
    fdset *set;                /* user fds: the set it is in */
    actx__fd *snext, **spprev; /* the set's list */
    actx__fd *dnext;           /* the deferred list */
    actx__fd *lwnext;          /* the loop-wide list */
};

struct fdset {
    int epfd;
    long nfds; /* user registrations in it */
    actx__fd *fds;
    bool owned;     /* a context's (or the base set) */
    bool lingering; /* may hold a registration that outlived its fd */
    fdset *next;    /* every set of the loop */
    fdset *spare_next;
};

typedef struct fd_event {
    uint64_t key;
    uint32_t events;
} fd_event;

typedef struct fdtab {
    actx__fd **slot; /* open addressing, linear probing, by fd number */
    unsigned cap, n, shift;
    uint32_t gen;
    fdset base;
    fdset *empty;   /* loop-wide registrations only */
    fdset *sets;    /* every set but base */
    fdset *spares;  /* empty, unowned */
    bool lingering; /* some set is (settle rebuilds it) */
    actx__fd *loopwide;
    actx__fd *deferred;
    int embed_fd; /* actx_backend_fd(), or -1 */
    fdset *embed_member;
    bool stash_fresh;
    fdset *stash_set; /* the set the stash came from */
    int nstash;
    fd_event stash[STASH_MAX];
} fdtab;

static inline uint64_t fd_key(const actx__fd *f)
{
    return (uint64_t)f->gen << 32 | (uint32_t)f->fd;
}

/* ------------------------------------------------------------------------ */
/* The registration table.                                                   */

static inline unsigned hslot(const fdtab *tab, int fd)
{
    return (unsigned)(((uint32_t)fd * 0x9E3779B1u) >> tab->shift);
}

static actx__fd *lookup_fd(const fdtab *tab, int fd)
{
    unsigned mask = tab->cap - 1, i = hslot(tab, fd);
    actx__fd *f;

    while ((f = tab->slot[i]) != NULL) {
        if (f->fd == fd) {
            return f;
        }
        i = (i + 1) & mask;
    }
    return NULL;
}

static inline actx__fd *lookup(const fdtab *tab, uint64_t key)
{
    actx__fd *f = lookup_fd(tab, (int)(uint32_t)key);

    return f && f->gen == (uint32_t)(key >> 32) ? f : NULL;
}

static int tab_resize(fdtab *tab, unsigned cap)
{
    actx__fd **old = tab->slot;
    unsigned oldcap = tab->cap, i, bits = 0;

    while ((1u << bits) < cap) {
        bits++;
    }
    tab->slot = calloc(cap, sizeof(*tab->slot));
    if (!tab->slot) {
        tab->slot = old;
        return -ENOMEM;
    }
    tab->cap = cap;
    tab->shift = 32 - bits;
    for (i = 0; i < oldcap; i++) {
        if (old[i]) {
            unsigned j = hslot(tab, old[i]->fd);

            while (tab->slot[j]) {
                j = (j + 1) & (cap - 1);
            }
            tab->slot[j] = old[i];
        }
    }
    free(old);
    return 0;
}

/* Room for one more (load factor at most 1/2). */
static int tab_reserve(fdtab *tab)
{
    if ((tab->n + 1) * 2 <= tab->cap) {
        return 0;
    }
    if (tab->cap >= (1u << 30)) {
        return -ENOMEM;
    }
    return tab_resize(tab, tab->cap * 2);
}

static void tab_insert(fdtab *tab, actx__fd *f)
{
    unsigned i = hslot(tab, f->fd);

    while (tab->slot[i]) {
        i = (i + 1) & (tab->cap - 1);
    }
    tab->slot[i] = f;
    tab->n++;
}

/* Backward-shift deletion: no tombstones, lookups stay short. */
static void tab_delete(fdtab *tab, actx__fd *f)
{
    unsigned mask = tab->cap - 1, i = hslot(tab, f->fd), j;

    while (tab->slot[i] != f) {
        i = (i + 1) & mask;
    }
    tab->slot[i] = NULL;
    tab->n--;
    for (j = (i + 1) & mask; tab->slot[j]; j = (j + 1) & mask) {
        unsigned h = hslot(tab, tab->slot[j]->fd);

        /* Move slot j back to i unless its home lies in (i, j]. */
        if (((j - h) & mask) >= ((j - i) & mask)) {
            tab->slot[i] = tab->slot[j];
            tab->slot[j] = NULL;
            i = j;
        }
    }
}

static uint32_t next_gen(fdtab *tab)
{
    if (++tab->gen == 0) {
        tab->gen = 1;
    }
    return tab->gen;
}

/* ------------------------------------------------------------------------ */
/* Sets.                                                                     */

static void set_link(fdset *s, actx__fd *f)
{
    f->set = s;
    f->snext = s->fds;
    if (s->fds) {
        s->fds->spprev = &f->snext;
    }
    f->spprev = &s->fds;
    s->fds = f;
    s->nfds++;
}

static void set_unlink(actx__fd *f)
{
    *f->spprev = f->snext;
    if (f->snext) {
        f->snext->spprev = f->spprev;
    }
    f->set->nfds--;
    f->set = NULL;
}

static int set_add(fdset *s, actx__fd *f)
{
    return actx__backend_ctl(s->epfd, EPOLL_CTL_ADD, f->fd, f->ev, fd_key(f));
}

/* A new set holding the loop-wide registrations. */
static fdset *set_new(fdtab *tab, int *err)
{
    fdset *s = calloc(1, sizeof(*s));
    actx__fd *lw;

    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->epfd = actx__backend_new();
    if (s->epfd < 0) {
        *err = s->epfd;
        free(s);
        return NULL;
    }
    for (lw = tab->loopwide; lw; lw = lw->lwnext) {
        *err = set_add(s, lw);
        if (*err < 0) {
            actx__own_close(s->epfd);
            free(s);
            return NULL;
        }
    }
    s->next = tab->sets;
    tab->sets = s;
    return s;
}

/* A set for a context that registers its first handler. */
static fdset *set_get(fdtab *tab, int *err)
{
    fdset *s = tab->spares;

    if (s) {
        tab->spares = s->spare_next;
        s->spare_next = NULL;
    } else {
        s = set_new(tab, err);
    }
    if (s) {
        s->owned = true;
    }
    return s;
}

/* s lost its owner or its last handler: back to the spares when empty. */
static void set_put(fdtab *tab, fdset *s)
{
    if (!s->owned && s->nfds == 0 && s != &tab->base) {
        s->spare_next = tab->spares;
        tab->spares = s;
    }
}

/* The set c's handlers live in, made if needed; NULL and *err on failure. */
static fdset *ctx_set(fdtab *tab, actx_ctx *c, int *err)
{
    fdset *s;

    if (c->depth == 0) {
        return &tab->base;
    }
    if (c->fdset) {
        return c->fdset;
    }
    s = set_get(tab, err);
    c->fdset = s;
    return s;
}

/* The set a wait in c looks at. */
static inline fdset *wait_set(fdtab *tab, actx_ctx *c)
{
    if (c->fdset) {
        return c->fdset;
    }
    return c->depth == 0 || !tab->empty ? &tab->base : tab->empty;
}

/* The embed set loses its member (see "Embedding" above). */
static void embed_leave(fdtab *tab)
{
    if (tab->embed_member) {
        /* Before the member's epfd is closed: the number is still its. */
        actx__backend_ctl(tab->embed_fd, EPOLL_CTL_DEL, tab->embed_member->epfd,
                          0, 0);
        tab->embed_member = NULL;
    }
}

/* s becomes the embed set's only member; func names the caller if not. */
static void embed_follow(fdtab *tab, fdset *s, const char *func)
{
    if (tab->embed_member == s) {
        return;
    }
    embed_leave(tab);
    if (actx__backend_ctl(tab->embed_fd, EPOLL_CTL_ADD, s->epfd, EPOLLIN, 0) ==
        0) {
        tab->embed_member = s;
    } else {
        /* The next declared wait tries again. */
        actx__misuse(func, "epoll_ctl failed: the backend fd may not wake");
    }
}

/* ------------------------------------------------------------------------ */
/* Registrations.                                                            */

/* s may hold a registration that outlived its fd: settle rebuilds it. */
static void mark_lingering(fdtab *tab, fdset *s)
{
    s->lingering = true;
    tab->lingering = true;
}

/* epoll_ctl said the fd is gone (err < 0 from an ADD/MOD/DEL). */
static void note_closed(actx__loop *loop, fdset *s, int err)
{
    loop->st.fd_errors++;
    if (err == -EBADF) {
        /* A dup may keep the file, and so the registration, alive. */
        mark_lingering(loop->fdtab, s);
    }
}

static bool is_closed_err(int err)
{
    return err == -EBADF || err == -ENOENT || err == -EPERM;
}

static void deferred_unlink(actx__loop *loop, fdtab *tab, actx__fd *f)
{
    actx__fd **pp = &tab->deferred;

    while (*pp != f) {
        pp = &(*pp)->dnext;
    }
    *pp = f->dnext;
    f->deferred = false;
    loop->fd_deferred--;
}

/* Drop a registration; the caller has dealt with epoll. */
static void fd_free(actx__loop *loop, fdtab *tab, actx__fd *f)
{
    fdset *s = f->set;

    if (f->deferred) {
        deferred_unlink(loop, tab, f);
    }
    set_unlink(f);
    set_put(tab, s);
    tab_delete(tab, f);
    actx__ctx_resolve(f->ctx)->npending--;
    actx__obj_put(loop, f->ctx);
    loop->nfds--;
    free(f);
}

/* Remove a registration, deleting it from its set. */
static void fd_remove(actx__loop *loop, fdtab *tab, actx__fd *f)
{
    int err = actx__backend_ctl(f->set->epfd, EPOLL_CTL_DEL, f->fd, 0, 0);

    if (err < 0) {
        note_closed(loop, f->set, err);
    }
    fd_free(loop, tab, f);
}

/* epoll_ctl on f failed as for a closed fd: drop it (no DEL: it failed). */
static void fd_drop_closed(actx__loop *loop, fdtab *tab, actx__fd *f, int err)
{
    note_closed(loop, f->set, err);
    fd_free(loop, tab, f);
}

/*
 * Change f's events in its set: MOD, or when the number now names a file
 * the set does not know (the registered one was closed), a new key and an
 * ADD (a dup of the old file may still report under the old key: the set
 * is rebuilt).
 */
static int fd_rearm(actx__loop *loop, fdtab *tab, actx__fd *f)
{
    fdset *s = f->set;
    int err;

    err = actx__backend_ctl(s->epfd, EPOLL_CTL_MOD, f->fd, f->ev, fd_key(f));
    if (err != -ENOENT) {
        return err;
    }
    mark_lingering(tab, s);
    tab_delete(tab, f);
    f->gen = next_gen(tab);
    tab_insert(tab, f);
    err = set_add(s, f);
    if (err == 0) {
        loop->st.fd_errors++; /* the old file was closed under us */
    }
    return err;
}

/*
 * Move f (user fd) from its set to dst: ADD there, then DEL from the old
 * one.  0, or the ADD's error with f where it was.
 */
static int fd_move(actx__loop *loop, fdtab *tab, actx__fd *f, fdset *dst)
{
    fdset *src = f->set;
    int err = set_add(dst, f);

    if (err == -EEXIST) {
        err = actx__backend_ctl(dst->epfd, EPOLL_CTL_MOD, f->fd, f->ev,
                                fd_key(f));
    }
    if (err < 0) {
        return err;
    }
    if (actx__backend_ctl(src->epfd, EPOLL_CTL_DEL, f->fd, 0, 0) < 0) {
        mark_lingering(tab, src); /* what is left there is rebuilt away */
    }
    if (f->deferred) {
        deferred_unlink(loop, tab, f);
    }
    set_unlink(f);
    set_link(dst, f);
    set_put(tab, src);
    return 0;
}

/* A set that may hold a dead registration: replace it with a clean one. */
static void rebuild(actx__loop *loop, fdtab *tab, fdset *s)
{
    int epfd = actx__backend_new();
    actx__fd *f, *next;

    if (epfd < 0) {
        return; /* keep trying at the next settle */
    }
    if (tab->embed_member == s) {
        embed_leave(tab); /* the next declared wait adds the new epfd */
    }
    actx__own_close(s->epfd);
    s->epfd = epfd;
    for (f = tab->loopwide; f; f = f->lwnext) {
        if (set_add(s, f) < 0) {
            actx__misuse("actx_poll", "epoll_ctl failed re-adding the "
                                      "loop's own fds to a rebuilt set");
        }
    }
    s->lingering = false;
    for (f = s->fds; f; f = next) {
        next = f->snext;
        if (set_add(s, f) < 0) {
            /* Closed too; not in the new set, so nothing lingers. */
            loop->st.fd_errors++;
            fd_free(loop, tab, f);
        }
    }
}

/*
 * After any epoll change: drop registrations that may outlive their fd.
 * One flag test unless a set was marked (not a walk of the sets per poll).
 */
static void settle_slow(actx__loop *loop, fdtab *tab)
{
    fdset *s;

    tab->lingering = false;
    if (tab->base.lingering) {
        rebuild(loop, tab, &tab->base);
    }
    for (s = tab->sets; s; s = s->next) {
        if (s->lingering) {
            rebuild(loop, tab, s);
        }
    }
    /* A rebuild that could not make its new set keeps its mark. */
    for (s = tab->sets; s && !tab->lingering; s = s->next) {
        tab->lingering = s->lingering;
    }
    tab->lingering = tab->lingering || tab->base.lingering;
}

static inline void settle(actx__loop *loop, fdtab *tab)
{
    if (ACTX__UNLIKELY(tab->lingering)) {
        settle_slow(loop, tab);
    }
}

/* Is fd one of the loop's own (a set, the embed set, a loop-wide fd)? */
static bool own_fd(fdtab *tab, int fd)
{
    fdset *s;
    actx__fd *f;

    if (fd == tab->base.epfd || fd == tab->embed_fd) {
        return true;
    }
    for (s = tab->sets; s; s = s->next) {
        if (fd == s->epfd) {
            return true;
        }
    }
    for (f = tab->loopwide; f; f = f->lwnext) {
        if (fd == f->fd) {
            return true;
        }
    }
    return false;
}

/* A new registration of fd for the current context, in *out. */
static int fd_new(actx__loop *loop, fdtab *tab, int fd, uint32_t ev,
                  actx__fd **out)
{
    actx_ctx *cur = loop->cur;
    actx__fd *f;
    fdset *s;
    int err = 0;

    if ((!tab->empty || (cur->depth != 0 && !cur->fdset)) &&
        fcntl(fd, F_GETFD) < 0) {
        /* Before a new set could take this number for its own. */
        return -EBADF;
    }
    if (!tab->empty) {
        /* Nested contexts without handlers of their own wait there. */
        tab->empty = set_new(tab, &err);
        if (!tab->empty) {
            return err;
        }
        tab->empty->owned = true;
    }
    s = ctx_set(tab, cur, &err);
    if (!s) {
        return err;
    }
    if (tab_reserve(tab) < 0 || !(f = calloc(1, sizeof(*f)))) {
        return -ENOMEM;
    }
    f->fd = fd;
    f->gen = next_gen(tab);
    f->ev = ev;
    err = set_add(s, f);
    if (err < 0) {
        free(f);
        return err; /* EBADF, EPERM (not pollable), ENOMEM, ENOSPC */
    }
    if (loop->nfds++ == 0) {
        /* Whatever was stashed belongs to removed registrations. */
        tab->nstash = 0;
        tab->stash_fresh = false;
    }
    tab_insert(tab, f);
    set_link(s, f);
    f->ctx = cur;
    cur->objs++;
    cur->npending++;
    *out = f;
    return 0;
}

static int set_handler(actx__loop *loop, fdtab *tab, int fd, actx_fn *on_read,
                       actx_fn *on_write, void *opaque)
{
    actx_ctx *cur = loop->cur, *old;
    uint32_t ev, old_ev;
    actx__fd *f = lookup_fd(tab, fd);
    int err;

    if (!on_read && !on_write) {
        if (f) {
            fd_remove(loop, tab, f);
        }
        return 0;
    }
    ev = (on_read ? EPOLLIN : 0) | (on_write ? EPOLLOUT : 0);
    if (!f) {
        err = fd_new(loop, tab, fd, ev, &f);
        if (err < 0) {
            return err;
        }
    } else {
        old = actx__obj_ctx(&f->ctx);
        old_ev = f->ev;
        f->ev = ev;
        if (old != cur || f->deferred) {
            fdset *dst = ctx_set(tab, cur, &err);

            err = dst ? fd_move(loop, tab, f, dst) : err;
        } else {
            /* Always re-arm: the number may name a new file by now. */
            err = fd_rearm(loop, tab, f);
        }
        if (err < 0 && !is_closed_err(err)) {
            /* ENOMEM, ENOSPC, EMFILE: the registration stays as it was. */
            f->ev = old_ev;
            return err;
        }
        if (err < 0) {
            fd_drop_closed(loop, tab, f, err);
            return -EBADF;
        }
        if (old != cur) {
            old->npending--;
            cur->npending++;
            cur->objs++;
            actx__obj_put(loop, f->ctx);
            f->ctx = cur;
        }
    }
    f->on_read = on_read;
    f->on_write = on_write;
    f->opaque = opaque;
    return 0;
}

int actx_set_fd_handler(int fd, actx_fn *on_read, actx_fn *on_write,
                        void *opaque)
{
    actx__loop *loop;
    fdtab *tab;
    int err;

    if (fd < 0) {
        return -EBADF;
    }
    loop = actx__loop_get();
    if (!loop) {
        return -errno;
    }
    tab = loop->fdtab;
    if (own_fd(tab, fd)) {
        return -EINVAL; /* the loop's own fds */
    }
    err = set_handler(loop, tab, fd, on_read, on_write, opaque);
    settle(loop, tab);
    if (err == 0) {
        /* A pollable fd: what file AIO learned of the number (a regular
         * file closed since?) is asked again (aio-pool.c). */
        actx__fd_kind_set(loop, fd, ACTX__FD_UNKNOWN);
    }
    return err;
}

/* ------------------------------------------------------------------------ */
/* Loop-wide registrations (the eventfd, the ring): in every set.            */

int actx__fd_loopwide_add(actx__loop *loop, int fd, actx_fn *on_event,
                          void *opaque)
{
    fdtab *tab = loop->fdtab;
    actx__fd *f;
    fdset *s;
    int err;

    if (tab_reserve(tab) < 0 || !(f = calloc(1, sizeof(*f)))) {
        return -ENOMEM;
    }
    f->fd = fd;
    f->gen = next_gen(tab);
    f->ev = EPOLLIN;
    f->loopwide = true;
    f->on_read = on_event;
    f->opaque = opaque;
    err = set_add(&tab->base, f);
    for (s = tab->sets; s && err == 0; s = s->next) {
        err = set_add(s, f);
    }
    if (err < 0) {
        actx__backend_ctl(tab->base.epfd, EPOLL_CTL_DEL, fd, 0, 0);
        for (s = tab->sets; s; s = s->next) {
            actx__backend_ctl(s->epfd, EPOLL_CTL_DEL, fd, 0, 0);
        }
        free(f);
        return err;
    }
    tab_insert(tab, f);
    f->lwnext = tab->loopwide;
    tab->loopwide = f;
    return 0;
}

void actx__fd_loopwide_del(actx__loop *loop, int fd)
{
    fdtab *tab = loop->fdtab;
    actx__fd **pp, *f;
    fdset *s;

    for (pp = &tab->loopwide; (f = *pp) != NULL; pp = &f->lwnext) {
        if (f->fd == fd) {
            break;
        }
    }
    if (!f) {
        return;
    }
    *pp = f->lwnext;
    tab_delete(tab, f);
    actx__backend_ctl(tab->base.epfd, EPOLL_CTL_DEL, fd, 0, 0);
    for (s = tab->sets; s; s = s->next) {
        actx__backend_ctl(s->epfd, EPOLL_CTL_DEL, fd, 0, 0);
    }
    free(f);
}

/* ------------------------------------------------------------------------ */
/* Waiting and dispatch.                                                     */

int actx__fd_wait(actx__loop *loop, int64_t timeout_ns)
{
    fdtab *tab = loop->fdtab;
    fdset *s = wait_set(tab, loop->cur);
    struct epoll_event evs[STASH_MAX];
    int n, i;

    /*
     * This wait's events replace the last: level-triggered, it reports
     * again every fd that is still ready, and dispatching the old events
     * too would call a handler whose fd another dispatch already drained.
     */
    tab->nstash = 0;
    tab->stash_fresh = false;
    n = actx__backend_wait(s->epfd, evs, STASH_MAX, timeout_ns);
    for (i = 0; i < n; i++) {
        actx__fd *f = lookup(tab, evs[i].data.u64);

        if (!f) {
            continue; /* removed since; a lingering one is rebuilt away */
        }
        if (f->loopwide) {
            if (f->on_read) {
                f->on_read(f->opaque);
            }
            continue;
        }
        tab->stash[tab->nstash].key = evs[i].data.u64;
        tab->stash[tab->nstash].events = evs[i].events;
        tab->nstash++;
    }
    if (n >= 0) {
        tab->stash_fresh = true;
        tab->stash_set = s;
    }
    return n;
}

/*
 * Did the latest wait stash events of the current context's set that no
 * actx__fd_poll has dispatched?  (poll.c's polling window waits with a
 * zero timeout and asks this: the run_pass that follows dispatches them.)
 */
bool actx__fd_stashed(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    return loop->nfds != 0 && tab->stash_fresh && tab->nstash != 0 &&
           tab->stash_set == wait_set(tab, loop->cur);
}

/* The poll call that waited returns: its stash, if left, is stale. */
void actx__fd_stash_drop(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    tab->nstash = 0;
    tab->stash_fresh = false;
}

/* Deferred handlers of c: try their move again (at most every RETRY_NS). */
static void retry_deferred(actx__loop *loop, fdtab *tab, actx_ctx *c)
{
    uint64_t now = actx_now_ns();
    actx__fd *f, *next;

    for (f = tab->deferred; f; f = next) {
        fdset *dst;
        int err = 0;

        next = f->dnext;
        if (actx__obj_ctx(&f->ctx) != c || now < f->retry_at) {
            continue;
        }
        dst = ctx_set(tab, c, &err);
        err = dst ? fd_move(loop, tab, f, dst) : err;
        if (err == 0) {
            continue;
        }
        if (is_closed_err(err)) {
            fd_drop_closed(loop, tab, f, err);
            continue;
        }
        if (++f->tries >= RETRY_MAX) {
            actx__log(ACTX_LOG_ERROR,
                      "fd %d: epoll_ctl failed %d times moving its "
                      "handler to context %d (%s): handler removed",
                      f->fd, f->tries, c->depth, actx_strerror(err));
            loop->st.fd_errors++;
            fd_remove(loop, tab, f);
            continue;
        }
        f->retry_at = now + RETRY_NS;
    }
}

int actx__fd_poll(actx__loop *loop, actx_ctx *c)
{
    fdtab *tab = loop->fdtab;
    fd_event evs[STASH_MAX];
    int n, i, progress = 0;

    if (ACTX__UNLIKELY(loop->fd_deferred != 0)) {
        retry_deferred(loop, tab, c);
    }
    if (!tab->stash_fresh || tab->stash_set != wait_set(tab, c)) {
        actx__fd_wait(loop, 0);
    }
    n = tab->nstash;
    memcpy(evs, tab->stash, (size_t)n * sizeof(evs[0]));
    tab->nstash = 0;
    tab->stash_fresh = false;

    for (i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        actx__fd *f = lookup(tab, evs[i].key);

        /* Removed, moved or re-homed away since the wait: not ours now. */
        if (!f || f->deferred || actx__obj_ctx(&f->ctx) != c) {
            continue;
        }
        if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && f->on_read) {
            progress = 1;
            f->on_read(f->opaque);
            if (actx__pass_ends(loop, c)) {
                break;
            }
            /* It may have removed, moved or re-registered itself. */
            f = lookup(tab, evs[i].key);
            if (!f || f->deferred || actx__obj_ctx(&f->ctx) != c) {
                continue;
            }
        }
        if ((e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && f->on_write) {
            progress = 1;
            f->on_write(f->opaque);
            if (actx__pass_ends(loop, c)) {
                break;
            }
        }
    }
    settle(loop, tab);
    return progress;
}

/* child is popped: its handlers go to parent (see "Pop" above). */
void actx__fd_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent)
{
    fdtab *tab = loop->fdtab;
    fdset *s = child->fdset, *dst;
    actx__fd *f, *next;

    child->fdset = NULL;
    if (parent->depth != 0 && !parent->fdset) {
        parent->fdset = s; /* O(1): the set changes hands */
        return;
    }
    s->owned = false;
    dst = parent->depth == 0 ? &tab->base : parent->fdset;
    if (tab->embed_member == s) {
        /* s goes to the spares: the backend fd follows the handlers. */
        embed_follow(tab, dst, "actx_pop");
    }
    for (f = s->fds; f; f = next) {
        int err;

        next = f->snext;
        if (f->deferred) {
            continue;
        }
        err = fd_move(loop, tab, f, dst);
        if (err == 0) {
            continue;
        }
        if (is_closed_err(err)) {
            fd_drop_closed(loop, tab, f, err);
            continue;
        }
        /* Kept where it is, retried at the parent's polls. */
        actx__misuse("actx_pop", "epoll_ctl failed moving an fd handler to "
                                 "the parent context: kept, retried");
        loop->st.fd_errors++;
        f->deferred = true;
        f->tries = 1;
        f->retry_at = actx_now_ns() + RETRY_NS;
        f->dnext = tab->deferred;
        tab->deferred = f;
        loop->fd_deferred++;
    }
    set_put(tab, s);
    settle(loop, tab);
}

/* ------------------------------------------------------------------------ */
/* Embedding: actx_backend_fd().                                             */

/* actx_backend_fd() of this thread, across its loops; -1: none yet. */
static __thread int tls_embed_fd = -1;

int actx__fd_embed_fd(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    if (tab->embed_fd < 0) {
        int fd = actx__backend_new();

        if (fd < 0) {
            return fd;
        }
        tab->embed_fd = tls_embed_fd = fd;
    }
    actx__fd_embed_sync(loop);
    return tab->embed_fd;
}

/* The embed set's member follows the current context's wait set. */
void actx__fd_embed_sync(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    if (tab->embed_fd >= 0) {
        embed_follow(tab, wait_set(tab, loop->cur), "actx_backend_timeout_ms");
    }
}

/* ------------------------------------------------------------------------ */
/* Loop life.                                                                */

int actx__fd_loop_init(actx__loop *loop)
{
    fdtab *tab = calloc(1, sizeof(*tab));
    int err;

    if (!tab) {
        return -ENOMEM;
    }
    tab->embed_fd = tls_embed_fd; /* synced at the next declared wait */
    tab->base.owned = true;
    if (tab_resize(tab, 16) < 0) {
        free(tab);
        return -ENOMEM;
    }
    tab->base.epfd = actx__backend_new();
    if (tab->base.epfd < 0) {
        err = tab->base.epfd;
        free(tab->slot);
        free(tab);
        return err;
    }
    loop->fdtab = tab;
    return 0;
}

/* The loop's user handlers go (shutdown; its sets stay until close). */
void actx__fd_loop_shutdown(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;
    unsigned i;

    for (i = 0; i < tab->cap;) {
        actx__fd *f = tab->slot[i];

        if (f && !f->loopwide) {
            fd_free(loop, tab, f); /* the sets go too */
            continue;              /* slot i may hold another one now */
        }
        i++;
    }
}

/*
 * A fork child's copy of the loop: its sets are the parent's epoll
 * instances, so no epoll_ctl; closing the child's descriptors for them
 * leaves the parent's registrations alone (the instance lives on in the
 * parent).  The user registrations' memory goes with the table.
 */
void actx__fd_loop_forget(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    if (!tab) {
        return;
    }
    for (unsigned i = 0; i < tab->cap; i++) {
        if (tab->slot[i] && !tab->slot[i]->loopwide) {
            free(tab->slot[i]);
        }
    }
    tab->embed_member = NULL; /* the embed set is the parent's too */
    actx__fd_loop_close(loop);
}

/* Thread exit, or a fork child: this thread's embed set goes. */
void actx__fd_embed_release(void)
{
    if (tls_embed_fd >= 0) {
        actx__own_close(tls_embed_fd);
        tls_embed_fd = -1;
    }
}

/* Close every set; the loop-wide fds themselves belong to others. */
void actx__fd_loop_close(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;
    actx__fd *f;
    fdset *s;

    if (!tab) {
        return;
    }
    /* The thread keeps the embed set: empty, never readable. */
    embed_leave(tab);
    while ((f = tab->loopwide) != NULL) {
        tab->loopwide = f->lwnext;
        free(f);
    }
    while ((s = tab->sets) != NULL) {
        tab->sets = s->next;
        actx__own_close(s->epfd);
        free(s);
    }
    actx__own_close(tab->base.epfd);
    free(tab->slot);
    free(tab);
    loop->fdtab = NULL;
}
