/*
 * pool.c - the process-wide worker pool: jobs, FIFO queue, growth for
 * nested waits, idle retirement, cancellation, stop at process exit.
 *
 * A job is the pool half of a request: the request (one cache line, owned
 * by its loop, see req.c) points at its job, the job at its request.  Jobs
 * come from a per-loop free list and go back to whichever thread's loop
 * frees them.
 *
 * Submission is lock-free: a job is pushed with one CAS onto `incoming`, a
 * LIFO stack (the mailbox's design).  Workers, under pool.lock, take the
 * whole stack with one exchange, reverse it and append it to `fifo`, and
 * dequeue from the head: work is started in submission order.  The
 * submitting thread takes the lock only to wake or create a worker, which
 * does not happen while every worker is busy.
 *
 * Job states (job->state, atomic): QUEUED -> RUNNING (a worker, just before
 * it runs the work) or QUEUED -> CANCELLED (actx_req_cancel on the owner,
 * or process exit).  Both are CASes, so exactly one side wins.  Who frees a
 * job:
 *   - normally the request: req_put (owner) or actx__req_refused (a worker,
 *     when the owner shut down) call actx__job_free via req->job;
 *   - a job cancelled by its owner is still linked in incoming or fifo, so
 *     the cancel detaches it (req->job = NULL) and whoever dequeues it
 *     frees it; nobody else touches it after the CAS;
 *   - after a worker posts the completion (actx__req_post) it never touches
 *     the job or the request again: either may be freed at once.
 *
 * Waking workers without a lock on the submit path (all seq_cst):
 *
 *   submitter: S1 CAS push job      idle worker: W1 nidle++
 *              S2 load nidle, nwaking,          W2 load incoming (and fifo
 *                 nthreads, nblocked               under the lock); empty:
 *              S3 if a worker must be              sleep
 *                 woken or created: lock, kick
 *
 *   Either W2 sees the job, or S2 sees nidle > 0 and S3 wakes someone.  A
 *   submitter does not wake a second worker while one is already on its
 *   way (nwaking > 0): the waking worker decrements nwaking under the lock
 *   *before* it takes `incoming`, so a job pushed before a submitter saw
 *   nwaking > 0 is seen by that worker.  A woken worker that finds more
 *   queued work than workers on their way wakes the next (a chain), so a
 *   burst ramps up without the submitter paying for every wake-up.
 *
 *   A worker that blocks in a nested wait (loop->sleep_hook) or retires
 *   follows the same pattern: nblocked++ / nidle-- first, then it looks at
 *   the queue, so a submitter that saw the old count has its job seen.
 *
 * Growth: nblocked counts workers sleeping in their own loop (a nested
 * ACTX_WAIT_WHILE in a work function).  The pool creates a thread when work
 * is queued, no worker is idle or on its way, and (threads - blocked) <
 * size: blocked workers do not count against the size, so nested
 * submit-and-wait cannot deadlock the pool.
 *
 * When no thread can be created (pthread_create or the worker's allocation
 * fails, or the cap), nothing accepted may be stranded: a submission that
 * no worker will ever come for (none exists, or all are blocked) is taken
 * back and refused with EAGAIN (submit_kick, submit_retract), and a worker
 * about to block in a nested wait while such work is queued runs it
 * inline instead of sleeping (pool_sleep_hook).
 *
 * Idle workers sleep on a futex word of their own, on a LIFO stack: the
 * most recently idle (warmest) worker is woken first and the coldest ones
 * time out and retire.  Not a condition variable: glibc's
 * pthread_cond_wait takes the mutex back marked contended, so a woken
 * worker's next unlock of the pool lock was one more system call (a
 * FUTEX_WAKE with nobody to wake) between its waker and its job.
 *
 * Spinning before the sleep.  Waking a sleeping thread costs a system call
 * on the waker's side and, on a virtual machine whose other vCPU is idle,
 * the hypervisor's wake-up of that vCPU: tens of microseconds, the whole
 * cost of a pool round trip with one job in flight.  So a worker that
 * finished a job and found the queue empty watches `incoming' for a while
 * before it goes idle (worker_spin), with these rules:
 *   - one spinner at a time (nspinning is 0 or 1): it costs at most one
 *     CPU, never the CPU the submitting loops need on a small machine;
 *   - only while a CPU is left for it (spin_has_a_cpu): the workers
 *     running jobs and one submitting loop each need one.  On a machine
 *     of two CPUs a worker spins only while no other runs a job: the
 *     round trip with one job in flight the spin is for.  With others
 *     running, they take the next job when they finish, and a spinner
 *     would only take a CPU from them or from the submitters (also when
 *     they only wait for a lock, as Python work functions wait for the
 *     GIL); on a single CPU no worker spins;
 *   - a submitter that sees a spinner wakes nobody: S1 push, S2 load
 *     nspinning (seq_cst) against the spinner's decrement of nspinning and
 *     its exchange of incoming (seq_cst): either the spinner takes the job
 *     or the submitter sees it gone and wakes as usual;
 *   - the window adapts per worker as a loop's polling window does
 *     (poll.c): it grows while the wait for the next job (window and sleep)
 *     ends within POOL_SPIN_MAX_NS, halves while it does not, and drops to
 *     0 after a long idle, so a pool whose work comes rarely never spins;
 *   - it gives the CPU away now and then (sched_yield), as the loop does.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Spare jobs kept per thread. */
