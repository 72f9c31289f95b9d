/*
 * actx-internal.h - the objects behind the public API and how they relate.
 *
 * One loop per thread (actx__loop), reached through a thread-local pointer.
 * A loop owns a stack of contexts (actx_ctx, root at the bottom), a mailbox
 * (actx__mailbox) that other threads post to, per-thread free lists, and the
 * OS backend (epoll + the mailbox's eventfd).
 *
 * Everything that belongs to a context records the context it was created
 * in (obj->ctx).  Popping a context does not walk its objects: the popped
 * context forwards (ctx->fwd) to its parent, and the owner resolves an
 * object's context lazily, moving the object's count to the live context it
 * finds (path compression).  A popped context that is still pointed at
 * ("zombie") stays allocated until the last object, handle or message that
 * names it is gone.
 *
 * Counters on a context, all owner-only:
 *   objs     - objects whose ->ctx field names this context (lifetime);
 *   npending - sources of future progress other than requests that
 *              resolve to it: live BHs, fd handlers, armed timers, held
 *              handles (requests count in nreq only, one counter fewer per
 *              request).  Added to the parent at pop;
 *   nreq     - outstanding requests that resolve to it (actx_flush).
 * Counters shared with other threads (atomic):
 *   refs     - the loop's own reference while the context is on the stack
 *              or a zombie with objs or held handles, one per handle, one
 *              per call/stop message in flight, one per forwarding child;
 *   handles  - handle references only (actx_ctx_current/ref/unref).
 *
 * Messages (requests, calls, stops, cross-thread BH schedules, handle
 * releases) share one header with a single link: a message is in exactly one
 * of a mailbox, a context's queue or a context's BH list at a time.
 */
#ifndef ACTX_INTERNAL_H
#define ACTX_INTERNAL_H

#include "actx.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define ACTX__CACHELINE 64
#define ACTX__LIKELY(x) __builtin_expect(!!(x), 1)
#define ACTX__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ACTX__CONTAINER_OF(ptr, type, member)                                  \
    ((type *)((char *)(ptr)-offsetof(type, member)))

#ifdef ACTX_DEBUG
#define actx__assert(x) assert(x)
#else
#define actx__assert(x) ((void)0)
#endif

/* Rounds of BH flushing at pop before the rest moves to the parent. */
#define ACTX__POP_FLUSH_ROUNDS 10000
/* The longest a loop with scheduled idle BHs sleeps. */
#define ACTX__IDLE_NS (10 * 1000 * 1000ULL)
/* Mailbox references a loop charges at a time (see actx__mb_charge). */
#define ACTX__MB_BULK 4096

/*
 * Debug builds keep the last this many freed BHs and timers allocated and
 * marked dead, so that a double delete/free is reported instead of reading
 * freed memory (older ones are freed; ASan then catches a late reuse).
 */
#define ACTX__QUARANTINE 256

typedef struct actx__loop actx__loop;
typedef struct actx__mailbox actx__mailbox;
typedef struct actx__job actx__job;
typedef struct actx__fd actx__fd;

enum actx__msg_type {
    ACTX__MSG_REQ = 1, /* a request's completion */
    ACTX__MSG_CALL,    /* actx_ctx_call */
    ACTX__MSG_STOP,    /* actx_stop */
    ACTX__MSG_BH,      /* a BH scheduled from another thread */
    ACTX__MSG_RELEASE, /* the last handle of a context was dropped */
};

typedef struct actx__msg {
    struct actx__msg *next;
    uint16_t type;
    uint16_t flags;
    /*
     * A request's: the depth of the context it was made in (the wake-up
     * filter, mailbox.c), or its fd while on the ring (aio-uring.c).
     */
    uint32_t aux;
} actx__msg;

