/*
 * fd.c - fd handlers: level-triggered read/write callbacks on pollable fds,
 * run only while the context they belong to is current.
 *
 * loop->fdtab is a table indexed by fd number of registrations (actx__fd),
 * created on first use.  Each registration has a key, (generation << 32 |
 * fd), that is its epoll data; an event is looked up by fd number and
 * ignored unless the generation matches, so registrations are freed at
 * once when removed (also from inside their own handler) and a stale event
 * can never reach freed memory or a newer registration.
 *
 * Counting: a registration holds one objs count on the context it names
 * (f->ctx, resolved lazily with actx__obj_ctx) and adds 1 to the npending
 * of the context it resolves to.  Re-registering from another context
 * moves both counts to the current one.
 *
 * Fds of contexts that are not current.  Disabling events is not enough
 * (EPOLLHUP/EPOLLERR are always reported), so an fd that turns out ready
 * while its context is not current is removed from the epoll set and
 * parked on that context's `parked` list; at the pop that makes the
 * context current again (actx__fd_pop) it is added back, and being
 * level-triggered it is reported again if still ready.  An outer context's
 * ready fd therefore costs one epoll_ctl, not a busy loop, while a child
 * waits.
 *
 * Events: actx__backend_wait hands each event to actx__fd_event, which
 * keeps them (the "stash", emptied as each wait begins: only the latest
 * wait's events are current), then actx__fd_waited marks it fresh; the
 * actx__fd_poll that follows dispatches it without another syscall.
 * Without a fresh stash (non-blocking poll) actx__fd_poll asks the backend
 * with a zero timeout.  Adaptive polling (poll.c) waits with a zero
 * timeout too and, when that stashed events (actx__fd_stashed), leaves
 * them fresh for the run_pass that follows.  Dispatch works on a local
 * copy, so a handler may poll recursively.
 *
 * Closed fds.  Closing an fd removes it from epoll only when no dup keeps
 * the open file alive; actx finds out when epoll_ctl fails (EBADF, or
 * ENOENT/EPERM when the number now names another file): the handler is
 * removed and loop->st.fd_errors counted.  If a dup kept the file alive,
 * its registration can no longer be removed by fd number and would keep
 * reporting stale events; the first stale event after such a failure
 * rebuilds the epoll set (same fd number, see actx__backend_rebuild).
 * Closing an fd and opening another with the same number while the
 * handler stays registered is undetectable in general (as in libuv and
 * GLib): remove handlers before closing their fds.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define STASH_MAX 64 /* backend-epoll.c's batch */

struct actx__fd {
    int fd;
    uint32_t gen;
    uint32_t ev; /* EPOLLIN | EPOLLOUT as wanted */
    bool parked;
    actx_fn *on_read, *on_write;
    void *opaque;
    actx_ctx *ctx;            /* holds one objs count */
    actx__fd *pnext, **pprev; /* the parked list, while parked */
};

typedef struct fd_event {
    uint64_t key;
    uint32_t events;
} fd_event;

typedef struct fdtab {
    actx__fd **v;
    int cap;
    uint32_t gen;
    bool stash_fresh;
    bool lingering; /* a registration may outlive its fd */
    int nstash;
    fd_event stash[STASH_MAX];
} fdtab;

static inline uint64_t fd_key(const actx__fd *f)
{
    return (uint64_t)f->gen << 32 | (uint32_t)f->fd;
}

static inline actx__fd *lookup(fdtab *tab, uint64_t key)
{
    int fd = (int)(uint32_t)key;
    actx__fd *f;

    if (fd >= tab->cap) {
        return NULL;
    }
    f = tab->v[fd];
    return f && f->gen == (uint32_t)(key >> 32) ? f : NULL;
}

static uint32_t next_gen(fdtab *tab)
{
    if (++tab->gen == 0) {
        tab->gen = 1; /* key 0 is the eventfd's */
    }
    return tab->gen;
}

static fdtab *get_tab(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    if (ACTX__UNLIKELY(!tab)) {
        tab = calloc(1, sizeof(*tab));
        loop->fdtab = tab;
    }
    return tab;
}

