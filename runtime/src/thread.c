/*
 * thread.c - the life of a thread's loop: creation on first use,
 * actx_thread_shutdown (also at thread exit, through a pthread key
 * destructor), statistics (the thread's own, and another loop's through a
 * handle), dump, errors and misuse reports.
 *
 * Shutdown order matters: pop everything, run what already arrived, close
 * the mailbox (from then on posts fail with -EPIPE), run what the close
 * took, then free.  Requests still in flight elsewhere are not freed here:
 * their completers find the mailbox closed and free them; each holds a
 * mailbox reference, so the mailbox outlives them.
 *
 * fork (the contract is in actx.h, at actx_thread_init).  The child has
 * only the forking thread, and the loops it inherits are copies whose
 * kernel objects (epoll sets, eventfds, the io_uring) are still the
 * parent's: one epoll_ctl, eventfd read or ring enter from the child would
 * change what the parent sees.  So the child drops them at once, in an
 * atfork handler: its copies of the descriptors are closed (a close that
 * leaves the parent's open files alone), every inherited mailbox is closed
 * (posts to the parent's contexts fail with -EPIPE), and the forking
 * thread's loop is forgotten (its sets and ring closed in the child).
 * Every inherited loop's memory, the forking thread's and those of
 * threads the child does not have, stays reachable (forked_loops: leak
 * checkers follow children) and is never touched again; the other
 * threads' loops may have been in the middle of anything, so their
 * structures are not walked: the child's copies of their descriptors are
 * closed from the record of the runtime's own fds (ownfd.c), which every
 * fd the runtime makes is in.  The next call that needs a loop makes a
 * fresh one.
 * Every process-wide lock is taken before fork and released after it in
 * both processes, so the child never inherits one held by a thread it
 * does not have: the mailbox free list, the log handler, the debug
 * context quarantine (here) and the pool (pool.c, which also empties
 * itself in the child).
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__thread actx__loop *actx__tls_loop __attribute__((tls_model("initial-exec")));

/* The closed mailbox of this thread's last loop, for posts_refused. */
static __thread actx__mailbox *tls_dead_mb;

/* Loop ids are never reused, unlike loop addresses. */
static _Atomic uint64_t next_loop_id = 1;
static pthread_key_t loop_key;
static pthread_once_t loop_key_once = PTHREAD_ONCE_INIT;
static _Atomic bool loop_key_made;
/* Every live loop, and the loops a fork child inherited and dropped
 * (see the top comment); all_next links both lists. */
static pthread_mutex_t loops_lock = PTHREAD_MUTEX_INITIALIZER;
static actx__loop *loops_all, *forked_loops;

static void loops_link(actx__loop *loop)
{
    pthread_mutex_lock(&loops_lock);
    loop->all_prev = NULL;
    loop->all_next = loops_all;
    if (loops_all) {
        loops_all->all_prev = loop;
    }
    loops_all = loop;
    pthread_mutex_unlock(&loops_lock);
}

static void loops_unlink(actx__loop *loop)
{
    pthread_mutex_lock(&loops_lock);
    if (loop->all_prev) {
        loop->all_prev->all_next = loop->all_next;
    } else {
        loops_all = loop->all_next;
    }
    if (loop->all_next) {
        loop->all_next->all_prev = loop->all_prev;
    }
    pthread_mutex_unlock(&loops_lock);
}

static void loop_key_destructor(void *arg)
{
    actx__loop *loop = arg;

    if (loop && actx__tls_loop == loop && !loop->closing) {
        /* Also from inside a callback that called pthread_exit(). */
        actx__shutdown_now(loop);
    }
    if (tls_dead_mb && !actx__tls_loop) {
        actx__mb_unref(tls_dead_mb, 1);
        tls_dead_mb = NULL;
    }
    if (!actx__tls_loop) {
        actx__fd_embed_release();
    }
}

static void loop_key_init(void)
{
    if (pthread_key_create(&loop_key, loop_key_destructor) != 0) {
        abort(); /* only at PTHREAD_KEYS_MAX keys: nothing sane to do */
    }
    atomic_store(&loop_key_made, true);
}

/* Lock order: the log lock, then the others (none is held with another). */
static void atfork_prepare(void)
{
    actx__log_atfork(0);
    actx__ctx_atfork(0);
    actx__mb_atfork_prepare();
    pthread_mutex_lock(&loops_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&loops_lock);
    actx__mb_atfork_parent();
    actx__ctx_atfork(1);
    actx__log_atfork(1);
}