/* Request states in msg.flags (req.c: a second completion is refused). */
enum {
    ACTX__REQ_POOL = 1,      /* pool work: the pool completes it */
    ACTX__REQ_COMPLETED = 2, /* completed, by whoever */
    /* File AIO on the loop's io_uring (aio-uring.c), until reaped: */
    ACTX__REQ_RING = 4,           /* its SQE is in the ring */
    ACTX__REQ_RING_CANCELLED = 8, /* cancelled: completes with -ECANCELED */
    ACTX__REQ_RING_READ = 16,     /* a read: req->ret holds its buffer */
    ACTX__REQ_RING_POOLED = 32,   /* taken back from the ring and given to
                                     the pool: req->ret is the pool's
                                     request (aio-uring.c, unqueue) */
};

/* A request: one cache line, from a per-thread free list. */
struct actx_req {
    actx__msg msg;
    actx_done_fn *done;
    void *opaque;
    long ret;
    actx_ctx *ctx;     /* owner-only after creation */
    actx__mailbox *mb; /* the owner loop's mailbox; immutable */
    actx__job *job;    /* pool work, or NULL */
};

/* actx_ctx_call and actx_stop messages; malloc'd by the poster. */
typedef struct actx__call {
    actx__msg msg;
    actx_fn *fn;
    void *opaque;
    actx_ctx *ctx; /* holds a reference */
} actx__call;

/*
 * BH state is split so that the owner thread never needs an atomic
 * read-modify-write to schedule or run a BH (bh.c explains the protocol):
 *   lstate - written only by the owner (plain stores): scheduled locally,
 *            idle, and the cancel generation the schedule belongs to;
 *   rstate - changed by other threads (CAS, fetch_and, fetch_add): their
 *            schedules (R_SCHED, R_IDLE), mailbox link ownership
 *            (R_MAILED), and above GEN_SHIFT the cancel generation,
 *            which a cancel from another thread bumps, invalidating a
 *            local schedule made before it.
 */
enum {
    ACTX__BH_L_SCHED = 1u << 0,
    ACTX__BH_L_IDLE = 1u << 1,
    ACTX__BH_R_SCHED = 1u << 0,
    ACTX__BH_R_IDLE = 1u << 1,
    ACTX__BH_R_MAILED = 1u << 2, /* linked in the mailbox */
    /* Both words keep the cancel generation in the same bits. */
    ACTX__BH_GEN_SHIFT = 3,
};

struct actx_bh {
    /*
     * The first 64 bytes (a BH is allocated on a cache line of its own)
     * are all that a local schedule and a poll touch: a burst of BHs costs
     * one line per BH.
     */
    _Atomic uint32_t lstate;
    _Atomic uint32_t rstate;
    uint64_t seq; /* owner: stamp of the latest schedule */
    actx_fn *cb;  /* NULL once deleted */
    void *opaque;
    actx_bh *list_next, **list_pprev; /* owner; pprev NULL: not listed */
    actx__loop *loop;                 /* immutable */
    actx_ctx *ctx;                    /* owner-only */
    /* Colder. */
    actx__msg msg;                /* mailbox link (R_MAILED) */
    actx__mailbox *mb;            /* immutable */
    int depth;                    /* immutable: of its first context */
    actx_bh *all_prev, *all_next; /* the loop's live BHs */
};

struct actx_ctx {
    /* Owner-only. */
    actx__loop *loop;        /* valid while actx__ctx_is_local() */
    uint64_t loop_id;        /* immutable; loop ids are never reused */
    actx_ctx *parent;        /* stack link; free-list link when recycled */
    actx_ctx *fwd;           /* where its things went at pop */
    actx_ctx *zprev, *znext; /* the loop's zombies */
    int depth;
    /* Effective deadline (actx_now_ns clock, UINT64_MAX: none), set at push:
     * the earlier of its own and its parent's (actx_push_deadline). */
    uint64_t deadline;
    bool popped, hheld, stop, zombie;
    long objs, npending, nreq;
    actx__msg *q_head, **q_tail; /* completions, calls, stops */
    long q_len;
    actx_bh *bh_head, **bh_tail; /* scheduled BHs (bh.c) */
    long bh_len;
    void *timers; /* timer heap of this context (timer.c) */
    void *fdset;  /* its epoll set, once it has fd handlers (fd.c) */

