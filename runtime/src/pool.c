/*
 * pool.c - the process-wide worker pool: jobs, FIFO queue, growth for
 * nested waits, idle retirement, cancellation, stop at process exit.
 *
 * A job is the pool half of a request: the request (one cache line, owned
 * by its loop, see req.c) points at its job, the job at its request.  Jobs
 * come from a per-loop free list and go back to whichever thread's loop
 * frees them (the owner's in req_put, a worker's when a completion is
 * refused with -EPIPE).
 *
 * One mutex guards the queue and the worker bookkeeping.  Invariants (all
 * under pool.lock):
 *   - a job is linked in the queue iff its state is JOB_QUEUED;
 *   - JOB_QUEUED -> JOB_RUNNING happens only at dequeue, by a worker;
 *     JOB_QUEUED -> JOB_CANCELLED only in actx__job_cancel (the owner) or at
 *     process exit.  A job is never freed while it is linked: cancel unlinks
 *     it before its -ECANCELED completion is posted, so no worker can ever
 *     see a cancelled (and maybe freed) job;
 *   - after a worker posts the completion (actx__req_post), it never touches
 *     the job or the request again: either may be freed at once (by the
 *     owner, or by actx__req_refused on this very thread);
 *   - nwaking counts workers that will look at the queue without being
 *     told to: woken but not yet holding the lock, just created, or
 *     spinning.  A submission wakes (or creates) a worker only while the
 *     queue is longer than nwaking, so a burst of submissions costs at most
 *     one wake-up per worker, and a submission that a spinning worker will
 *     pick up costs none;
 *   - nblocked counts workers sleeping in their own loop (a nested
 *     ACTX_WAIT_WHILE in a work function; loop->sleep_hook).  The pool
 *     creates a thread when the queue is longer than nwaking, no worker is
 *     idle, and (threads - blocked) < size: blocked workers do not count
 *     against the size, so nested submit-and-wait cannot deadlock the pool.
 *
 * Idle workers sleep on their own condition variable, on a LIFO stack: the
 * most recently idle (warmest) worker is woken first and the coldest ones
 * time out and retire.  At most one idle worker spins briefly before it
 * sleeps, which turns a submit -> done -> submit round trip into no futex
 * wake-up on the pool side.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Spare jobs kept per thread. */
#define JOB_FREE_MAX 4096
/* Most threads the pool ever runs, nested waits included. */
#define POOL_THREADS_CAP 4096
/* Most queued (not yet started) jobs; actx_submit fails with EAGAIN. */
#define POOL_QUEUE_MAX (1L << 20)
/* An idle worker of the base size retires after this long. */
#define POOL_IDLE_NS (5 * 1000 * 1000 * 1000LL)
/* A worker beyond the size (grown for nested waits) retires sooner. */
#define POOL_EXTRA_IDLE_NS (200 * 1000 * 1000LL)
/* How long one idle worker spins for new work before it sleeps. */
#define POOL_SPIN_NS (50 * 1000LL)
/* How long process exit waits for running work before detaching. */
#define POOL_EXIT_NS (2 * 1000 * 1000 * 1000LL)

enum { JOB_QUEUED = 1, JOB_RUNNING, JOB_CANCELLED };

struct actx__job {
    actx__job *next, *prev; /* pool queue; free list (next) */
    actx_req *req;
    actx_work_fn *work;
    void *arg;
    int state; /* under pool.lock */
    alignas(8) unsigned char args[ACTX__JOB_ARGS];
};

typedef struct worker {
    pthread_t tid;
    pthread_cond_t cond;
    bool woken;               /* popped from the idle stack by a waker */
    struct worker *idle_next; /* idle stack */
    struct worker *all_prev, *all_next; /* registry (joined at exit) */
} worker;

static struct {
    pthread_mutex_t lock;
    actx__job *head, *tail;
    /* Stored under the lock; a spinning worker reads it without. */
    _Atomic long qlen;
    _Atomic bool stopping;
    bool started;
    int size;
    int nthreads; /* in the registry (created, not retired) */
    int nblocked;
    int nwaking;
    bool spinning;
    worker *idle;
    int nidle;
    worker *all;
    int nexiting; /* retired, still shutting their loop down */
    pthread_cond_t exit_cond;
    unsigned long spawned, retired, spawn_failed;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .exit_cond = PTHREAD_COND_INITIALIZER,
};

static void pool_sleep_hook(actx__loop *loop, bool entering);

/* ------------------------------------------------------------------------ */
/* Jobs.                                                                     */