static void atfork_child(void)
{
    actx__loop *loop = actx__tls_loop;

    actx__mb_atfork_child();
    actx__ctx_atfork(2);
    actx__log_atfork(2);
    if (loop) {
        actx__io_loop_forget(loop);
        actx__fd_loop_forget(loop);
        actx__tls_loop = NULL;
    }
    if (loops_all) {
        actx__loop *last = loops_all;

        while (last->all_next) {
            last = last->all_next;
        }
        last->all_next = forked_loops;
        forked_loops = loops_all;
        loops_all = NULL;
    }
    pthread_mutex_unlock(&loops_lock);
    actx__fd_embed_release(); /* the child's copy of the parent's */
    tls_dead_mb = NULL;       /* closed above; the child counts afresh */
    if (atomic_load(&loop_key_made)) {
        pthread_setspecific(loop_key, NULL);
    }
    actx__own_fd_atfork_child(); /* the other loops' descriptors: closed */
    actx__io_atfork_child();     /* no thread for the io_uring probe */
}

/* Before main and before any lock exists in use: fork is covered always. */
__attribute__((constructor)) static void atfork_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

actx__loop *actx__loop_create(void)
{
    actx__loop *loop;
    actx_ctx *root;
    int err = 0;

    pthread_once(&loop_key_once, loop_key_init);
    loop = calloc(1, sizeof(*loop));
    if (!loop) {
        errno = ENOMEM;
        return NULL;
    }
    loops_link(loop); /* at once: a fork child keeps even a half-made one */
    loop->mb = actx__mb_new(&err);
    if (!loop->mb) {
        loops_unlink(loop);
        free(loop);
        errno = -err;
        return NULL;
    }
    loop->mb_budget = ACTX__MB_BULK - 1; /* one is the loop's own */
    actx__req_loop_init(loop);
    loop->id =
        atomic_fetch_add_explicit(&next_loop_id, 1, memory_order_relaxed);
    err = actx__fd_loop_init(loop);
    if (err == 0) {
        err =
            actx__fd_loopwide_add(loop, loop->mb->efd, actx__mb_on_event, loop);
        if (err < 0) {
            actx__fd_loop_close(loop);
        }
    }
    if (err < 0) {
        goto fail;
    }
    actx__io_loop_init(loop);
    actx__pool_loop_init(loop);
    actx__tls_loop = loop;
    root = actx__ctx_new_root(loop);
    if (!root) {
        actx__tls_loop = NULL;
        actx__fd_loop_close(loop);
        err = -ENOMEM;
        goto fail;
    }
    loop->root = root;
    if (pthread_setspecific(loop_key, loop) != 0) {
        actx__tls_loop = NULL;
        free(root);
        loop->mb_budget++;
        actx__fd_loop_close(loop);
        err = -ENOMEM;
        goto fail;
    }
    if (tls_dead_mb) {
        actx__mb_unref(tls_dead_mb, 1);
        tls_dead_mb = NULL;
    }
    return loop;

fail:
    actx__mb_unref(loop->mb, ACTX__MB_BULK);
    loops_unlink(loop);
    free(loop);
    errno = -err;
    return NULL;
}

int actx_thread_init(void)
{
    return actx__loop_get() ? 0 : -errno;
}

void actx__quarantine(actx__loop *loop, void *obj)
{
#ifdef ACTX_DEBUG
    void **slot = &loop->quarantine[loop->quarantine_n++ % ACTX__QUARANTINE];

    free(*slot);
    *slot = obj;
#else
    (void)loop;
    free(obj);
#endif
}

static void quarantine_flush(actx__loop *loop)
{
#ifdef ACTX_DEBUG
    for (unsigned i = 0; i < ACTX__QUARANTINE; i++) {
        free(loop->quarantine[i]);
        loop->quarantine[i] = NULL;
    }
#else
    (void)loop;
#endif
}

/*
 * Pop back to the root.  A pop fails (-EBUSY) only when a BH of its flush
 * changed the stack; popping again undoes that too.  Against a BH that
 * changes it at every flush, the pops after ACTX__POP_FLUSH_ROUNDS such
 * failures skip the flush (its BHs move to the root, still scheduled):
 * shutdown always gets back to the root.
 */
static void pop_to_root(actx__loop *loop)
{
    int busy = 0;

    while (loop->cur->parent) {
        if (busy >= ACTX__POP_FLUSH_ROUNDS) {
            actx__pop_noflush(loop);
        } else if (actx_pop() < 0) {
            busy++;
        }
    }
}

/*
 * Run what can run in the root until nothing more does (bounded).  A
 * callback may leave a context pushed; it is popped before the next round
 * (its things re-homed to the root), so that the root's callbacks run only
 * while the root is current.
 */