    /* Shared. */
    actx__mailbox *mb; /* immutable; the context holds a reference */
    alignas(ACTX__CACHELINE) _Atomic long refs;
    _Atomic long handles;
    _Atomic int release_posted;
    actx__msg release_msg;
};

struct actx__mailbox {
    /* Producers CAS here; CLOSED after shutdown. */
    alignas(ACTX__CACHELINE) _Atomic(actx__msg *) head;
    /* Owner writes around sleeps; producers read after each post. */
    alignas(ACTX__CACHELINE) _Atomic int notify_me;
    _Atomic bool notified;
    /* The eventfd, -1 once closed (mailbox.c: "Eventfd lifetime"). */
    _Atomic int efd;
    _Atomic int efd_writers; /* posters between P3's load of efd and write */
    _Atomic long refs;
    _Atomic unsigned long refused;
    actx__mailbox *free_next;
    actx__mailbox *all_next; /* every mailbox ever made (fork) */
};

#define ACTX__MB_CLOSED ((actx__msg *)1)

/*
 * notify_me while the owner sleeps: level | depth << ACTX__WAKE_DEPTH_SHIFT,
 * depth being that of the context it sleeps in.  A post wakes the owner
 * when its level is at most the sleep's and the message is for a context
 * of at least that depth (mailbox.c: "Posts for outer contexts").
 */
enum {
    ACTX__WAKE_ANY = 1,       /* owner sleeps (any timeout) */
    ACTX__WAKE_UNBOUNDED = 2, /* owner sleeps longer than an idle BH may wait */
    ACTX__WAKE_LEVELS = 3,    /* the level bits of notify_me */
    ACTX__WAKE_DEPTH_SHIFT = 2,
};
/* The depth of a post that must wake the owner in any context. */
#define ACTX__DEPTH_ANY INT32_MAX

struct actx__loop {
    /* The context stack (context.c); hot fields first. */
    actx_ctx *cur;
    uint64_t id; /* never reused */
    /* The mailbox (mailbox.c). */
    actx__mailbox *mb;
    long mb_budget; /* mailbox references charged but unused */
    /* BHs (bh.c). */
    uint64_t bh_seq;
    /* The context stack, continued (context.c). */
    actx_ctx *root;
    actx_ctx *ctx_free;
    actx_ctx *zombies;
    /* Requests (req.c). */
    struct req_slab *req_slabs;
    struct req_slab *req_cur; /* allocation cursor */
    /* The chunk slabs are carved from, its next slab and its end. */
    struct req_slab *req_chunk, *req_carve, *req_carve_end;
    unsigned req_word;
    long req_cap;
    actx_req *req_hint;  /* first line freed since the cursor moved */
    actx_req *req_last;  /* the line freed last: free, its bit still clear */
    uint64_t *req_bitsp; /* the cursor's bitmap word */
    actx_req *req_base;  /* the line of its bit 0 */
    /* BHs, continued (bh.c). */
    actx_bh *bhs;
    /* Life and reentry (thread.c). */
    bool closing, closed;
    /*
     * in_cb: inside a call that may run callbacks (actx__enter);
     * shutdown_deferred: actx_thread_shutdown() was called in one.
     */
    bool in_cb, shutdown_deferred;
    actx__loop *all_prev, *all_next; /* every live loop (fork) */
    /* fd handlers and epoll sets (fd.c). */
    long nfds;        /* registered fd handlers */
    long fd_deferred; /* handlers whose move failed */
    void *fdtab;
    /* Timers (timer.c). */
    long ntimers;           /* armed timers on this loop */
    long timers_live;       /* live timers: room reserved in each heap */
    actx_timer *timers_all; /* every live timer of the loop */
    uint64_t timer_arms;    /* actx_timer_mod calls: equal deadlines */
    /* Running the loop (poll.c). */
    bool notify_armed;   /* an embedder waits on actx_backend_fd() */
    int64_t poll_max_ns; /* actx_set_poll_max_ns; 0: never poll */
    int64_t poll_ns;     /* the current polling window */
    /*
     * Pool (pool.c).  sleep_hook is called around each blocking sleep
     * (the pool counts blocked workers).  Entering, it may run work
     * instead and return false: do not sleep, look again at what is
     * runnable (and do not call it for leaving).
     */
    bool (*sleep_hook)(actx__loop *loop, bool entering);
    actx__job *job_free; /* spare pool jobs */
    long job_free_n;
    /* File AIO through the loop's io_uring (aio-uring.c). */
    struct actx__uring *uring; /* NULL until the first AIO on the ring */
    long io_inflight;          /* ring operations not reaped yet */
    unsigned io_unsubmitted;   /* SQEs not entered into the kernel yet */
    const unsigned *io_khead, *io_ktail; /* the CQ ring's indices */
    unsigned long io_submits;            /* io_uring_enter calls that
                                            submitted (tests, actx_dump) */
    bool io_ring_only;      /* tests: never read inline (aio-uring.c) */
    unsigned char *fd_kind; /* per fd number: ACTX__FD_* (aio-pool.c) */
    size_t nfd_kind;
    /* Counters (actx_stats, everyone). */
    struct actx_stats st;
#ifdef ACTX_DEBUG
    /* Freed BHs and timers, kept a while (actx__quarantine). */
    void *quarantine[ACTX__QUARANTINE];
    unsigned quarantine_n;
#endif
};