static actx__job *job_alloc(actx__loop *loop)
{
    actx__job *job = loop->job_free;

    if (ACTX__LIKELY(job != NULL)) {
        loop->job_free = job->next;
        loop->job_free_n--;
        return job;
    }
    job = malloc(sizeof(*job));
    if (!job) {
        errno = ENOMEM;
    }
    return job;
}

/*
 * Any thread: the owner (req_put) or a worker whose completion was refused.
 * The job is not linked anywhere (see the invariants above).
 */
void actx__job_free(actx__job *job)
{
    actx__loop *loop = actx__tls_loop;

    if (loop && !loop->closed && loop->job_free_n < JOB_FREE_MAX) {
        job->next = loop->job_free;
        loop->job_free = job;
        loop->job_free_n++;
    } else {
        free(job);
    }
}

void actx__pool_loop_shutdown(actx__loop *loop)
{
    while (loop->job_free) {
        actx__job *job = loop->job_free;

        loop->job_free = job->next;
        free(job);
    }
    loop->job_free_n = 0;
}

/* ------------------------------------------------------------------------ */
/* The queue and waking workers.  All _locked functions need pool.lock.      */

static void queue_append_locked(actx__job *job)
{
    job->next = NULL;
    job->prev = pool.tail;
    if (pool.tail) {
        pool.tail->next = job;
    } else {
        pool.head = job;
    }
    pool.tail = job;
    job->state = JOB_QUEUED;
    /* Relaxed: the spinner only uses it as a hint, then takes the lock. */
    atomic_store_explicit(&pool.qlen, pool.qlen + 1, memory_order_relaxed);
}

static void queue_unlink_locked(actx__job *job)
{
    if (job->prev) {
        job->prev->next = job->next;
    } else {
        pool.head = job->next;
    }
    if (job->next) {
        job->next->prev = job->prev;
    } else {
        pool.tail = job->prev;
    }
    atomic_store_explicit(&pool.qlen, pool.qlen - 1, memory_order_relaxed);
}

static void *worker_main(void *arg);

static void registry_remove_locked(worker *w)
{
    if (w->all_prev) {
        w->all_prev->all_next = w->all_next;
    } else {
        pool.all = w->all_next;
    }
    if (w->all_next) {
        w->all_next->all_prev = w->all_prev;
    }
    w->all_prev = w->all_next = NULL;
}

/*
 * Create a worker.  Under the lock, so that its pthread_t is written before
 * anyone (process exit) can look at the registry; creation is rare (the
 * pool's first use, nested waits).
 */