static void run_accepted(actx__loop *loop)
{
    int i;

    for (i = 0; i < ACTX__POP_FLUSH_ROUNDS; i++) {
        pop_to_root(loop);
        if (!actx_poll(false) && !loop->cur->q_head) {
            break;
        }
    }
}

void actx_thread_shutdown(void)
{
    actx__loop *loop = actx__tls_loop;

    if (!loop || loop->closing) {
        return;
    }
    if (loop->in_cb) {
        /* Inside a callback: when the outermost call returns (actx__leave). */
        loop->shutdown_deferred = true;
        return;
    }
    actx__shutdown_now(loop);
}

void actx__shutdown_now(actx__loop *loop)
{
    loop->in_cb = loop->shutdown_deferred = false;
    loop->closing = true;
    pop_to_root(loop);
    actx__assert(loop->cur == loop->root);

    /*
     * Close first: what the mailbox holds now is exactly what was accepted
     * before shutdown; from here on posts are refused, so posters racing
     * with us cannot keep the loop alive.  Ring completions already in
     * the CQ arrived before shutdown as well.
     */
    actx__io_loop_closing(loop);
    loop->closed = true;
    actx__drain(loop, true);
    run_accepted(loop);
    /* Whatever still sits in the queue (bounded rounds ran out) runs now. */
    for (pop_to_root(loop); loop->root->q_head; pop_to_root(loop)) {
        actx__run_queue(loop, loop->root);
    }
    /* Ring operations still in flight finish (refused) before it closes. */
    actx__io_loop_shutdown(loop);
    actx__aio_loop_shutdown(loop);

    actx__timers_loop_shutdown(loop);
    actx__fd_loop_shutdown(loop);
    actx__bh_loop_shutdown(loop);
    actx__req_loop_shutdown(loop);
    actx__pool_loop_shutdown(loop);
    quarantine_flush(loop);
    actx__ctx_loop_shutdown(loop);
    actx__fd_loop_close(loop);
    /* No descriptor stays behind for a recycled mailbox (mailbox.c). */
    actx__mb_close_efd(loop->mb);

    /* Keep one reference so actx_stats can report later refusals. */
    tls_dead_mb = loop->mb;
    actx__mb_unref(loop->mb, loop->mb_budget);
    actx__tls_loop = NULL;
    /* Non-NULL, so that the key's destructor drops tls_dead_mb at exit. */
    pthread_setspecific(loop_key, &tls_dead_mb);
    loops_unlink(loop);
    free(loop);
}

/* The size of struct actx_stats in version 1.0, which the exported
 * actx_stats() fills forever (binaries built against 1.0 call it). */
#define STATS_V1_0_SIZE                                                        \
    (offsetof(struct actx_stats, timers_fired) +                               \
     sizeof(((struct actx_stats *)0)->timers_fired))

static void stats_fill(struct actx_stats *st)
{
    actx__loop *loop = actx__tls_loop;

    if (loop) {
        *st = loop->st;
        st->depth = loop->cur->depth;
        st->posts_refused =
            atomic_load_explicit(&loop->mb->refused, memory_order_acquire);
    } else {
        memset(st, 0, sizeof(*st));
        if (tls_dead_mb) {
            st->posts_refused = atomic_load_explicit(&tls_dead_mb->refused,
                                                     memory_order_acquire);
        }
    }
    st->posts_refused_all = actx__refused_all();
}

size_t actx_stats_size(struct actx_stats *st, size_t size)
{
    struct actx_stats full;
    size_t n = size < sizeof(full) ? size : sizeof(full);

    if (!st) {
        return 0;
    }
    stats_fill(&full);
    memcpy(st, &full, n);
    if (size > n) {
        /* A caller built against a newer header: its extra fields are
         * ones this library does not keep. */
        memset((char *)st + n, 0, size - n);
    }
    return n;
}

void(actx_stats)(struct actx_stats *st)
{
    actx_stats_size(st, STATS_V1_0_SIZE);
}

/*
 * actx_ctx_stats from another thread: the question is an actx_ctx_call
 * that the owner answers with stats_fill.  The asker may time out and
 * leave before the answer comes, so the question is shared by both sides
 * and freed by whichever lets go of it last (refs, under its lock).
 */
typedef struct stats_question {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC, like timeout_ns */
    int refs;
    bool answered;
    struct actx_stats st;
} stats_question;

static void stats_question_put_locked(stats_question *q)
{
    bool last = --q->refs == 0;

    pthread_mutex_unlock(&q->lock);
    if (last) {
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        free(q);
    }
}