extern __thread actx__loop *actx__tls_loop
    __attribute__((tls_model("initial-exec")));

actx__loop *actx__loop_create(void);

/* The calling thread's loop, created on first use; NULL/errno on failure. */
static inline actx__loop *actx__loop_get(void)
{
    actx__loop *loop = actx__tls_loop;

    if (ACTX__LIKELY(loop != NULL)) {
        return loop;
    }
    return actx__loop_create();
}

/* Is c a context of the calling thread's (live) loop? */
static inline bool actx__ctx_is_local(actx__loop *loop, actx_ctx *c)
{
    return loop && loop->id == c->loop_id;
}

/*
 * actx_thread_shutdown() from inside a callback cannot free the loop that
 * the callback's callers still use: it sets shutdown_deferred, and the
 * outermost call that runs callbacks shuts the loop down as it returns.
 * Every public call that may run callbacks brackets itself with
 * outer = actx__enter(loop) ... actx__leave(loop, outer).  Plain stores
 * and predictable branches, no read-modify-write chain between polls.
 */
void actx__shutdown_now(actx__loop *loop);

static inline bool actx__enter(actx__loop *loop)
{
    bool outer = !loop->in_cb;

    loop->in_cb = true;
    return outer;
}

static inline void actx__leave(actx__loop *loop, bool outer)
{
    if (outer) {
        loop->in_cb = false;
        if (ACTX__UNLIKELY(loop->shutdown_deferred)) {
            actx__shutdown_now(loop);
        }
    }
}

/*
 * A pass runs callbacks of one context c, the current one (actx__bh_poll_ctx,
 * actx__run_queue, actx__fd_poll, actx__timers_run, poll.c's run_pass, the
 * flush of actx_pop).  A callback may leave another context current: it
 * pushed without popping, or popped c.  From then on the pass runs nothing
 * more of c (no callback of a context runs while another is current,
 * actx.h: "Callbacks and the context stack"); what it did not run stays
 * scheduled or queued in c, in its order, or moved with c to its parent,
 * and runs when that context is current again.  A push and pop within
 * the callback (a nested wait) leaves c current and the pass goes on.
 * Every pass asks this after each callback: one load and one compare.
 */
void actx__pop_noflush(actx__loop *loop); /* context.c, for shutdown */

static inline bool actx__pass_ends(actx__loop *loop, actx_ctx *c)
{
    return ACTX__UNLIKELY(loop->cur != c);
}

/* Free a dead BH or timer: at once, or later in debug builds. */
void actx__quarantine(actx__loop *loop, void *obj);