static bool spawn_locked(void)
{
    pthread_attr_t attr;
    sigset_t all;
    worker *w;
    int rc;

    if (atomic_load_explicit(&pool.stopping, memory_order_relaxed)) {
        return false;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        pool.spawn_failed++;
        return false;
    }
    {
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    /* Pool threads take no signals: they belong to the application. */
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setsigmask_np(&attr, &all);
    rc = pthread_create(&w->tid, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_cond_destroy(&w->cond);
        free(w);
        pool.spawn_failed++;
        return false;
    }
    w->all_next = pool.all;
    if (pool.all) {
        pool.all->all_prev = w;
    }
    pool.all = w;
    pool.nthreads++;
    pool.nwaking++; /* it looks at the queue once it runs */
    pool.spawned++;
    return true;
}

/*
 * More queued work than workers on their way to it: wake the warmest idle
 * worker, or create one if the pool may grow.  One worker per call; the
 * woken worker calls this again when it takes its job (a chain), so a
 * burst ramps up without the submitter paying for every wake-up.
 */
static void kick_locked(void)
{
    worker *w;

    if (pool.qlen <= pool.nwaking) {
        return;
    }
    w = pool.idle;
    if (w) {
        pool.idle = w->idle_next;
        pool.nidle--;
        w->woken = true;
        pool.nwaking++;
        /* Under the lock: a woken worker may otherwise retire and free w. */
        pthread_cond_signal(&w->cond);
        return;
    }
    if (pool.nthreads - pool.nblocked < pool.size &&
        pool.nthreads < POOL_THREADS_CAP) {
        spawn_locked();
    }
}

static actx__job *dequeue_locked(void)
{
    actx__job *job = pool.head;

    if (job) {
        queue_unlink_locked(job);
        job->state = JOB_RUNNING;
    }
    return job;
}

/* ------------------------------------------------------------------------ */
/* Workers.                                                                  */

static void idle_remove_locked(worker *self)
{
    worker **pp;

    for (pp = &pool.idle; *pp; pp = &(*pp)->idle_next) {
        if (*pp == self) {
            *pp = self->idle_next;
            pool.nidle--;
            return;
        }
    }
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The worker's own loop carries the hook that counts nested waits. */
static void worker_loop_setup(void)
{
    actx__loop *loop = actx__tls_loop;

    if (!loop) {
        /* Without a loop (EMFILE) the worker still runs plain work. */
        if (actx_thread_init() < 0) {
            return;
        }
        loop = actx__tls_loop;
    }
    loop->sleep_hook = pool_sleep_hook;
}

/*
 * Between jobs: put back what a work function left behind.  Contexts it
 * left pushed are popped; completions of requests it submitted without
 * waiting run here (their context is this thread's root).
 */
static void worker_tidy(void)
{
    actx__loop *loop = actx__tls_loop;

    if (ACTX__UNLIKELY(!loop || loop->sleep_hook != pool_sleep_hook)) {
        worker_loop_setup();
        loop = actx__tls_loop;
        if (!loop) {
            return;
        }
    }
    if (ACTX__UNLIKELY(loop->cur->parent != NULL)) {
        actx__misuse("actx_submit", "a work function returned with a "
                                    "context still pushed; popping it");
        while (loop->cur->parent && actx_pop() == 0) {
        }
    }
    actx__drain_if_any(loop);
    if (ACTX__UNLIKELY(loop->cur->q_head || loop->cur->bh_head)) {
        actx_poll(false);
    }
}

static bool spin_for_work(void)
{
    int64_t deadline = now_ns() + POOL_SPIN_NS;
    unsigned i = 0;

    for (;;) {
        /* Relaxed: a hint; the lock orders the real dequeue. */
        if (atomic_load_explicit(&pool.qlen, memory_order_relaxed) > 0 ||
            atomic_load_explicit(&pool.stopping, memory_order_relaxed)) {
            return true;
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        if ((++i & 63) == 0 && now_ns() > deadline) {
            return false;
        }
    }
}

static void *worker_main(void *arg)
{
    worker *self = arg;
    bool spun = false;
    bool retire = false;

    worker_loop_setup();
    pthread_mutex_lock(&pool.lock);
    pool.nwaking--; /* counted by spawn_locked */
    for (;;) {
        actx__job *job = dequeue_locked();

        if (job) {
            actx_req *req = job->req;
            long ret;

            if (pool.qlen > 0) {
                kick_locked(); /* more work: bring in the next worker */
            }
            pthread_mutex_unlock(&pool.lock);
            ret = job->work(job->arg);
            /* From here on the job and the request may be freed. */
            actx__req_post(req, ret);
            worker_tidy();
            spun = false;
            pthread_mutex_lock(&pool.lock);
            continue;
        }
        if (atomic_load_explicit(&pool.stopping, memory_order_relaxed)) {
            break;
        }
        if (!spun && !pool.spinning && POOL_SPIN_NS > 0) {
            pool.spinning = true;
            pool.nwaking++;
            pthread_mutex_unlock(&pool.lock);
            spin_for_work();
            pthread_mutex_lock(&pool.lock);
            pool.spinning = false;
            pool.nwaking--;
            spun = true;
            continue;
        }

        /* Sleep until woken, stopped, or idle long enough to retire. */
        {
            int64_t idle_ns = pool.nthreads > pool.size ? POOL_EXTRA_IDLE_NS
                                                        : POOL_IDLE_NS;
            struct timespec ts;
            int rc = 0;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += idle_ns / 1000000000;
            ts.tv_nsec += idle_ns % 1000000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            self->woken = false;
            self->idle_next = pool.idle;
            pool.idle = self;
            pool.nidle++;
            while (!self->woken && rc != ETIMEDOUT &&
                   !atomic_load_explicit(&pool.stopping,
                                         memory_order_relaxed)) {
                rc = pthread_cond_timedwait(&self->cond, &pool.lock, &ts);
            }
            if (self->woken) {
                pool.nwaking--; /* the waker counted us */
            } else {
                idle_remove_locked(self);
                if (rc == ETIMEDOUT && pool.qlen == 0 &&
                    !atomic_load_explicit(&pool.stopping,
                                          memory_order_relaxed)) {
                    retire = true;
                    break;
                }
            }
            spun = false;
        }
    }

    if (!retire) {
        /* Process exit: pool_stop joins us (we stay in the registry). */
        pthread_mutex_unlock(&pool.lock);
        return NULL;
    }
    registry_remove_locked(self);
    pool.nthreads--;
    pool.nexiting++;
    pool.retired++;
    pthread_mutex_unlock(&pool.lock);

    pthread_detach(pthread_self());
    actx_thread_shutdown();
    pthread_cond_destroy(&self->cond);
    free(self);

    pthread_mutex_lock(&pool.lock);
    if (--pool.nexiting == 0) {
        pthread_cond_broadcast(&pool.exit_cond);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/*
 * A worker's loop is about to sleep in a nested wait (or woke up from one).
 * A blocked worker does not count against the size: if work is queued and
 * nobody is on the way to it, another worker is woken or created.
 */
static void pool_sleep_hook(actx__loop *loop, bool entering)
{
    (void)loop;
    pthread_mutex_lock(&pool.lock);
    if (entering) {
        pool.nblocked++;
        kick_locked();
    } else {
        pool.nblocked--;
    }
    pthread_mutex_unlock(&pool.lock);
}

/* ------------------------------------------------------------------------ */
/* Start, fork, stop.                                                        */

static void pool_stop(void);

static void atfork_prepare(void)
{
    pthread_mutex_lock(&pool.lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&pool.lock);
}

/*
 * The child has none of the parent's workers.  It starts with an empty
 * pool of the same size; the parent's queued and running work is not run
 * again in the child (its requests never complete there).
 */
static void atfork_child(void)
{
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.exit_cond, NULL);
    pool.head = pool.tail = NULL;
    atomic_store_explicit(&pool.qlen, 0, memory_order_relaxed);
    pool.nthreads = pool.nblocked = pool.nwaking = pool.nidle = 0;
    pool.nexiting = 0;
    pool.spinning = false;
    pool.idle = NULL;
    pool.all = NULL;
}

static int env_size(void)
{
    const char *s = getenv("ACTX_POOL_THREADS");
    char *end;
    long v;

    if (!s || !*s) {
        return 0;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > POOL_THREADS_CAP) {
        actx__misuse("actx pool", "ignoring a bad ACTX_POOL_THREADS");
        return 0;
    }
    return (int)v;
}

static int default_size(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = env_size();

    if (n > 0) {
        return n;
    }
    if (cpus > POOL_THREADS_CAP / 2) {
        cpus = POOL_THREADS_CAP / 2;
    }
    return cpus * 2 < 4 ? 4 : (int)cpus * 2;
}

static void start_locked(void)
{
    if (pool.size == 0) {
        pool.size = default_size();
    }
    pool.started = true;
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    /*
     * atexit rather than a destructor: registered after the sanitizers'
     * own exit hooks, so it runs before the leak check, and for a
     * dlopen()ed libactx it runs at dlclose too (glibc's atexit is
     * __cxa_atexit with this object's handle).
     */
    atexit(pool_stop);
}

/*
 * Process exit: no new work starts.  Queued work is cancelled (done would
 * get -ECANCELED if its owner ever polled again); running work gets up to
 * POOL_EXIT_NS to finish, then every worker is joined.  A worker still
 * running after that (a work function stuck forever) is detached and left
 * alone: nothing it may touch is freed.
 */
static void pool_stop(void)
{
    actx__job *cancelled;
    struct timespec dl;
    worker *w;

    /* pthread_timedjoin_np and exit_cond measure CLOCK_REALTIME. */
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += POOL_EXIT_NS / 1000000000;

    pthread_mutex_lock(&pool.lock);
    if (atomic_load_explicit(&pool.stopping, memory_order_relaxed)) {
        pthread_mutex_unlock(&pool.lock);
        return;
    }
    atomic_store_explicit(&pool.stopping, true, memory_order_relaxed);
    cancelled = pool.head;
    for (actx__job *j = pool.head; j; j = j->next) {
        j->state = JOB_CANCELLED;
    }
    pool.head = pool.tail = NULL;
    atomic_store_explicit(&pool.qlen, 0, memory_order_relaxed);
    for (w = pool.idle; w; w = w->idle_next) {
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&pool.lock);

    while (cancelled) {
        actx__job *next = cancelled->next;

        actx__req_post(cancelled->req, -ECANCELED);
        cancelled = next;
    }

    for (;;) {
        pthread_mutex_lock(&pool.lock);
        w = pool.all;
        if (w && pthread_equal(w->tid, pthread_self())) {
            /* exit() from a work function: cannot join ourselves. */
            registry_remove_locked(w);
            pthread_mutex_unlock(&pool.lock);
            continue;
        }
        if (w) {
            registry_remove_locked(w);
            pool.nthreads--;
        }
        pthread_mutex_unlock(&pool.lock);
        if (!w) {
            break;
        }
        if (pthread_timedjoin_np(w->tid, NULL, &dl) == 0) {
            pthread_cond_destroy(&w->cond);
            free(w);
        } else {
            pthread_detach(w->tid); /* stuck: leave it (and w) alone */
        }
    }
    /* Retired workers finishing their own shutdown. */
    pthread_mutex_lock(&pool.lock);
    while (pool.nexiting > 0) {
        if (pthread_cond_timedwait(&pool.exit_cond, &pool.lock, &dl) ==
            ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&pool.lock);
}

/* ------------------------------------------------------------------------ */
/* Submission and cancellation.                                              */

actx_req *actx__pool_submit(actx_work_fn *work, const void *arg,
                            size_t argsize, actx_done_fn *done, void *opaque)
{
    actx__loop *loop = actx__loop_get();
    actx__job *job;
    actx_req *req;
    bool no_thread;

    if (ACTX__UNLIKELY(!loop)) {
        return NULL;
    }
    if (ACTX__UNLIKELY(!work || argsize > ACTX__JOB_ARGS)) {
        errno = EINVAL;
        return NULL;
    }
    if (ACTX__UNLIKELY(loop->closed)) {
        errno = EPIPE;
        return NULL;
    }
    job = job_alloc(loop);
    if (ACTX__UNLIKELY(!job)) {
        return NULL;
    }
    job->work = work;
    if (argsize) {
        memcpy(job->args, arg, argsize);
        job->arg = job->args;
    } else {
        job->arg = (void *)arg;
    }

    pthread_mutex_lock(&pool.lock);
    if (ACTX__UNLIKELY(!pool.started)) {
        start_locked();
    }
    if (ACTX__UNLIKELY(pool.qlen >= POOL_QUEUE_MAX ||
                       atomic_load_explicit(&pool.stopping,
                                            memory_order_relaxed))) {
        int err = pool.qlen >= POOL_QUEUE_MAX ? EAGAIN : EPIPE;

        pthread_mutex_unlock(&pool.lock);
        actx__job_free(job);
        errno = err;
        return NULL;
    }
    /* The request last: nothing can fail after it exists. */
    req = actx__req_alloc(loop, done, opaque);
    if (ACTX__UNLIKELY(!req)) {
        pthread_mutex_unlock(&pool.lock);
        actx__job_free(job);
        return NULL;
    }
    req->job = job;
    job->req = req;
    queue_append_locked(job);
    kick_locked();
    no_thread = pool.nthreads == 0;
    if (ACTX__UNLIKELY(no_thread)) {
        /* Not a single worker could be created: fail the request. */
        queue_unlink_locked(job);
        job->state = JOB_CANCELLED;
    }
    pthread_mutex_unlock(&pool.lock);
    if (ACTX__UNLIKELY(no_thread)) {
        actx__req_post(req, -EAGAIN);
    }
    return req;
}

actx_req *actx_submit(actx_work_fn *work, actx_done_fn *done, void *opaque)
{
    return actx__pool_submit(work, opaque, 0, done, opaque);
}

int actx__job_cancel(actx__job *job)
{
    pthread_mutex_lock(&pool.lock);
    if (job->state != JOB_QUEUED) {
        pthread_mutex_unlock(&pool.lock);
        return -EBUSY;
    }
    queue_unlink_locked(job);
    job->state = JOB_CANCELLED;
    pthread_mutex_unlock(&pool.lock);
    /* Owner thread: queued behind earlier arrivals, never run inline. */
    actx__req_post(job->req, -ECANCELED);
    return 0;
}

int actx_req_cancel(actx_req *req)
{
    actx__loop *loop = actx__tls_loop;

    if (!req) {
        return -EINVAL;
    }
    if (!loop || loop->mb != req->mb) {
        actx__misuse(__func__, "not called on the owner thread");
        return -EPERM;
    }
    return req->job ? actx__job_cancel(req->job) : -EBUSY;
}

int actx_pool_set_size(int n)
{
    int rc = 0;

    if (n < 1 || n > POOL_THREADS_CAP) {
        return -EINVAL;
    }
    pthread_mutex_lock(&pool.lock);
    if (pool.started) {
        rc = -EBUSY;
    } else {
        pool.size = n;
    }
    pthread_mutex_unlock(&pool.lock);
    return rc;
}