static int tab_reserve(fdtab *tab, int fd)
{
    actx__fd **v;
    int cap;

    if (fd < tab->cap) {
        return 0;
    }
    cap = tab->cap ? tab->cap : 64;
    while (cap <= fd) {
        cap *= 2;
    }
    v = realloc(tab->v, (size_t)cap * sizeof(*v));
    if (!v) {
        return -ENOMEM;
    }
    memset(v + tab->cap, 0, (size_t)(cap - tab->cap) * sizeof(*v));
    tab->v = v;
    tab->cap = cap;
    return 0;
}

static void park_link(actx_ctx *c, actx__fd *f)
{
    f->parked = true;
    f->pnext = c->parked;
    if (c->parked) {
        c->parked->pprev = &f->pnext;
    }
    f->pprev = &c->parked;
    c->parked = f;
}

static void park_unlink(actx__fd *f)
{
    *f->pprev = f->pnext;
    if (f->pnext) {
        f->pnext->pprev = f->pprev;
    }
    f->parked = false;
    f->pnext = NULL;
    f->pprev = NULL;
}

/* epoll_ctl said the fd is gone (err < 0 from an ADD/MOD/DEL). */
static void note_closed(actx__loop *loop, fdtab *tab, int err)
{
    loop->st.fd_errors++;
    if (err == -EBADF) {
        /* A dup may keep the file, and so the registration, alive. */
        tab->lingering = true;
    }
}

static bool is_closed_err(int err)
{
    return err == -EBADF || err == -ENOENT || err == -EPERM;
}

/* Drop a registration; the caller has dealt with epoll. */
static void fd_free(actx__loop *loop, fdtab *tab, actx__fd *f)
{
    if (f->parked) {
        park_unlink(f);
    }
    tab->v[f->fd] = NULL;
    actx__ctx_resolve(f->ctx)->npending--;
    actx__obj_put(loop, f->ctx);
    loop->nfds--;
    free(f);
}

/* Remove a registration, deleting it from epoll unless parked. */
static void fd_remove(actx__loop *loop, fdtab *tab, actx__fd *f)
{
    if (!f->parked) {
        int err = actx__backend_ctl(loop, EPOLL_CTL_DEL, f->fd, 0, 0);

        if (err < 0) {
            note_closed(loop, tab, err);
        }
    }
    fd_free(loop, tab, f);
}

/* Put f (not parked) into the epoll set with its events: ADD, or MOD. */
static int fd_arm(actx__loop *loop, fdtab *tab, actx__fd *f, bool added)
{
    int err;

    if (added) {
        err = actx__backend_ctl(loop, EPOLL_CTL_MOD, f->fd, f->ev, fd_key(f));
        if (err != -ENOENT) {
            return err;
        }
        /*
         * The number names a file epoll does not know: the registered
         * one was closed.  A dup of it may still report under the old
         * key, so take a new key and let a stale event rebuild the set.
         */
        tab->lingering = true;
        f->gen = next_gen(tab);
    }
    err = actx__backend_ctl(loop, EPOLL_CTL_ADD, f->fd, f->ev, fd_key(f));
    if (err == -EEXIST) {
        err = actx__backend_ctl(loop, EPOLL_CTL_MOD, f->fd, f->ev, fd_key(f));
    }
    if (added && err == 0) {
        loop->st.fd_errors++; /* the old file was closed under us */
    }
    return err;
}

static void rebuild(actx__loop *loop, fdtab *tab)
{
    int fd;

    if (actx__backend_rebuild(loop) < 0) {
        return; /* keep trying at the next settle */
    }
    for (fd = 0; fd < tab->cap; fd++) {
        actx__fd *f = tab->v[fd];

        if (f && !f->parked && fd_arm(loop, tab, f, false) < 0) {
            /* Closed too; not in the new set, so nothing lingers. */
            loop->st.fd_errors++;
            fd_free(loop, tab, f);
        }
    }
    tab->lingering = false;
}