/*
 * fork (thread.c): phase 0 before fork (take the module's process-wide
 * lock), 1 in the parent after it, 2 in the child (release the lock and
 * forget what other threads were doing).
 */
void actx__log_atfork(int phase);
void actx__ctx_atfork(int phase);

/* Report a misuse the runtime detected (wrong thread, bad state), at
 * ACTX_LOG_ERROR. */
void actx__misuse(const char *func, const char *what);
/* Log one message (printf format) through the handler of
 * actx_set_log_handler (log.c).  Never call it with a runtime lock held:
 * the handler may call into the runtime. */
void actx__log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* mailbox.c */
actx__mailbox *actx__mb_new(int *err);
void actx__mb_unref(actx__mailbox *mb, long n);
void actx__mb_close_efd(actx__mailbox *mb);
void actx__mb_atfork_prepare(void);
void actx__mb_atfork_parent(void);
void actx__mb_atfork_child(void);
int actx__mb_post(actx__mailbox *mb, actx__msg *msg, int wake_level, int depth);
void actx__mb_notify(actx__mailbox *mb, int wake_level, int depth);
void actx__mb_refused(actx__mailbox *mb);
void actx__mb_rearm(actx__loop *loop);
void actx__mb_prepare_sleep(actx__loop *loop, int level, int depth);
void actx__mb_end_sleep(actx__loop *loop);
void actx__mb_ack(actx__loop *loop);
void actx__mb_on_event(void *loop);
unsigned long actx__refused_all(void);

/*
 * The post and the wake-up check, inline for the completion fast path
 * (actx_req_complete); mailbox.c's top comment explains P1-P3.
 */
void actx__mb_wake(actx__mailbox *mb);

static inline void actx__mb_notify_inline(actx__mailbox *mb, int wake_level,
                                          int depth)
{
    /* P2: pairs with O2 in actx__mb_prepare_sleep (mailbox.c). */
    int nm = atomic_load(&mb->notify_me);

    if (ACTX__UNLIKELY((nm & ACTX__WAKE_LEVELS) >= wake_level) &&
        depth >= nm >> ACTX__WAKE_DEPTH_SHIFT) {
        actx__mb_wake(mb); /* P3 */
    }
}

static inline int actx__mb_post_inline(actx__mailbox *mb, actx__msg *msg,
                                       int wake_level, int depth)
{
    actx__msg *old = atomic_load_explicit(&mb->head, memory_order_relaxed);

    do {
        if (ACTX__UNLIKELY(old == ACTX__MB_CLOSED)) {
            return -EPIPE;
        }
        msg->next = old;
        /*
         * P1, seq_cst: publishes msg (release for the consumer's exchange)
         * and orders the push before P2's load of notify_me.
         */
    } while (!atomic_compare_exchange_weak_explicit(
        &mb->head, &old, msg, memory_order_seq_cst, memory_order_relaxed));
    if (wake_level) {
        actx__mb_notify_inline(mb, wake_level, depth);
    }
    return 0;
}

/* Take one mailbox reference from the loop's bulk charge. */
static inline void actx__mb_charge(actx__loop *loop)
{
    if (ACTX__UNLIKELY(loop->mb_budget == 0)) {
        /* Pairs with the fetch_sub in actx__mb_unref. */
        atomic_fetch_add_explicit(&loop->mb->refs, ACTX__MB_BULK,
                                  memory_order_relaxed);
        loop->mb_budget = ACTX__MB_BULK;
    }
    loop->mb_budget--;
}

/* mailbox.c: run arrived messages into their contexts' queues. */
void actx__drain(actx__loop *loop, bool close);
static inline bool actx__io_ready(actx__loop *loop);
void actx__io_reap(actx__loop *loop);
static inline void actx__drain_if_any(actx__loop *loop)
{
    /*
     * Relaxed is enough: actx__drain's exchange acquires.  Neither NULL
     * (empty) nor ACTX__MB_CLOSED (shut down) has anything to take.
     */
    if ((uintptr_t)atomic_load_explicit(&loop->mb->head, memory_order_relaxed) >
        1) {
        actx__drain(loop, false);
    }
    if (ACTX__UNLIKELY(actx__io_ready(loop))) {
        actx__io_reap(loop); /* ring completions (aio-uring.c) */
    }
}
void actx__dispatch(actx__loop *loop, actx__msg *m);