/* On the owner thread, through actx_ctx_call. */
static void stats_answer(void *opaque)
{
    stats_question *q = opaque;
    struct actx_stats st;

    stats_fill(&st);
    pthread_mutex_lock(&q->lock);
    q->st = st;
    q->answered = true;
    pthread_cond_signal(&q->cond);
    stats_question_put_locked(q);
}

static stats_question *stats_question_new(void)
{
    stats_question *q = calloc(1, sizeof(*q));
    pthread_condattr_t attr;

    if (!q) {
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &attr);
    pthread_condattr_destroy(&attr);
    q->refs = 2; /* the asker and the call */
    return q;
}

long actx_ctx_stats_size(actx_ctx *ctx, struct actx_stats *st, size_t size,
                         int64_t timeout_ns)
{
    stats_question *q;
    struct timespec dl;
    long ret;
    int rc = 0;

    if (!ctx || !st) {
        return -EINVAL;
    }
    if (actx__ctx_is_local(actx__tls_loop, ctx)) {
        return (long)actx_stats_size(st, size);
    }
    q = stats_question_new();
    if (!q) {
        return -ENOMEM;
    }
    ret = actx_ctx_call(ctx, stats_answer, q);
    if (ret < 0) {
        pthread_mutex_lock(&q->lock);
        q->refs--; /* the call's: it never runs */
        stats_question_put_locked(q);
        return ret;
    }
    if (timeout_ns >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += timeout_ns / 1000000000;
        dl.tv_nsec += timeout_ns % 1000000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&q->lock);
    while (!q->answered && rc != ETIMEDOUT) {
        rc = timeout_ns >= 0 ? pthread_cond_timedwait(&q->cond, &q->lock, &dl)
                             : pthread_cond_wait(&q->cond, &q->lock);
    }
    if (q->answered) {
        size_t n = size < sizeof(q->st) ? size : sizeof(q->st);

        memcpy(st, &q->st, n);
        if (size > n) {
            memset((char *)st + n, 0, size - n); /* as actx_stats_size */
        }
        ret = (long)n;
    } else {
        ret = -ETIMEDOUT;
    }
    stats_question_put_locked(q);
    return ret;
}

void actx_dump(FILE *out)
{
    actx__loop *loop = actx__tls_loop;
    actx_ctx *c;
    long zombies = 0;

    if (!out) {
        out = stderr;
    }
    if (!loop) {
        fprintf(out, "actx: no loop on this thread\n");
        return;
    }
    for (c = loop->zombies; c; c = c->znext) {
        zombies++;
    }
    fprintf(out,
            "actx loop %p: depth %d, live BHs %ld, outstanding requests %ld, "
            "popped contexts still referenced %ld, fd handlers %ld\n",
            (void *)loop, loop->cur->depth, loop->st.live_bhs,
            loop->st.outstanding, zombies, loop->nfds);
    for (c = loop->cur; c; c = c->parent) {
        fprintf(out,
                "  context %d%s: queued %ld, scheduled BHs %ld, requests "
                "%ld, pending sources %ld, handles %ld%s\n",
                c->depth, c == loop->cur ? " (current)" : "", c->q_len,
                c->bh_len, c->nreq, c->npending + c->nreq,
                atomic_load_explicit(&c->handles, memory_order_relaxed),
                c->stop ? ", stop requested" : "");
        if (c->deadline != UINT64_MAX) {
            uint64_t now = actx_now_ns();

            if (now < c->deadline) {
                fprintf(out, "    effective deadline in %.3f ms\n",
                        (double)(c->deadline - now) / 1e6);
            } else {
                fprintf(out, "    effective deadline passed %.3f ms ago\n",
                        (double)(now - c->deadline) / 1e6);
            }
        }
    }
    actx__io_dump(loop, out);
}

#define STR_(x) #x
#define STR(x) STR_(x)

unsigned actx_version(void)
{
    return (ACTX_VERSION_MAJOR << 16) | (ACTX_VERSION_MINOR << 8) |
           ACTX_VERSION_PATCH;
}

const char *actx_version_string(void)
{
    return STR(ACTX_VERSION_MAJOR) "." STR(ACTX_VERSION_MINOR) "." STR(
        ACTX_VERSION_PATCH);
}

const char *actx_strerror(int err)
{
    const char *s;

    if (err >= 0) {
        return "Success";
    }
    if (err == INT_MIN) {
        return "Unknown error"; /* -INT_MIN does not exist */
    }
    s = strerrordesc_np(-err);
    return s ? s : "Unknown error";
}

void actx__misuse(const char *func, const char *what)
{
    actx__log(ACTX_LOG_ERROR, "%s: %s", func, what);
}