#define JOB_FREE_MAX 4096
/* Most threads the pool ever runs, nested waits included. */
#define POOL_THREADS_CAP 4096
/* Most outstanding requests per thread; actx_submit then fails (EAGAIN). */
#define POOL_OUTSTANDING_MAX (1L << 20)
/* An idle worker of the base size retires after this long. */
#define POOL_IDLE_NS (5 * 1000 * 1000 * 1000LL)
/* A worker beyond the size (grown for nested waits) retires sooner. */
#define POOL_EXTRA_IDLE_NS (200 * 1000 * 1000LL)
/* The longest a worker spins before it sleeps, and where a window starts. */
#define POOL_SPIN_MAX_NS (50 * 1000)
#define POOL_SPIN_START_NS (4 * 1000)
#define POOL_SPIN_MIN_NS 500
/* How long process exit waits for running work before detaching. */
#define POOL_EXIT_S 2

enum { JOB_QUEUED = 1, JOB_RUNNING, JOB_CANCELLED };

struct actx__job {
    actx__job *next; /* incoming, fifo, or a free list */
    actx_req *req;
    actx_work_fn *work;
    void *arg;
    _Atomic int state;
    alignas(8) unsigned char args[ACTX__JOB_ARGS];
};

typedef struct worker {
    pthread_t tid;
    int number;                /* its name is actx-pool-<number> */
    _Atomic bool busy;         /* in a work function (actx_pool_stats) */
    _Atomic uint32_t wake_seq; /* futex word: bumped by every wake-up */
    bool woken;                /* popped from the idle stack by a waker */
    _Atomic int wake_refs;     /* wakers about to bump wake_seq */
    struct worker *idle_next;  /* idle stack */
    struct worker *all_prev, *all_next; /* registry (joined at exit) */
    int64_t spin_ns;     /* its spin window (worker_spin), 0: none */
    uint64_t wait_start; /* when its wait for the next job began, or 0 */
} worker;

static struct {
    /* Submitters push here with a CAS; workers take it all. */
    alignas(ACTX__CACHELINE) _Atomic(actx__job *) incoming;

    /* Read by submitters without the lock; written under it. */
    alignas(ACTX__CACHELINE) _Atomic int nidle; /* on the idle stack */
    _Atomic int nwaking;   /* woken or created, not yet at the queue */
    _Atomic int nthreads;  /* in the registry (created, not retired) */
    _Atomic int nblocked;  /* in a nested wait */
    _Atomic int nspinning; /* watching incoming before it sleeps (0 or 1) */
    _Atomic long queued;   /* qlen, for the spinner (relaxed) */
    _Atomic bool stopping;
    _Atomic int size; /* 0 until the pool starts */
    int ncpus;        /* online CPUs, set at the start (for the spin) */

    /* Under the lock. */
    alignas(ACTX__CACHELINE) pthread_mutex_t lock;
    actx__job *head, **tail;
    long qlen;
    bool started;
    int size_set; /* actx_pool_set_size, before the start */
    worker *idle;
    worker *all;
    int nexiting; /* retired, still shutting their loop down */
    pthread_cond_t exit_cond;
    unsigned long spawned, retired, spawn_failed;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .exit_cond = PTHREAD_COND_INITIALIZER,
    .tail = &pool.head,
};

static bool pool_sleep_hook(actx__loop *loop, bool entering);

/* This thread is a pool worker: every loop it has carries the hook. */
static __thread bool tls_worker;

/* Tests (tests/c/test-pool.c): spins started, and a fixed window. */
_Atomic unsigned long actx__pool_spins;
_Atomic int64_t actx__pool_spin_fixed_ns; /* 0: each worker's own */

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

/* Any thread.  The job is linked nowhere (see the top comment). */
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
/* The queue.  All _locked functions need pool.lock.                         */

/* Move what was submitted since the last call to the fifo, in order. */
static void grab_locked(void)
{
    actx__job *lifo, *fifo = NULL, *last;
    long n = 0;

    /* Relaxed first: most calls find nothing and need no exchange. */
    if (!atomic_load_explicit(&pool.incoming, memory_order_relaxed)) {
        return;
    }
    /* seq_cst: acquires the jobs' contents (S1) and orders W2. */
    lifo = atomic_exchange(&pool.incoming, NULL);
    last = lifo;
    while (lifo) {
        actx__job *next = lifo->next;

        lifo->next = fifo;
        fifo = lifo;
        lifo = next;
        n++;
    }
    if (fifo) {
        *pool.tail = fifo;
        pool.tail = &last->next;
        pool.qlen += n;
        atomic_store_explicit(&pool.queued, pool.qlen, memory_order_relaxed);
    }
}