/*
 * The owner thread posted to its own loop (queued directly, no mailbox).
 * While an embedding loop waits on actx_backend_fd() (armed by
 * actx_backend_timeout_ms()), that post must still make the fd readable.
 */
static inline void actx__local_post(actx__loop *loop)
{
    if (ACTX__UNLIKELY(loop->notify_armed)) {
        actx__mb_notify(loop->mb, ACTX__WAKE_ANY, ACTX__DEPTH_ANY);
    }
}

/* context.c */
actx_ctx *actx__ctx_new_root(actx__loop *loop);
actx_ctx *actx__obj_ctx_moved(actx_ctx **slot);
void actx__obj_put_last(actx__loop *loop, actx_ctx *c);

/* The live context a (maybe popped) context's things now belong to. */
static inline actx_ctx *actx__ctx_resolve(actx_ctx *c)
{
    while (ACTX__UNLIKELY(c->fwd != NULL)) {
        c = c->fwd;
    }
    return c;
}

/*
 * The live context of an object, moving the object's count there (path
 * compression) so that popped contexts are released as soon as possible.
 */
static inline actx_ctx *actx__obj_ctx(actx_ctx **slot)
{
    return ACTX__LIKELY((*slot)->fwd == NULL) ? *slot
                                              : actx__obj_ctx_moved(slot);
}

/* An object that named c is gone (or moved). */
static inline void actx__obj_put(actx__loop *loop, actx_ctx *c)
{
    actx__assert(c->objs > 0);
    if (ACTX__UNLIKELY(--c->objs == 0)) {
        actx__obj_put_last(loop, c);
    }
}
void actx__ctx_unref_ref(actx_ctx *c);
void actx__ctx_release_msg(actx__loop *loop, actx_ctx *c);
void actx__queue_append(actx_ctx *c, actx__msg *m);
void actx__ctx_loop_shutdown(actx__loop *loop);

/* bh.c */
int actx__bh_poll_ctx(actx__loop *loop, actx_ctx *c, bool *ran_idle);
bool actx__bh_has_nonidle(actx_ctx *c);
void actx__bh_arrived(actx__loop *loop, actx_bh *bh);
void actx__bh_loop_shutdown(actx__loop *loop);

/* req.c */
void actx__req_loop_init(actx__loop *loop);
actx_req *actx__req_alloc(actx__loop *loop, actx_done_fn *done, void *opaque);
int actx__req_post(actx_req *req, long ret);
int actx__run_queue(actx__loop *loop, actx_ctx *c);
void actx__req_loop_shutdown(actx__loop *loop);
void actx__req_refused(actx_req *req);
/* Owner: free a request that was never handed out (done never runs). */
void actx__req_discard(actx__loop *loop, actx_req *req);
/* Owner: actx_req_cancel every request that resolves to c; how many. */
long actx__req_cancel_ctx(actx__loop *loop, actx_ctx *c);

/* pool.c: the worker pool (job ownership and cancellation). */
int actx__job_cancel(actx__job *job);
void actx__job_free(actx__job *job);
void actx__pool_loop_shutdown(actx__loop *loop);
/* A new loop of the calling thread: a pool worker's gets the sleep hook. */
void actx__pool_loop_init(actx__loop *loop);

/*
 * Submit work on the pool for the calling thread's loop.  With argsize > 0,
 * argsize bytes at arg (at most ACTX__JOB_ARGS) are copied into the job and
 * work gets a pointer to the copy (aio-pool.c); otherwise work gets arg itself.
 */
#define ACTX__JOB_ARGS 32
actx_req *actx__pool_submit(actx_work_fn *work, const void *arg, size_t argsize,
                            actx_done_fn *done, void *opaque);