/* After any epoll change: drop registrations that may outlive their fd. */
static inline void settle(actx__loop *loop, fdtab *tab)
{
    if (ACTX__UNLIKELY(tab->lingering)) {
        rebuild(loop, tab);
    }
}

static int set_handler(actx__loop *loop, fdtab *tab, int fd, actx_fn *on_read,
                       actx_fn *on_write, void *opaque)
{
    actx_ctx *cur, *old;
    actx__fd *f;
    uint32_t ev;
    int err;

    cur = loop->cur;
    f = fd < tab->cap ? tab->v[fd] : NULL;
    if (!on_read && !on_write) {
        if (f) {
            fd_remove(loop, tab, f);
        }
        return 0;
    }
    ev = (on_read ? EPOLLIN : 0) | (on_write ? EPOLLOUT : 0);

    if (!f) {
        if (tab_reserve(tab, fd) < 0 || !(f = calloc(1, sizeof(*f)))) {
            return -ENOMEM;
        }
        f->fd = fd;
        f->gen = next_gen(tab);
        f->ev = ev;
        err = fd_arm(loop, tab, f, false);
        if (err < 0) {
            free(f);
            return err; /* EBADF, EPERM (not pollable), ENOMEM... */
        }
        if (loop->nfds++ == 0) {
            /* Whatever was stashed belongs to removed registrations. */
            tab->nstash = 0;
            tab->stash_fresh = false;
        }
        f->ctx = cur;
        cur->objs++;
        cur->npending++;
        tab->v[fd] = f;
    } else {
        bool was_parked = f->parked;
        uint32_t old_ev = f->ev;

        old = actx__obj_ctx(&f->ctx);
        f->ev = ev;
        if (was_parked) {
            /* Parked fds are never current: registering moves it here. */
            park_unlink(f);
            err = fd_arm(loop, tab, f, false);
        } else {
            err = ev != old_ev ? fd_arm(loop, tab, f, true) : 0;
        }
        if (err < 0 && !is_closed_err(err)) {
            /* ENOMEM, ENOSPC: the registration stays as it was. */
            f->ev = old_ev;
            if (was_parked) {
                park_link(old, f);
            }
            return err;
        }
        if (err < 0) {
            note_closed(loop, tab, err);
            fd_free(loop, tab, f);
            return err;
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
    if (fd == loop->epfd || fd == loop->mb->efd) {
        return -EINVAL; /* the loop's own fds */
    }
    tab = get_tab(loop);
    if (!tab) {
        return -ENOMEM;
    }
    err = set_handler(loop, tab, fd, on_read, on_write, opaque);
    settle(loop, tab);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Loop hooks.                                                               */

/*
 * A wait is about to report: forget what an earlier wait stashed and
 * nobody dispatched yet (a poll nested in a callback that ran before the
 * fds did).  Level-triggered, this wait reports again every fd that is
 * still ready; dispatching the old events too would call a handler whose
 * fd another dispatch already drained.
 */
void actx__fd_wait_begin(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    if (tab) {
        tab->nstash = 0;
        tab->stash_fresh = false;
    }
}

void actx__fd_event(actx__loop *loop, uint64_t key, uint32_t events)
{
    fdtab *tab = loop->fdtab;

    if (tab && tab->nstash < STASH_MAX) {
        tab->stash[tab->nstash].key = key;
        tab->stash[tab->nstash].events = events;
        tab->nstash++;
    }
}

void actx__fd_waited(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    if (tab) {
        tab->stash_fresh = true;
    }
}

/*
 * Did the latest wait stash events that no actx__fd_poll has dispatched?
 * (poll.c's polling window waits with a zero timeout and asks this: the
 * run_pass that follows dispatches them.)  They may all be for parked fds
 * or other contexts' fds: that actx__fd_poll then parks or skips them and
 * consumes the stash all the same, so this turns false.
 */
bool actx__fd_stashed(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;

    return loop->nfds != 0 && tab && tab->stash_fresh && tab->nstash != 0;
}

static void unpark_all(actx__loop *loop, fdtab *tab, actx_ctx *c);

/* Take f out of the epoll set until its context c is current again. */
static void park(actx__loop *loop, fdtab *tab, actx__fd *f, actx_ctx *c)
{
    int err = actx__backend_ctl(loop, EPOLL_CTL_DEL, f->fd, 0, 0);

    if (err < 0) {
        note_closed(loop, tab, err);
        fd_free(loop, tab, f);
        return;
    }
    park_link(c, f);
}

/*
 * A registration that could not be removed may keep reporting: replace
 * the epoll set and add back every registration that should be in it.
 */

int actx__fd_poll(actx__loop *loop, actx_ctx *c)
{
    fdtab *tab = loop->fdtab;
    fd_event evs[STASH_MAX];
    int n, i, progress = 0;

    if (ACTX__UNLIKELY(c->parked != NULL)) {
        unpark_all(loop, tab, c); /* a re-arm failed at pop: retry */
    }
    if (!tab->stash_fresh) {
        tab->nstash = 0;
        actx__backend_wait(loop, 0);
    }
    n = tab->nstash;
    memcpy(evs, tab->stash, (size_t)n * sizeof(evs[0]));
    tab->nstash = 0;
    tab->stash_fresh = false;

    for (i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        actx__fd *f = lookup(tab, evs[i].key);
        actx_ctx *owner;

        if (!f) {
            continue; /* removed since, or a lingering registration */
        }
        owner = actx__obj_ctx(&f->ctx);
        if (f->parked) {
            continue;
        }
        if (owner != c) {
            park(loop, tab, f, owner);
            continue;
        }
        if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && f->on_read) {
            progress = 1;
            f->on_read(f->opaque);
            /* It may have removed, moved or re-registered itself. */
            f = lookup(tab, evs[i].key);
            if (!f || f->parked || actx__obj_ctx(&f->ctx) != c) {
                continue;
            }
        }
        if ((e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && f->on_write) {
            progress = 1;
            f->on_write(f->opaque);
        }
    }
    settle(loop, tab);
    return progress;
}

/*
 * c is current: put its parked fds back into epoll.  A closed fd loses its
 * handler (counted); any other failure (ENOMEM, ENOSPC from epoll_ctl)
 * keeps the handler parked on c, counted in fd_errors and reported, and it
 * is tried again at c's next poll (poll.c bounds c's sleeps meanwhile):
 * a pop never drops a handler whose fd is still open.
 */
static void unpark_all(actx__loop *loop, fdtab *tab, actx_ctx *c)
{
    actx__fd *f, *list = c->parked, *keep = NULL;

    c->parked = NULL;
    if (list) {
        list->pprev = &list;
    }
    while ((f = list) != NULL) {
        int err;

        park_unlink(f);
        err = fd_arm(loop, tab, f, false);
        if (err == 0) {
            continue;
        }
        loop->st.fd_errors++;
        if (is_closed_err(err)) {
            if (err == -EBADF) {
                tab->lingering = true;
            }
            fd_free(loop, tab, f);
            continue;
        }
        actx__misuse("actx_pop", "epoll_ctl failed re-adding an fd handler: "
                                 "kept, retried at the next poll");
        f->pnext = keep;
        keep = f;
    }
    while ((f = keep) != NULL) {
        keep = f->pnext;
        park_link(c, f);
    }
    settle(loop, tab);
}

void actx__fd_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent)
{
    fdtab *tab = loop->fdtab;
    actx__fd *f;

    /* The child's parked fds re-home with it. */
    while ((f = child->parked) != NULL) {
        park_unlink(f);
        park_link(parent, f);
    }
    /* The parent becomes current: its parked fds go back into epoll. */
    unpark_all(loop, tab, parent);
}

void actx__fd_loop_shutdown(actx__loop *loop)
{
    fdtab *tab = loop->fdtab;
    int fd;

    if (!tab) {
        return;
    }
    for (fd = 0; fd < tab->cap; fd++) {
        if (tab->v[fd]) {
            fd_free(loop, tab, tab->v[fd]); /* the epoll set goes too */
        }
    }
    free(tab->v);
    free(tab);
    loop->fdtab = NULL;
}