/* Take the oldest job, or NULL (it may be cancelled: see dequeue users). */
static actx__job *take_locked(void)
{
    actx__job *job;

    if (!pool.head) {
        grab_locked();
    }
    job = pool.head;
    if (job) {
        pool.head = job->next;
        if (!pool.head) {
            pool.tail = &pool.head;
        }
        pool.qlen--;
        atomic_store_explicit(&pool.queued, pool.qlen, memory_order_relaxed);
    }
    return job;
}

/* Queued work, incoming included (seq_cst load: W2 of the top comment). */
static bool have_work_locked(void)
{
    return pool.head != NULL || atomic_load(&pool.incoming) != NULL;
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
 * The smallest number no live worker has: threads keep short, stable names
 * (actx-pool-0 ... in top and gdb) however often workers retire and come
 * back, and the name fits the kernel's 15 characters.
 */
static int free_number_locked(void)
{
    unsigned char used[POOL_THREADS_CAP / 8] = {0};
    worker *w;
    int n;

    for (w = pool.all; w; w = w->all_next) {
        if (w->number < POOL_THREADS_CAP) {
            used[w->number / 8] |= (unsigned char)(1u << (w->number % 8));
        }
    }
    for (n = 0; n < POOL_THREADS_CAP; n++) {
        if (!(used[n / 8] & (1u << (n % 8)))) {
            break;
        }
    }
    return n;
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
    w->number = free_number_locked();
    /* Pool threads take no signals: they belong to the application. */
    sigfillset(&all);
    pthread_attr_init(&attr);
    pthread_attr_setsigmask_np(&attr, &all);
    rc = pthread_create(&w->tid, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(w);
        pool.spawn_failed++;
        return false;
    }
    w->all_next = pool.all;
    if (pool.all) {
        pool.all->all_prev = w;
    }
    pool.all = w;
    atomic_fetch_add(&pool.nthreads, 1);
    atomic_fetch_add(&pool.nwaking, 1); /* it looks at the queue first */
    pool.spawned++;
    return true;
}

/*
 * More queued work than workers on their way to it: wake the warmest idle
 * worker, or create one if the pool may grow.  One worker per call; a woken
 * worker calls this again when it takes its job (the chain).  Returns the
 * worker to signal with wake_worker() once the caller dropped the lock:
 * signalling under the lock made the woken worker sleep again at once on
 * the lock its waker still held (two context switches per hand-off).
 */
static worker *kick_locked(void)
{
    int waking = atomic_load(&pool.nwaking);
    worker *w;

    grab_locked();
    if (pool.qlen <= waking) {
        return NULL;
    }
    w = pool.idle;
    if (w) {
        pool.idle = w->idle_next;
        /* Set under the lock: w will not retire from this wait. */
        w->woken = true;
        atomic_fetch_add(&pool.nwaking, 1);
        atomic_fetch_sub(&pool.nidle, 1);
        /* Keeps w allocated until wake_worker() signalled it. */
        atomic_fetch_add(&w->wake_refs, 1);
        return w;
    }
    if (atomic_load(&pool.nthreads) - atomic_load(&pool.nblocked) < pool.size &&
        atomic_load(&pool.nthreads) < POOL_THREADS_CAP) {
        spawn_locked();
    }
    return NULL;
}

/*
 * The idle wait's futex.  The worker reads wake_seq under the pool lock,
 * after it found nothing to do and woken clear, and sleeps only while the
 * word still holds that value; a waker sets woken (or stopping) under the
 * lock and bumps the word after: either the worker's check under the lock
 * sees the flag, or the bump comes after its read and the wait returns.
 */
static void futex_bump(worker *w)
{
    atomic_fetch_add(&w->wake_seq, 1);
    syscall(SYS_futex, &w->wake_seq, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL,
            NULL, 0);
}

/* 0 (woken, or the word had moved on), -ETIMEDOUT at the absolute
 * CLOCK_MONOTONIC deadline, or -EINTR. */
static int futex_wait_until(worker *w, uint32_t seen, const struct timespec *dl)
{
    if (syscall(SYS_futex, &w->wake_seq, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                seen, dl, NULL, FUTEX_BITSET_MATCH_ANY) < 0 &&
        errno != EAGAIN) {
        return -errno;
    }
    return 0;
}

/* After the lock was dropped: wake the worker kick_locked() popped. */
static void wake_worker(worker *w)
{
    if (w) {
        futex_bump(w);
        /* Release: the wake is done before the worker may be freed. */
        atomic_fetch_sub_explicit(&w->wake_refs, 1, memory_order_release);
    }
}

/* Before a worker is freed: no waker may still be about to signal it. */
static void worker_quiesce(worker *w)
{
    while (atomic_load_explicit(&w->wake_refs, memory_order_acquire) != 0) {
        sched_yield();
    }
}

/* ------------------------------------------------------------------------ */
/* Workers.                                                                  */

static void idle_remove_locked(worker *self)
{
    worker **pp;

    for (pp = &pool.idle; *pp; pp = &(*pp)->idle_next) {
        if (*pp == self) {
            *pp = self->idle_next;
            atomic_fetch_sub(&pool.nidle, 1); /* before have_work_locked */
            return;
        }
    }
}

/*
 * Every loop of a worker carries the hook that counts nested waits: the
 * first one, made here, and any later one, made by the first call after a
 * work function shut the loop down (actx_thread_shutdown) - also within
 * that same work function, which may go on to wait for nested work.
 */
void actx__pool_loop_init(actx__loop *loop)
{
    if (tls_worker) {
        loop->sleep_hook = pool_sleep_hook;
    }
}

static void worker_loop_setup(void)
{
    tls_worker = true;
    if (!actx__tls_loop) {
        /* Without a loop (EMFILE) the worker still runs plain work. */
        (void)actx_thread_init();
    }
}

/*
 * Between jobs: put back what a work function left behind.  Contexts it
 * left pushed are popped; completions of requests it submitted without
 * waiting run here (their context is this thread's root).
 */
static void worker_tidy(void)
{
    actx__loop *loop = actx__tls_loop;

    if (ACTX__UNLIKELY(!loop)) {
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
    actx__io_flush(loop); /* file AIO the work function left on the ring */
}

/* Run one dequeued job, unless its owner cancelled it (then free it). */
static void run_job(worker *self, actx__job *job)
{
    int queued = JOB_QUEUED;
    actx_req *req;
    long ret;

    /* Pairs with the CAS in actx__job_cancel: exactly one wins. */
    if (!atomic_compare_exchange_strong(&job->state, &queued, JOB_RUNNING)) {
        actx__job_free(job); /* cancelled: detached from its request */
        atomic_fetch_add(&pool.nwaking, 1); /* see below */
        return;
    }
    req = job->req;
    /* Relaxed: only actx_pool_stats reads it, as a snapshot. */
    atomic_store_explicit(&self->busy, true, memory_order_relaxed);
    ret = job->work(job->arg);
    atomic_store_explicit(&self->busy, false, memory_order_relaxed);
    /*
     * This worker looks at the queue again right after the post; count it
     * as on its way there (worker_main uncounts it under the lock before it
     * takes the queue, as a woken worker does), so that the submission the
     * completion triggers does not wake a second worker for one job.
     */
    atomic_fetch_add(&pool.nwaking, 1);
    /* From here on the job and the request may be freed. */
    actx__req_post(req, ret);
    worker_tidy();
}

static void spin_grow(worker *self)
{
    int64_t w = self->spin_ns ? self->spin_ns * 2 : POOL_SPIN_START_NS;

    self->spin_ns = w < POOL_SPIN_MAX_NS ? w : POOL_SPIN_MAX_NS;
}

/* A wait for the next job (window and sleep) took ns: adapt the window. */
static void spin_adapt(worker *self, uint64_t ns)
{
    if (ns <= POOL_SPIN_MAX_NS) {
        spin_grow(self);
    } else if (ns / 16 > POOL_SPIN_MAX_NS) {
        self->spin_ns = 0; /* idle: stop spinning at once */
    } else {
        self->spin_ns /= 2;
        if (self->spin_ns < POOL_SPIN_MIN_NS) {
            self->spin_ns = 0;
        }
    }
}

static inline void spin_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * Is a CPU left for the calling worker to spin on?  The other workers
 * that run a job (or were woken for one: threads neither idle nor asleep
 * in a nested wait, the caller aside) and one submitting loop each take
 * one.  Relaxed reads: it only decides whether to spin.
 */
static bool spin_has_a_cpu(void)
{
    int others = atomic_load_explicit(&pool.nthreads, memory_order_relaxed) -
                 atomic_load_explicit(&pool.nidle, memory_order_relaxed) -
                 atomic_load_explicit(&pool.nblocked, memory_order_relaxed) - 1;

    return others + 2 <= pool.ncpus;
}

/*
 * Before going idle (the top comment, "Spinning before the sleep"): watch
 * incoming for up to the worker's window.  True if work came; false if
 * the window ended (or another worker spins or runs a job): the worker
 * then goes idle as usual, and its wait is timed from wait_start.
 */
static bool worker_spin(worker *self)
{
    uint64_t now = actx_now_ns(), end;
    int64_t window =
        atomic_load_explicit(&actx__pool_spin_fixed_ns, memory_order_relaxed);
    int expected = 0;
    bool found = false;

    self->wait_start = now;
    if (window == 0) {
        window = self->spin_ns;
    }
    if (window == 0) {
        /* Not spinning; the sleep alone may show that it should. */
        return false;
    }
    if (!spin_has_a_cpu()) {
        return false;
    }
    if (!atomic_compare_exchange_strong(&pool.nspinning, &expected, 1)) {
        return false;
    }
    /* One spinner at a time (nspinning): a count without a locked RMW. */
    atomic_store_explicit(
        &actx__pool_spins,
        atomic_load_explicit(&actx__pool_spins, memory_order_relaxed) + 1,
        memory_order_relaxed);
    end = now + (uint64_t)window;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&pool.incoming, memory_order_relaxed) ||
            atomic_load_explicit(&pool.queued, memory_order_relaxed) > 0 ||
            atomic_load_explicit(&pool.stopping, memory_order_relaxed)) {
            found = true;
            break;
        }
        if ((i & 7) == 0 && (now = actx_now_ns()) >= end) {
            break;
        }
        if ((i & 63) == 0) {
            sched_yield();
        } else {
            spin_relax();
        }
    }
    /* seq_cst: before the exchange of incoming that follows (take). */
    atomic_fetch_sub(&pool.nspinning, 1);
    if (found) {
        if (actx_now_ns() - self->wait_start > (uint64_t)window / 2) {
            spin_grow(self); /* found late in the window */
        }
        self->wait_start = 0;
    }
    return found;
}