/*
 * aio-uring.c: file AIO through a per-loop io_uring, the pool as fallback.
 * Owner thread only, all of it.
 *   actx__io_loop_init      at loop creation: sets st.io_backend (ACTX_IO);
 *   actx__io_submit         1: handled (*out is the request, or NULL/errno),
 *                           0: the pool must do it (fallback, pipes);
 *   actx__io_flush          enter the queued SQEs (before a sleep and at the
 *                           end of an iteration: one syscall per batch);
 *   actx__io_ready/reap     completions waiting in the CQ / hand them to
 *                           actx__dispatch (called by actx__drain_if_any);
 *   actx__io_cancel         actx_req_cancel of a ring request;
 *   actx__io_loop_closing   shutdown, before the mailbox closes;
 *   actx__io_loop_shutdown  shutdown: wait for in-flight ops, close the ring.
 */
enum { ACTX__AIO_PREAD = 1, ACTX__AIO_PWRITE, ACTX__AIO_FSYNC };
/*
 * aio-pool.c: what a loop knows of an fd number for file AIO.  SEEKABLE:
 * a buffered file (may be read inline with RWF_NOWAIT); DIRECT: seekable,
 * opened O_DIRECT (never read inline: RWF_NOWAIT does not keep a direct
 * read from waiting for the device); STREAM: pipe, socket, FIFO (pread's
 * ESPIPE: the pool); NOWAIT_NO: seekable where RWF_NOWAIT was refused;
 * CLOSED: not open now (never remembered; the pool answers EBADF).
 */
enum {
    ACTX__FD_UNKNOWN = 0,
    ACTX__FD_SEEKABLE,
    ACTX__FD_STREAM,
    ACTX__FD_DIRECT,
    ACTX__FD_NOWAIT_NO,
    ACTX__FD_CLOSED
};
unsigned actx__fd_kind_slow(actx__loop *loop, int fd);
static inline unsigned actx__fd_kind(actx__loop *loop, int fd)
{
    if (ACTX__LIKELY((size_t)fd < loop->nfd_kind &&
                     loop->fd_kind[fd] != ACTX__FD_UNKNOWN)) {
        return loop->fd_kind[fd];
    }
    return actx__fd_kind_slow(loop, fd);
}
void actx__fd_kind_set(actx__loop *loop, int fd, unsigned kind);
void actx__aio_loop_shutdown(actx__loop *loop);
/*
 * ownfd.c: the fds the runtime made for itself (any thread).  Whoever
 * makes one adds it; actx__own_close removes and closes it.  File AIO
 * refuses them (EBADF).
 */
void actx__own_fd_add(int fd);
void actx__own_fd_del(int fd);
bool actx__own_fd(int fd);
void actx__own_close(int fd);
void actx__own_fd_atfork_child(void);
/* aio-pool.c: one operation on the pool (the ring's fallback). */
actx_req *actx__aio_pool(int op, int fd, void *buf, size_t n, off_t off,
                         actx_done_fn *done, void *opaque);
void actx__io_loop_init(actx__loop *loop);
void actx__io_atfork_child(void);
int actx__io_submit(actx__loop *loop, int op, int fd, void *buf, size_t n,
                    off_t off, actx_done_fn *done, void *opaque,
                    actx_req **out);
void actx__io_flush_slow(actx__loop *loop);
bool actx__io_is_ring_req(actx_req *req);
int actx__io_cancel(actx__loop *loop, actx_req *req);
int actx__io_ring_fd(actx__loop *loop);
void actx__io_loop_closing(actx__loop *loop);
void actx__io_loop_shutdown(actx__loop *loop);
/* The done of a pool request that does a ring request's operation after
 * io_uring_enter failed; its opaque is that ring request. */
void actx__io_fallback_done(void *opaque, long ret);
/* fork child: drop the inherited ring without touching the parent's. */
void actx__io_loop_forget(actx__loop *loop);
void actx__io_dump(actx__loop *loop, FILE *out);