/* ts = start + ns (CLOCK_MONOTONIC). */
static void deadline_after(struct timespec *ts, const struct timespec *start,
                           int64_t ns)
{
    ts->tv_sec = start->tv_sec + ns / 1000000000;
    ts->tv_nsec = start->tv_nsec + ns % 1000000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/*
 * Sleep on the idle stack until woken, stopped or timed out; true: retire.
 * A worker beyond the size retires after the shorter idle time.  A worker
 * that went idle beyond it decides again when that time is up: several
 * extra workers idle at once must not all retire and take the base
 * size's with them, so one that finds itself within the size then waits
 * on to the base idle time.
 */
static bool idle_wait_locked(worker *self)
{
    struct timespec start, ts;
    bool extra = atomic_load(&pool.nthreads) > pool.size;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &start);
    deadline_after(&ts, &start, extra ? POOL_EXTRA_IDLE_NS : POOL_IDLE_NS);
    self->woken = false;
    self->idle_next = pool.idle;
    pool.idle = self;
    atomic_fetch_add(&pool.nidle, 1); /* W1 */
    if (have_work_locked()) {         /* W2 */
        idle_remove_locked(self);
        return false;
    }
    while (!self->woken &&
           !atomic_load_explicit(&pool.stopping, memory_order_relaxed)) {
        uint32_t seen;

        if (rc == -ETIMEDOUT) {
            if (!extra || atomic_load(&pool.nthreads) > pool.size) {
                break;
            }
            /* Within the size (now): the base idle time applies. */
            extra = false;
            deadline_after(&ts, &start, POOL_IDLE_NS);
        }
        seen = atomic_load(&self->wake_seq);
        pthread_mutex_unlock(&pool.lock);
        rc = futex_wait_until(self, seen, &ts);
        pthread_mutex_lock(&pool.lock);
    }
    if (self->woken) {
        /* The waker counted us; uncount before looking at the queue. */
        atomic_fetch_sub(&pool.nwaking, 1);
        if (self->wait_start != 0) {
            spin_adapt(self, actx_now_ns() - self->wait_start);
            self->wait_start = 0;
        }
        return false;
    }
    if (rc == -ETIMEDOUT) {
        self->spin_ns = 0;
        self->wait_start = 0;
    }
    idle_remove_locked(self);
    return rc == -ETIMEDOUT && !have_work_locked() &&
           !atomic_load_explicit(&pool.stopping, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
    worker *self = arg;
    bool retire = false;
    char name[16];

    /* A failure only leaves the program's name: nothing to report. */
    snprintf(name, sizeof(name), "actx-pool-%d", self->number);
    pthread_setname_np(pthread_self(), name);
    worker_loop_setup();
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_sub(&pool.nwaking, 1); /* counted by spawn_locked */
    for (;;) {
        actx__job *job = take_locked();

        if (job) {
            worker *next = NULL;

            if (pool.qlen > 0 || atomic_load(&pool.incoming)) {
                next = kick_locked(); /* more work: bring in the next one */
            }
            pthread_mutex_unlock(&pool.lock);
            wake_worker(next);
            run_job(self, job);
            if (!next) {
                /* The queue was empty when this job was taken. */
                worker_spin(self);
            }
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_sub(&pool.nwaking, 1); /* counted by run_job */
            continue;
        }
        if (atomic_load_explicit(&pool.stopping, memory_order_relaxed)) {
            break;
        }
        if (idle_wait_locked(self)) {
            retire = true;
            break;
        }
    }

    if (!retire) {
        /* Process exit: pool_stop joins us (we stay in the registry). */
        pthread_mutex_unlock(&pool.lock);
        return NULL;
    }
    registry_remove_locked(self);
    atomic_fetch_sub(&pool.nthreads, 1);
    pool.nexiting++;
    pool.retired++;
    pthread_mutex_unlock(&pool.lock);

    pthread_detach(pthread_self());
    actx_thread_shutdown();
    worker_quiesce(self);
    free(self);

    pthread_mutex_lock(&pool.lock);
    if (--pool.nexiting == 0) {
        pthread_cond_broadcast(&pool.exit_cond);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/*
 * Nobody will come for queued work: every pool thread (maybe none) is
 * blocked in a nested wait, none is idle or on its way, and kick_locked()
 * could not create one (pthread_create or the worker's allocation failed,
 * or the thread cap).  Blocked workers may never wake: the work they wait
 * for may be exactly what is queued.
 */
static bool stranded_locked(void)
{
    return atomic_load(&pool.nthreads) == atomic_load(&pool.nblocked) &&
           atomic_load(&pool.nwaking) == 0 && atomic_load(&pool.nidle) == 0;
}

/* A job run by a pool thread inside its own nested wait (see below). */
static void run_inline(actx__loop *loop, actx__job *job)
{
    actx_ctx *cur = loop->cur;
    int queued = JOB_QUEUED;
    actx_req *req;
    long ret;

    if (!atomic_compare_exchange_strong(&job->state, &queued, JOB_RUNNING)) {
        actx__job_free(job); /* cancelled: as in run_job */
        return;
    }
    req = job->req;
    ret = job->work(job->arg);
    actx__req_post(req, ret);
    if (ACTX__UNLIKELY(actx__tls_loop == loop && loop->cur != cur)) {
        actx__misuse("actx_submit", "a work function returned with a "
                                    "context still pushed; popping it");
        while (loop->cur != cur && loop->cur->parent && actx_pop() == 0) {
        }
    }
}

/*
 * A worker's loop is about to sleep in a nested wait (entering), or woke
 * up from one.  A blocked worker does not count against the size: if work
 * is queued and nobody is on the way to it, another worker is woken or
 * created.  If none can be created and nobody else will come, the worker
 * runs the queued work itself, here, instead of sleeping (a nested wait
 * must not deadlock whatever the thread limit): it returns false, and the
 * poll looks again at what became runnable (the nested job's completion)
 * instead of sleeping.  True: counted as blocked, sleep.
 */
static bool pool_sleep_hook(actx__loop *loop, bool entering)
{
    bool ran = false;
    worker *w;

    pthread_mutex_lock(&pool.lock);
    if (!entering) {
        atomic_fetch_sub(&pool.nblocked, 1);
        pthread_mutex_unlock(&pool.lock);
        return true;
    }
    atomic_fetch_add(&pool.nblocked, 1); /* before kick looks */
    w = kick_locked();
    while (!w && have_work_locked() && stranded_locked()) {
        actx__job *job = take_locked();

        if (!job) {
            break;
        }
        atomic_fetch_sub(&pool.nblocked, 1); /* running, not blocked */
        pthread_mutex_unlock(&pool.lock);
        run_inline(loop, job);
        ran = true;
        if (actx__tls_loop != loop) {
            return false; /* the work shut this loop down */
        }
        pthread_mutex_lock(&pool.lock);
        atomic_fetch_add(&pool.nblocked, 1);
        w = kick_locked();
    }
    if (ran) {
        atomic_fetch_sub(&pool.nblocked, 1); /* not going to sleep */
    }
    pthread_mutex_unlock(&pool.lock);
    wake_worker(w);
    return !ran;
}

/* ------------------------------------------------------------------------ */
/* Start, fork, stop.                                                        */

static void pool_stop(void);

/* Records of workers a fork child inherited (their threads are gone). */
static worker *forked_workers;

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
    /* Held by this thread since prepare; the condition's waiters were
     * other threads. */
    pthread_cond_init(&pool.exit_cond, NULL);
    atomic_store(&pool.incoming, NULL);
    pool.head = NULL;
    pool.tail = &pool.head;
    pool.qlen = 0;
    atomic_store_explicit(&pool.queued, 0, memory_order_relaxed);
    atomic_store(&pool.nidle, 0);
    atomic_store(&pool.nwaking, 0);
    atomic_store(&pool.nthreads, 0);
    atomic_store(&pool.nblocked, 0);
    atomic_store(&pool.nspinning, 0);
    pool.nexiting = 0;
    pool.idle = NULL;
    /* The parent's workers' records stay reachable (leak checkers). */
    if (pool.all) {
        worker *last = pool.all;

        while (last->all_next) {
            last = last->all_next;
        }
        last->all_next = forked_workers;
        forked_workers = pool.all;
    }
    pool.all = NULL;
    /* A worker that forked: in the child it is no worker of this pool. */
    tls_worker = false;
    pthread_mutex_unlock(&pool.lock);
}

/*
 * Registered when the library is loaded, not when the pool starts: a fork
 * racing with the start (which holds pool.lock) would otherwise give the
 * child a pool.lock held by a thread it does not have.
 */
__attribute__((constructor)) static void atfork_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Sets *bad for a malformed ACTX_POOL_THREADS: the caller reports it once
 * it no longer holds pool.lock (a log handler may call into the pool). */
static int env_size(bool *bad)
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
        *bad = true;
        return 0;
    }
    return (int)v;
}