static inline void actx__io_flush(actx__loop *loop)
{
    if (ACTX__UNLIKELY(loop->io_unsubmitted != 0)) {
        actx__io_flush_slow(loop);
    }
}

/* A CQE waits: two loads, and nothing at all without ring ops in flight. */
static inline bool actx__io_ready(actx__loop *loop)
{
    /* Acquire pairs with the kernel's release of the CQ tail. */
    return loop->io_inflight != 0 &&
           __atomic_load_n(loop->io_ktail, __ATOMIC_ACQUIRE) != *loop->io_khead;
}

/*
 * A timeout of ns >= 0 nanoseconds in whole milliseconds for an int API
 * (epoll_wait, actx_backend_timeout_ms): rounded up, so a timer is never
 * run early, and at most INT_MAX (about 24.8 days), so a real timer never
 * reads as a negative "no timeout"; no overflow up to INT64_MAX.
 */
static inline int actx__ns_to_ms_ceil(int64_t ns)
{
    if (ns > (int64_t)INT32_MAX * 1000000 - 999999) {
        return INT32_MAX;
    }
    return (int)((ns + 999999) / 1000000);
}

/* backend-epoll.c: the OS backend (epoll sets; fd.c decides which). */
struct epoll_event;
int actx__backend_new(void);
int actx__backend_ctl(int epfd, int op, int fd, uint32_t events, uint64_t key);
int actx__backend_wait(int epfd, struct epoll_event *evs, int max,
                       int64_t timeout_ns);

/*
 * fd.c: fd handlers and the epoll sets the loop waits on.
 *   actx__fd_loop_init/close     the loop's sets (loop creation/free);
 *   actx__fd_loopwide_add/del    an fd in every set, its callback run as
 *                                its events arrive (the eventfd, the ring);
 *   actx__fd_wait                the loop's wait, on the current context's
 *                                set; ready handlers are stashed for
 *                                actx__fd_poll of the same poll call
 *                                (actx__fd_stash_drop when it returns);
 *   actx__fd_embed_fd/sync       actx_backend_fd() and its member.
 */
int actx__fd_loop_init(actx__loop *loop);
void actx__fd_loop_close(actx__loop *loop);
/* fork child: close the inherited sets, no epoll_ctl on them. */
void actx__fd_loop_forget(actx__loop *loop);
/* Close the thread's actx_backend_fd() (thread exit, fork child). */
void actx__fd_embed_release(void);
int actx__fd_loopwide_add(actx__loop *loop, int fd, actx_fn *on_event,
                          void *opaque);
void actx__fd_loopwide_del(actx__loop *loop, int fd);
int actx__fd_wait(actx__loop *loop, int64_t timeout_ns);
int actx__fd_embed_fd(actx__loop *loop);
void actx__fd_embed_sync(actx__loop *loop);
int actx__fd_poll(actx__loop *loop, actx_ctx *c);
bool actx__fd_stashed(actx__loop *loop);
void actx__fd_stash_drop(actx__loop *loop);
void actx__fd_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent);
void actx__fd_loop_shutdown(actx__loop *loop);
/* timer.c: timers of the current context. */
int actx__timers_run(actx__loop *loop, actx_ctx *c);
int64_t actx__timers_next_ns(actx__loop *loop, actx_ctx *c);
void actx__timers_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent);
void actx__timers_loop_shutdown(actx__loop *loop);

/* Owner check: cheap, so every build does it. */
#define ACTX__CHECK_OWNER(objloop, ret)                                        \
    do {                                                                       \
        if (ACTX__UNLIKELY(actx__tls_loop == NULL ||                           \
                           actx__tls_loop != (objloop))) {                     \
            actx__misuse(__func__, "not called on the owner thread");          \
            return ret;                                                        \
        }                                                                      \
    } while (0)

/* pool.c, for tests: worker spins started; every worker's window, fixed. */
extern _Atomic unsigned long actx__pool_spins;
extern _Atomic int64_t actx__pool_spin_fixed_ns;

#endif /* ACTX_INTERNAL_H */