/* Online CPUs, 1 to POOL_THREADS_CAP / 2 (1 if the count is unknown). */
static int online_cpus(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    return cpus < 1                      ? 1
           : cpus > POOL_THREADS_CAP / 2 ? POOL_THREADS_CAP / 2
                                         : (int)cpus;
}

static int default_size(int cpus, bool *bad)
{
    int n = env_size(bad);

    if (n > 0) {
        return n;
    }
    return cpus * 2 < 4 ? 4 : cpus * 2;
}

static void start_locked(bool *bad_env)
{
    /* Before the first worker exists: workers read it without the lock. */
    pool.ncpus = online_cpus();
    atomic_store(&pool.size, pool.size_set ? pool.size_set
                                           : default_size(pool.ncpus, bad_env));
    pool.started = true;
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
 * POOL_EXIT_S to finish, then every worker is joined.  A worker still
 * running after that (a work function stuck forever) is detached and left
 * alone: nothing it may touch is freed.
 */
static void pool_stop(void)
{
    actx__job *queued;
    struct timespec dl;
    worker *w;

    pthread_mutex_lock(&pool.lock);
    if (atomic_load(&pool.stopping)) {
        pthread_mutex_unlock(&pool.lock);
        return;
    }
    atomic_store(&pool.stopping, true);
    grab_locked();
    queued = pool.head;
    pool.head = NULL;
    pool.tail = &pool.head;
    pool.qlen = 0;
    atomic_store_explicit(&pool.queued, 0, memory_order_relaxed);
    for (w = pool.idle; w; w = w->idle_next) {
        futex_bump(w); /* under the lock: w cannot retire meanwhile */
    }
    pthread_mutex_unlock(&pool.lock);

    /* We dequeued them: the same rule as run_job. */
    while (queued) {
        actx__job *next = queued->next;
        int q = JOB_QUEUED;

        if (atomic_compare_exchange_strong(&queued->state, &q, JOB_CANCELLED)) {
            actx__req_post(queued->req, -ECANCELED);
        } else {
            actx__job_free(queued);
        }
        queued = next;
    }

    /* pthread_timedjoin_np and exit_cond measure CLOCK_REALTIME. */
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += POOL_EXIT_S;
    for (;;) {
        pthread_mutex_lock(&pool.lock);
        w = pool.all;
        if (w) {
            registry_remove_locked(w);
            atomic_fetch_sub(&pool.nthreads, 1);
        }
        pthread_mutex_unlock(&pool.lock);
        if (!w) {
            break;
        }
        if (pthread_equal(w->tid, pthread_self())) {
            continue; /* exit() from a work function: cannot join ourselves */
        }
        if (pthread_timedjoin_np(w->tid, NULL, &dl) == 0) {
            worker_quiesce(w);
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

/*
 * Slow path of a submission: start the pool, wake or create a worker.
 * False when the job just queued can never run: no worker can be created
 * and nobody will come (stranded_locked).  A pool thread's own submission
 * is never stranded: the submitting worker takes the queue itself when its
 * work returns or runs it inline when it waits (pool_sleep_hook).
 */
static bool submit_kick(actx__loop *loop)
{
    bool stranded = false;
    worker *w;
    bool bad_env = false;

    pthread_mutex_lock(&pool.lock);
    if (ACTX__UNLIKELY(!pool.started)) {
        start_locked(&bad_env);
    }
    w = kick_locked();
    if (!w && loop->sleep_hook != pool_sleep_hook) {
        stranded = stranded_locked();
    }
    pthread_mutex_unlock(&pool.lock);
    if (ACTX__UNLIKELY(bad_env)) {
        actx__log(ACTX_LOG_WARNING,
                  "actx pool: ignoring a bad ACTX_POOL_THREADS");
    }
    wake_worker(w);
    return !stranded;
}

/*
 * Take back a submission nobody can run: cancel its job (it stays queued,
 * and whoever dequeues it frees it, as for actx_req_cancel) and free the
 * request without running done.  False if a worker took it meanwhile.
 */
static bool submit_retract(actx__loop *loop, actx_req *req)
{
    actx__job *job = req->job;
    int queued = JOB_QUEUED;

    /* Pairs with the CAS in run_job: exactly one wins. */
    if (!atomic_compare_exchange_strong(&job->state, &queued, JOB_CANCELLED)) {
        return false;
    }
    req->job = NULL;
    actx__req_discard(loop, req);
    return true;
}

actx_req *actx__pool_submit(actx_work_fn *work, const void *arg, size_t argsize,
                            actx_done_fn *done, void *opaque)
{
    actx__loop *loop = actx__loop_get();
    actx__job *job, *old;
    actx_req *req;
    int idle;

    if (ACTX__UNLIKELY(!loop)) {
        return NULL;
    }
    if (ACTX__UNLIKELY(!work || argsize > ACTX__JOB_ARGS)) {
        errno = EINVAL;
        return NULL;
    }
    if (ACTX__UNLIKELY(
            loop->closed ||
            atomic_load_explicit(&pool.stopping, memory_order_relaxed))) {
        errno = EPIPE;
        return NULL;
    }
    if (ACTX__UNLIKELY(loop->st.outstanding >= POOL_OUTSTANDING_MAX)) {
        errno = EAGAIN;
        return NULL;
    }
    job = job_alloc(loop);
    if (ACTX__UNLIKELY(!job)) {
        return NULL;
    }
    /* The request last: nothing can fail after it exists. */
    req = actx__req_alloc(loop, done, opaque);
    if (ACTX__UNLIKELY(!req)) {
        actx__job_free(job);
        return NULL;
    }
    req->job = job;
    req->msg.flags = ACTX__REQ_POOL; /* not completed by hand (req.c) */
    job->req = req;
    job->work = work;
    if (argsize) {
        memcpy(job->args, arg, argsize);
        job->arg = job->args;
    } else {
        job->arg = (void *)arg;
    }
    atomic_store_explicit(&job->state, JOB_QUEUED, memory_order_relaxed);

    /* S1: publishes the job (release for grab_locked's exchange). */
    old = atomic_load_explicit(&pool.incoming, memory_order_relaxed);
    do {
        job->next = old;
    } while (!atomic_compare_exchange_weak(&pool.incoming, &old, job));

    /* S2: a spinner takes it; else is a worker idle and none on its way,
     * or may the pool grow? */
    if (atomic_load(&pool.nspinning) != 0) {
        return req;
    }
    idle = atomic_load(&pool.nidle);
    if (idle > 0) {
        if (atomic_load(&pool.nwaking) == 0) {
            submit_kick(loop);
        }
    } else if (atomic_load(&pool.nthreads) - atomic_load(&pool.nblocked) <
                   atomic_load_explicit(&pool.size, memory_order_relaxed) ||
               ACTX__UNLIKELY(atomic_load_explicit(
                                  &pool.size, memory_order_relaxed) == 0)) {
        /* (size 0: first use, start the pool.) */
        if (ACTX__UNLIKELY(!submit_kick(loop)) && submit_retract(loop, req)) {
            /* Never accept what cannot run. */
            errno = EAGAIN;
            return NULL;
        }
    }
    return req;
}

actx_req *actx_submit(actx_work_fn *work, actx_done_fn *done, void *opaque)
{
    return actx__pool_submit(work, opaque, 0, done, opaque);
}

int actx__job_cancel(actx__job *job)
{
    int queued = JOB_QUEUED;
    actx_req *req = job->req;

    /* Pairs with the CAS in run_job: exactly one wins. */
    if (!atomic_compare_exchange_strong(&job->state, &queued, JOB_CANCELLED)) {
        return -EBUSY;
    }
    /* Still linked in the queue: whoever dequeues it frees it. */
    req->job = NULL;
    /* Owner thread: queued behind earlier arrivals, never run inline. */
    actx__req_post(req, -ECANCELED);
    return 0;
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
        pool.size_set = n;
    }
    pthread_mutex_unlock(&pool.lock);
    return rc;
}

size_t actx_pool_stats_size(struct actx_pool_stats *st, size_t size)
{
    struct actx_pool_stats full;
    size_t n = size < sizeof(full) ? size : sizeof(full);
    actx__job *job;
    worker *w;

    if (!st) {
        return 0;
    }
    memset(&full, 0, sizeof(full));
    pthread_mutex_lock(&pool.lock);
    full.size = pool.started ? atomic_load(&pool.size) : 0;
    full.threads = atomic_load(&pool.nthreads);
    full.idle = atomic_load(&pool.nidle);
    full.blocked = atomic_load(&pool.nblocked);
    for (w = pool.all; w; w = w->all_next) {
        full.busy += atomic_load_explicit(&w->busy, memory_order_relaxed);
    }
    /*
     * Submissions not grabbed yet count too.  Only grab_locked (under the
     * lock we hold) unlinks from incoming, so its nodes stay put while we
     * walk; seq_cst pairs with the submitter's push (S1).
     */
    full.queued = pool.qlen;
    for (job = atomic_load(&pool.incoming); job; job = job->next) {
        full.queued++;
    }
    full.threads_created = pool.spawned;
    full.threads_retired = pool.retired;
    full.create_failed = pool.spawn_failed;
    pthread_mutex_unlock(&pool.lock);

    memcpy(st, &full, n);
    if (size > n) {
        /* A caller built against a newer header (as actx_stats_size). */
        memset((char *)st + n, 0, size - n);
    }
    return n;
}
