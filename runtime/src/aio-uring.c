/*
 * aio-uring.c - file AIO (pread, pwrite, fsync) through a per-loop
 * io_uring, with the worker pool (aio-pool.c, pool.c) as the fallback.
 *
 * Which path a loop uses is decided when the loop is created
 * (actx__io_loop_init, stats.io_backend): the pool if the environment says
 * ACTX_IO=pool, if the runtime was built without liburing, or if io_uring
 * cannot be set up in this process (ENOSYS: old kernel; EPERM: a seccomp
 * policy or kernel.io_uring_disabled) - probed once per process.  The ring
 * itself is created at the loop's first AIO, so threads that never do file
 * I/O (most pool workers) pay nothing; should that setup fail, the loop
 * falls back to the pool for good.
 *
 * Submission: each actx_aio_* call fills one SQE and returns; nothing is
 * entered into the kernel yet.  actx__io_flush() submits everything queued
 * with one io_uring_enter: poll.c calls it before the loop sleeps and at the
 * end of every iteration, so all the submissions one iteration made (done
 * callbacks refilling a pipeline, say) cost one system call.  Page-cached
 * buffered reads complete inside that call.
 * A refused enter never strands the queued SQEs (enter_or_unqueue):
 * transient refusals are retried, and after a hard error or too many
 * retries they are taken back from the SQ and done on the pool.
 *
 * Completion: the ring fd sits in every epoll set of the loop (fd.c), so
 * a sleeping loop wakes when a CQE is posted; actx__drain_if_any() reaps the
 * CQ (two loads when nothing is there) and hands each completion to
 * actx__dispatch(), exactly as a completion from the mailbox: it is queued
 * in the live context its request resolves to (re-homed at pop like any
 * request), runs only while that context is current, and completions run in
 * the order they were reaped.
 *
 * Cancellation (actx_req_cancel): a request whose SQE has not been entered
 * yet is turned into a NOP in place and completes with -ECANCELED (0).  An
 * entered one gets IORING_OP_ASYNC_CANCEL, waited for synchronously: 0 (it
 * had not started; done gets -ECANCELED) or -EBUSY (running or finished:
 * -EALREADY/-ENOENT from the kernel).  A reaped one is finished: -EBUSY.
 * One taken back from a refusing ring and given to the pool (unqueue) is
 * cancelled there, as pool work is: 0 while it is queued, else -EBUSY.
 *
 * Shutdown (actx__io_loop_closing, then actx__io_loop_shutdown): before the
 * mailbox closes, queued SQEs are submitted and what the CQ holds is reaped
 * (it arrived before shutdown, so its done runs).  After, the loop waits for
 * every operation still in flight - accepted work runs to its end, and its
 * buffers stay valid until the kernel is done with them - and refuses each
 * completion as a late mailbox post is refused (counted in posts_refused,
 * reported to the refused hook); then the ring is closed.
 *
 * A non-seekable fd (pipe, socket, FIFO) is read by io_uring as a stream,
 * ignoring the offset, where pread(2) fails with ESPIPE.  To keep pread's
 * contract, each loop remembers per fd number whether lseek works on it
 * (one lseek the first time a number is seen; a completion with -EBADF
 * forgets it) and sends non-seekable fds to the pool.  Limitation: a number
 * that was seen seekable, then closed and reopened as a pipe without an AIO
 * on it in between, is read as a stream.
 *
 * fork: the child's copy of the forking thread's loop must not touch the
 * parent's ring (its memory is shared with the parent).  The child drops
 * that loop (thread.c); actx__io_loop_forget unmaps and closes the child's
 * view of the ring without entering it, and the child's next loop makes a
 * ring of its own.  In-flight operations complete in the parent only.
 */
#define _GNU_SOURCE
#include "actx-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef ACTX_HAVE_LIBURING
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#ifdef ACTX_HAVE_VALGRIND
/* The kernel fills read buffers behind memcheck's back (not in a syscall
 * it sees): tell it, or every use of the data is "uninitialised". */
#include <valgrind/memcheck.h>
#define MARK_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED(p, n)
#else
#define MARK_DEFINED(p, n) ((void)(p), (void)(n))
#endif

/* SQ entries per ring; the CQ gets twice as many. */
#define RING_ENTRIES 256
/* The longest transfer the kernel does in one call (MAX_RW_COUNT). */
#define RW_MAX 0x7ffff000u
/* CQEs copied out per round before they are dispatched. */
#define REAP_BATCH 64

/* Batch sizes 1, 2-3, 4-7, ... 128 and more: one read-path choice each. */
#define CHOICE_BUCKETS 8
/*
 * Every EXPLORE_EVERY-th batch of a size tries the other path, only every
 * EXPLORE_RARELY-th when the other was found more than a quarter dearer;
 * every SAMPLE_EVERY-th batch is timed (the explored ones always).  Powers
 * of two.
 */
#define EXPLORE_EVERY 32
#define EXPLORE_RARELY 256
#define SAMPLE_EVERY 16

/* Cost estimates of one batch size, ns per read (0: not measured yet). */
struct read_choice {
    uint32_t batches;
    uint32_t ns_inline, ns_ring;
};

/*
 * msg.flags of a request on the ring (actx-internal.h): ACTX__REQ_RING
 * until reaped, plus REQ_CANCELLED and REQ_READ; ACTX__REQ_COMPLETED from
 * the completion on (req.c).  Owner-only here; relaxed atomics because
 * actx_req_complete reads them from any thread to refuse a misuse.
 */
enum {
    REQ_RING = ACTX__REQ_RING,
    REQ_CANCELLED = ACTX__REQ_RING_CANCELLED,
    REQ_READ = ACTX__REQ_RING_READ,
    REQ_POOLED = ACTX__REQ_RING_POOLED,
};

static inline unsigned req_flags(actx_req *req)
{
    return __atomic_load_n(&req->msg.flags, __ATOMIC_RELAXED);
}

static inline void req_set_flags(actx_req *req, unsigned flags)
{
    __atomic_store_n(&req->msg.flags, (uint16_t)flags, __ATOMIC_RELAXED);
}

struct actx__uring {
    struct io_uring ring;
    bool cancel_seen;
    int cancel_res;
    unsigned reads_queued; /* SQEs queued since the last flush that could
                              be read inline (ACTX__FD_SEEKABLE) */
    struct read_choice choice[CHOICE_BUCKETS];
};

/* user_data of an ASYNC_CANCEL; 0 is an SQE whose request failed. */
static char cancel_tag;
#define CANCEL_UD ((uint64_t)(uintptr_t)&cancel_tag)

/* Process-wide: -1 unknown, 0 io_uring cannot be used, 1 it can. */
static _Atomic int probed = -1;
static int ring_init(struct io_uring *ring)
{
    struct io_uring_params p;
    int err;

    memset(&p, 0, sizeof(p));
    /* Keep submitting past an SQE that fails (5.18+); else without it. */
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    p.cq_entries = 2 * RING_ENTRIES;
    err = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
    if (err == -EINVAL) {
        memset(&p, 0, sizeof(p));
        err = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
    }
    return err;
}

/* Does the kernel have every operation the ring path uses (5.6+)? */
static bool has_ops(struct io_uring *ring)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    bool ok = p && io_uring_opcode_supported(p, IORING_OP_READ) &&
              io_uring_opcode_supported(p, IORING_OP_WRITE) &&
              io_uring_opcode_supported(p, IORING_OP_FSYNC) &&
              io_uring_opcode_supported(p, IORING_OP_ASYNC_CANCEL) &&
              io_uring_opcode_supported(p, IORING_OP_NOP);

    if (p) {
        io_uring_free_probe(p);
    }
    return ok && (ring->features & IORING_FEAT_NODROP);
}

/* Probe io_uring with a ring of its own: 1 usable, 0 never, -1 not now. */
static int probe_ring(void)
{
    struct io_uring ring;
    int err = io_uring_queue_init(2, &ring, 0);

    if (err == 0) {
        bool ok;

        actx__own_fd_add(ring.ring_fd);
        ok = has_ops(&ring); /* an old kernel: the pool */
        actx__own_fd_del(ring.ring_fd);
        io_uring_queue_exit(&ring);
        return ok ? 1 : 0;
    }
    if (err == -ENOSYS || err == -EPERM || err == -EINVAL || err == -EACCES) {
        return 0;
    }
    return -1; /* EMFILE, ENOMEM...: not now; the next loop asks again */
}

static void *probe_main(void *res)
{
    *(int *)res = probe_ring();
    return NULL;
}

/*
 * Can this process use io_uring at all?  Errors that say "never" stick.
 *
 * The probe runs on a thread of its own, with every signal blocked.
 * Closing a ring makes the kernel run work later on each thread that used
 * it (task_work), and that work ends a sleep of the thread in epoll_wait
 * with EINTR: probed on the loop's thread, the first blocking wait of the
 * process returned -EINTR with no signal sent.  If no thread can be made,
 * and in a fork child that probes (its parent had not), the probe runs
 * here, as it did: a child of a threaded parent may start no thread
 * (POSIX allows it only async-signal-safe calls; the sanitizers refuse
 * or, now and then, hang), and which parent was threaded is not known.
 */
static bool probe_inline; /* a fork child: no thread for it (see above) */

void actx__io_atfork_child(void)
{
    probe_inline = true;
}

static bool uring_usable(void)
{
    int v = atomic_load_explicit(&probed, memory_order_relaxed);
    sigset_t all, old;
    pthread_t th;
    int res = -1;

    if (v >= 0) {
        return v == 1;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (!probe_inline && pthread_create(&th, NULL, probe_main, &res) == 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_join(th, NULL);
    } else {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        res = probe_ring();
    }
    if (res >= 0) {
        atomic_store_explicit(&probed, res, memory_order_relaxed);
    }
    return res == 1;
}

/* The loop's first AIO: create its ring; on failure, the pool for good. */
static struct actx__uring *ring_setup(actx__loop *loop)
{
    struct actx__uring *u = calloc(1, sizeof(*u));
    int err;

    if (!u) {
        return NULL; /* the pool may still manage; try again next time */
    }
    err = ring_init(&u->ring);
    if (err < 0) {
        if (err == -ENOSYS || err == -EPERM || err == -EACCES) {
            atomic_store_explicit(&probed, 0, memory_order_relaxed);
        }
        free(u);
        loop->st.io_backend = 0;
        return NULL;
    }
    actx__own_fd_add(u->ring.ring_fd);
    /* In every epoll set; the CQEs are reaped by actx__drain_if_any. */
    err = actx__fd_loopwide_add(loop, u->ring.ring_fd, NULL, NULL);
    if (err < 0) {
        actx__own_fd_del(u->ring.ring_fd);
        io_uring_queue_exit(&u->ring);
        free(u);
        loop->st.io_backend = 0;
        return NULL;
    }
    /* Enter by a registered index, not the fd: no fd lookup per enter.
     * Optional. */
    io_uring_register_ring_fd(&u->ring);
    loop->io_khead = u->ring.cq.khead;
    loop->io_ktail = u->ring.cq.ktail;
    loop->uring = u;
    return u;
}

static void ring_complete(actx__loop *loop, uint64_t ud, int res)
{
    struct actx__uring *u = loop->uring;
    unsigned flags;
    actx_req *req;

    if (ud == CANCEL_UD) {
        u->cancel_seen = true;
        u->cancel_res = res;
        return;
    }
    if (ud == 0) {
        return; /* the NOP of a submission that failed */
    }
    req = (actx_req *)(uintptr_t)ud;
    flags = req_flags(req);
    if ((flags & (REQ_READ | REQ_CANCELLED)) == REQ_READ && res > 0) {
        MARK_DEFINED((void *)(uintptr_t)req->ret, (size_t)res);
    }
    if (flags & REQ_CANCELLED) {
        res = -ECANCELED;
    } else if (res == -EBADF) {
        /* closed: ask again */
        actx__fd_kind_set(loop, (int)req->msg.aux, ACTX__FD_UNKNOWN);
    }
    req->msg.aux = 0;
    if (ACTX__UNLIKELY(loop->closed)) {
        actx__req_post(req, res); /* refused, counted, hook told */
        return;
    }
    req_set_flags(req, ACTX__REQ_COMPLETED);
    req->ret = res;
    actx__dispatch(loop, &req->msg);
}

void actx__io_reap(actx__loop *loop)
{
    struct actx__uring *u = loop->uring;
    struct {
        uint64_t ud;
        int res;
    } batch[REAP_BATCH];
    bool any = false;

    for (;;) {
        struct io_uring_cqe *cqe;
        unsigned head, n = 0, i;

        io_uring_for_each_cqe(&u->ring, head, cqe)
        {
            batch[n].ud = cqe->user_data;
            batch[n].res = cqe->res;
            if (++n == REAP_BATCH) {
                break;
            }
        }
        if (n == 0) {
            /*
             * Completions that did not fit in the CQ wait in the kernel
             * (the ring fd stays readable): bring them in and go on.
             */
            if (!io_uring_cq_has_overflow(&u->ring) ||
                io_uring_get_events(&u->ring) < 0 ||
                io_uring_cq_ready(&u->ring) == 0) {
                break;
            }
            continue;
        }
        /* Advance first: what runs below may reap again (nested). */
        io_uring_cq_advance(&u->ring, n);
        loop->io_inflight -= n;
        for (i = 0; i < n; i++) {
            ring_complete(loop, batch[i].ud, batch[i].res);
        }
        any = true;
    }
    if (any) {
        actx__local_post(loop);
    }
}

/* Enter once (submit, and wait for `wait` CQEs); then reap.  What
 * io_uring_enter returned: >= 0 or -errno. */
static int ring_enter(actx__loop *loop, unsigned wait)
{
    struct actx__uring *u = loop->uring;
    int r;

    r = wait ? io_uring_submit_and_wait(&u->ring, wait)
             : io_uring_submit(&u->ring);
    if (r >= 0 && loop->io_unsubmitted != 0) {
        loop->io_submits++;
    }
    loop->io_unsubmitted = io_uring_sq_ready(&u->ring);
    if (r == -EBUSY || r == -EAGAIN) {
        /* The CQ is full (overflow backlog): make room, then retry. */
        actx__io_reap(loop);
        if (loop->io_inflight > (long)loop->io_unsubmitted &&
            !actx__io_ready(loop)) {
            r = io_uring_submit_and_wait(&u->ring, 1);
            loop->io_unsubmitted = io_uring_sq_ready(&u->ring);
        }
    }
    if (actx__io_ready(loop)) {
        actx__io_reap(loop);
    }
    return r;
}

/*
 * The pool did a stranded operation: complete the ring request with it.
 * Should the pool's completion be refused (the loop shut down meanwhile),
 * req.c refuses the ring request instead, so the refused hook hears of
 * the caller's done and opaque, never of this one.
 */
void actx__io_fallback_done(void *opaque, long ret)
{
    actx__loop *loop = actx__tls_loop;

    ring_complete(loop, (uint64_t)(uintptr_t)opaque, (int)ret);
    actx__local_post(loop);
}

/*
 * Hand a taken-back operation to the pool.  The pool's request belongs to
 * the ring request's context, not to the one current now (a nested wait
 * may be entering an outer context's SQEs): actx_cancel_context of the
 * current context must not cancel another context's I/O, nor wait for it.
 * The ring request remembers the pool's (REQ_POOLED, req->ret: its buffer
 * is no longer needed for memcheck, the pool's system call fills it), so
 * that actx_req_cancel asks the pool, not the kernel, which no longer has
 * it (and whose CQE a wait for it would wait for forever).
 */
static bool to_pool(actx__loop *loop, actx_req *req, int op,
                    const struct io_uring_sqe *sqe)
{
    actx_ctx *cur = loop->cur;
    actx_req *pr;

    /* No callback runs in between: only the new request sees this. */
    loop->cur = actx__ctx_resolve(req->ctx);
    pr = actx__aio_pool(op, sqe->fd, (void *)(uintptr_t)sqe->addr, sqe->len,
                        (off_t)sqe->off, actx__io_fallback_done, req);
    loop->cur = cur;
    if (!pr) {
        return false;
    }
    req->ret = (long)(uintptr_t)pr;
    req_set_flags(req, (req_flags(req) & ~REQ_READ) | REQ_POOLED);
    return true;
}

/*
 * io_uring_enter failed for good (err): take back every SQE the kernel
 * did not consume and finish each another way, so that nothing accepted
 * is lost.  A read, write or fsync goes to the pool (its request completes
 * when the pool is done, as if the ring had done it); if the pool cannot
 * take it, or the loop is shutting down, it completes with err.  A
 * cancelled one completes with -ECANCELED, a pending ASYNC_CANCEL is
 * answered with err (actx__io_cancel: -EBUSY).  The kernel reads the SQ
 * tail only inside io_uring_enter (no SQPOLL), so rewinding it to the
 * kernel's head in between is safe.
 */
static void unqueue(actx__loop *loop, int err)
{
    struct actx__uring *u = loop->uring;
    struct io_uring_sq *sq = &u->ring.sq;
    unsigned head = *sq->khead, tail = sq->sqe_tail, i;

    __atomic_store_n(sq->ktail, head, __ATOMIC_RELEASE);
    sq->sqe_head = sq->sqe_tail = head;
    loop->io_unsubmitted = 0;
    for (i = head; i != tail; i++) {
        struct io_uring_sqe sqe = sq->sqes[i & sq->ring_mask];
        uint64_t ud = sqe.user_data;
        int op = 0;

        loop->io_inflight--;
        if (ud == 0) {
            continue; /* the NOP of a submission that failed */
        }
        if (ud == CANCEL_UD) {
            u->cancel_seen = true;
            u->cancel_res = err;
            continue;
        }
        switch (sqe.opcode) {
        case IORING_OP_READ:
            op = ACTX__AIO_PREAD;
            break;
        case IORING_OP_WRITE:
            op = ACTX__AIO_PWRITE;
            break;
        case IORING_OP_FSYNC:
            op = ACTX__AIO_FSYNC;
            break;
        default:
            break; /* a NOP: cancelled before it was entered */
        }
        if (op && !loop->closing &&
            !(req_flags((actx_req *)(uintptr_t)ud) & REQ_CANCELLED) &&
            to_pool(loop, (actx_req *)(uintptr_t)ud, op, &sqe)) {
            continue;
        }
        ring_complete(loop, ud, err);
    }
    actx__local_post(loop);
}

/* Tries of a transient refusal (EAGAIN, EBUSY, nothing consumed) before
 * the queued SQEs leave the ring; EINTR is always retried. */
#define ENTER_TRIES 64

/*
 * Enter what is queued (and wait for `wait` CQEs): 0, or -errno once the
 * queued SQEs were taken back (unqueue) after a hard error (ENOMEM, EBADF,
 * ...) or ENTER_TRIES transient ones.  Waits never hang on a broken ring
 * and nothing queued is stranded.
 */
static int enter_or_unqueue(actx__loop *loop, unsigned wait)
{
    int tries = 0;

    for (;;) {
        unsigned queued = loop->io_unsubmitted;
        int r = ring_enter(loop, wait);

        if (r == -EINTR || r == -ETIME ||
            (r >= 0 && (loop->io_unsubmitted < queued || queued == 0))) {
            return 0;
        }
        if ((r >= 0 || r == -EAGAIN || r == -EBUSY) && ++tries < ENTER_TRIES) {
            continue;
        }
        if (r >= 0) {
            r = -EAGAIN;
        }
        if (loop->io_unsubmitted != 0) {
            actx__log(ACTX_LOG_WARNING,
                      "io_uring_enter: %s; %u queued operations go to the "
                      "worker pool",
                      actx_strerror(r), loop->io_unsubmitted);
            unqueue(loop, r);
        }
        return r;
    }
}

/*
 * Buffered reads: inline or on the ring?
 *
 * A read the page cache holds can be done at flush time on the loop's
 * thread with preadv2(RWF_NOWAIT) - one system call, the read's own -
 * or entered into the ring with the rest of the batch - one system call
 * for the batch, plus the ring's own work per read (a request, a CQE, a
 * wake-up of the ring's waiters).  Which is cheaper depends on the host
 * (what a system call costs: from about 0.1 to over 1 us) and on the
 * batch size, and an uncached read makes the inline try a wasted call
 * (EAGAIN, then the ring all the same).  No constant fits every host, so
 * each loop measures: per batch size class (1, 2-3, 4-7, ...) it keeps an
 * average cost per read of each path, timed over whole flushes (the
 * inline reads, the enter of what is left, the completions reaped), takes
 * the cheaper one, and every EXPLORE_EVERY-th batch of that size (every
 * EXPLORE_RARELY-th while the other is clearly dearer) takes
 * the other, so that the choice follows the host, the file's caching and
 * the load.  A read done inline completes as if the ring had done it: its
 * completion is queued and runs at the next poll, in its context.  Only
 * reads of ACTX__FD_SEEKABLE fds (aio-pool.c) are tried (never O_DIRECT, never streams); a
 * partial inline read (partly cached) is dropped and the ring does the
 * whole read.
 */
static inline unsigned choice_bucket(unsigned n)
{
    unsigned b = 0;

    while (n > 1 && b < CHOICE_BUCKETS - 1) {
        n >>= 1;
        b++;
    }
    return b;
}

/* Fold one timed batch into an estimate (an average over about 8). */
static void choice_learn(uint32_t *est, uint64_t ns_per_read)
{
    uint64_t cap = *est ? 4 * (uint64_t)*est : UINT32_MAX;

    if (ns_per_read > cap) {
        ns_per_read = cap; /* a preempted batch says little */
    }
    if (ns_per_read == 0) {
        ns_per_read = 1;
    }
    if (*est == 0) {
        *est = (uint32_t)ns_per_read;
    } else {
        *est = (uint32_t)((int64_t)*est +
                          ((int64_t)ns_per_read - (int64_t)*est) / 8);
    }
}

/*
 * Read the queued buffered reads now with RWF_NOWAIT; take the ones done
 * out of the SQ (not entered yet: the kernel reads the SQ only inside
 * io_uring_enter) and complete them.
 */
static void reads_inline(actx__loop *loop, struct actx__uring *u)
{
    struct io_uring_sq *sq = &u->ring.sq;
    unsigned tail = sq->sqe_tail, keep = sq->sqe_head, done = 0, i;

    for (i = sq->sqe_head; i != tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
        int fd = sqe->fd;

        if (sqe->opcode == IORING_OP_READ && sqe->user_data != 0 &&
            sqe->user_data != CANCEL_UD &&
            actx__fd_kind(loop, fd) == ACTX__FD_SEEKABLE) {
            struct iovec iov = {(void *)(uintptr_t)sqe->addr, sqe->len};
            ssize_t r = preadv2(fd, &iov, 1, (off_t)sqe->off, RWF_NOWAIT);

            if (r == (ssize_t)sqe->len || r == 0) { /* 0: end of file */
                ring_complete(loop, sqe->user_data, (int)r);
                loop->io_inflight--;
                done++;
                continue;
            }
            if (r < 0 && errno == EOPNOTSUPP) {
                /* This file system: never again. */
                actx__fd_kind_set(loop, fd, ACTX__FD_NOWAIT_NO);
            }
        }
        if (keep != i) {
            sq->sqes[keep & sq->ring_mask] = *sqe;
        }
        keep++;
    }
    sq->sqe_tail = keep;
    loop->io_unsubmitted -= done;
    if (done) {
        actx__local_post(loop);
    }
}

/*
 * The SQEs queued since the last flush go in with one io_uring_enter (more
 * only while the kernel pushes back: a full CQ is reaped, then retried).
 * If the kernel keeps refusing, they go to the pool (enter_or_unqueue).
 * Buffered reads among them may be done inline instead (see above).
 */
void actx__io_flush_slow(actx__loop *loop)
{
    struct actx__uring *u = loop->uring;
    unsigned reads = u && !loop->io_ring_only ? u->reads_queued : 0;
    struct read_choice *ch = NULL;
    uint64_t t0 = 0;
    bool inl = false;

    if (u) {
        u->reads_queued = 0;
    }
    if (reads != 0) {
        uint32_t n, best, other, every;
        bool explore;

        ch = &u->choice[choice_bucket(reads)];
        n = ch->batches++;
        inl = ch->ns_inline == 0 ||
              (ch->ns_ring != 0 && ch->ns_inline <= ch->ns_ring);
        best = inl ? ch->ns_inline : ch->ns_ring;
        other = inl ? ch->ns_ring : ch->ns_inline;
        every = other != 0 && other / 4 > best / 4 + best / 16 ? EXPLORE_RARELY
                                                               : EXPLORE_EVERY;
        explore = (n & (every - 1)) == every - 1;
        if (explore) {
            inl = !inl;
        }
        if ((inl ? ch->ns_inline : ch->ns_ring) == 0 || explore ||
            (n & (SAMPLE_EVERY - 1)) == 0) {
            t0 = actx_now_ns();
        }
        if (inl) {
            reads_inline(loop, u);
        }
    }
    while (loop->io_unsubmitted != 0) {
        if (enter_or_unqueue(loop, 0) < 0) {
            return;
        }
    }
    if (t0 != 0) {
        choice_learn(inl ? &ch->ns_inline : &ch->ns_ring,
                     (actx_now_ns() - t0) / reads);
    }
}

static struct io_uring_sqe *get_sqe(actx__loop *loop)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->uring->ring);

    if (ACTX__UNLIKELY(!sqe)) {
        actx__io_flush_slow(loop); /* the SQ is full: enter what it has */
        sqe = io_uring_get_sqe(&loop->uring->ring);
    }
    return sqe;
}

int actx__io_submit(actx__loop *loop, int op, int fd, void *buf, size_t n,
                    off_t off, actx_done_fn *done, void *opaque, actx_req **out)
{
    struct actx__uring *u = loop->uring;
    struct io_uring_sqe *sqe;
    unsigned kind;
    actx_req *req;

    if (ACTX__UNLIKELY(!u)) {
        if (loop->closed) {
            return 0; /* the pool refuses it (EPIPE) */
        }
        u = ring_setup(loop);
        if (!u) {
            return 0;
        }
        if (actx__own_fd(fd)) {
            *out = NULL; /* the ring just made took the number */
            errno = EBADF;
            return 1;
        }
    }
    if (ACTX__UNLIKELY(n > RW_MAX)) {
        /* More than one call moves (an SQE's length is 32 bits): pread(2)
         * on the pool gives the kernel's answer, the clamped count or,
         * for a length no buffer can have, -EFAULT. */
        return 0;
    }
    kind = actx__fd_kind(loop, fd);
    if (kind == ACTX__FD_CLOSED ||
        (op != ACTX__AIO_FSYNC && kind == ACTX__FD_STREAM)) {
        /* The pool's pread/pwrite say ESPIPE; a number not open is EBADF
         * there, also if the runtime takes it meanwhile (ownfd.c). */
        return 0;
    }
    *out = NULL;
    if (ACTX__UNLIKELY(loop->closed)) {
        errno = EPIPE;
        return 1;
    }
    sqe = get_sqe(loop);
    if (ACTX__UNLIKELY(!sqe)) {
        errno = EAGAIN;
        return 1;
    }
    loop->io_inflight++;
    loop->io_unsubmitted++;
    req = actx__req_alloc(loop, done, opaque);
    if (ACTX__UNLIKELY(!req)) {
        io_uring_prep_nop(sqe);
        sqe->user_data = 0;
        return 1;
    }
    switch (op) {
    case ACTX__AIO_PREAD:
        io_uring_prep_read(sqe, fd, buf, (unsigned)n, (uint64_t)off);
        break;
    case ACTX__AIO_PWRITE:
        io_uring_prep_write(sqe, fd, buf, (unsigned)n, (uint64_t)off);
        break;
    default:
        io_uring_prep_fsync(sqe, fd, 0);
        break;
    }
    io_uring_sqe_set_data(sqe, req);
    req->msg.aux = (uint32_t)fd;
    if (op == ACTX__AIO_PREAD) {
        if (kind == ACTX__FD_SEEKABLE) {
            u->reads_queued++;
        }
        req_set_flags(req, REQ_RING | REQ_READ);
        req->ret = (long)(uintptr_t)buf; /* until the completion (memcheck) */
    } else {
        req_set_flags(req, REQ_RING);
    }
    *out = req;
    return 1;
}

bool actx__io_is_ring_req(actx_req *req)
{
    return (req_flags(req) & REQ_RING) != 0;
}

int actx__io_cancel(actx__loop *loop, actx_req *req)
{
    struct actx__uring *u = loop->uring;
    struct io_uring_sq *sq;
    struct io_uring_sqe *sqe;
    unsigned i;

    if (!u || (req_flags(req) & REQ_CANCELLED)) {
        return -EBUSY;
    }
    if (req_flags(req) & REQ_POOLED) {
        /* Taken back from the ring (unqueue): the pool has it. */
        int r = actx_req_cancel((actx_req *)(uintptr_t)req->ret);

        if (r == 0) {
            req_set_flags(req, req_flags(req) | REQ_CANCELLED);
        }
        return r;
    }
    /* Not entered yet: it becomes a NOP that completes as cancelled. */
    sq = &u->ring.sq;
    for (i = sq->sqe_head; i != sq->sqe_tail; i++) {
        sqe = &sq->sqes[i & sq->ring_mask];
        if (sqe->user_data == (uint64_t)(uintptr_t)req) {
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data(sqe, req);
            req_set_flags(req, req_flags(req) | REQ_CANCELLED);
            return 0;
        }
    }
    /* In the kernel: ask it, and wait for the answer. */
    sqe = get_sqe(loop);
    if (!sqe) {
        return -EBUSY;
    }
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)req, 0);
    sqe->user_data = CANCEL_UD;
    loop->io_inflight++;
    loop->io_unsubmitted++;
    u->cancel_seen = false;
    while (!u->cancel_seen) {
        if (enter_or_unqueue(loop, 1) < 0 && !u->cancel_seen) {
            return -EBUSY; /* the ring is broken: cannot say it stopped */
        }
    }
    if (u->cancel_res != 0) {
        /*
         * -ENOENT: done; -EALREADY: running, and the kernel may still
         * stop it (its result is then -ECANCELED).  The answer must say
         * what done will get, so its CQE is waited for (a device's
         * latency at most): 0 if it ended cancelled, else -EBUSY.
         */
        while (req_flags(req) & REQ_RING) {
            if (enter_or_unqueue(loop, 1) < 0 && (req_flags(req) & REQ_RING)) {
                return -EBUSY;
            }
        }
        return req->ret == -ECANCELED ? 0 : -EBUSY;
    }
    if (req_flags(req) & REQ_RING) {
        /* Its CQE is still to come. */
        req_set_flags(req, req_flags(req) | REQ_CANCELLED);
    }
    return 0;
}

void actx__io_loop_init(actx__loop *loop)
{
    const char *env = getenv("ACTX_IO");

    if (env && strcmp(env, "pool") == 0) {
        loop->st.io_backend = 0;
        return;
    }
    if (env && *env && strcmp(env, "uring") != 0 &&
        strcmp(env, "io_uring") != 0) {
        actx__misuse("ACTX_IO", "ignoring a bad value (pool or io_uring)");
    }
    loop->st.io_backend = uring_usable() ? 1 : 0;
}

int actx__io_ring_fd(actx__loop *loop)
{
    return loop->uring ? loop->uring->ring.ring_fd : -1;
}

void actx__io_loop_closing(actx__loop *loop)
{
    if (loop->uring) {
        actx__io_flush(loop);
        if (actx__io_ready(loop)) {
            actx__io_reap(loop);
        }
    }
}

void actx__io_loop_shutdown(actx__loop *loop)
{
    struct actx__uring *u = loop->uring;

    if (!u) {
        return;
    }
    actx__io_flush(loop);
    while (loop->io_inflight > 0) {
        if (enter_or_unqueue(loop, 1) < 0 && loop->io_inflight > 0) {
            break; /* the ring is gone: nothing will complete */
        }
    }
    actx__fd_loopwide_del(loop, u->ring.ring_fd);
    actx__own_fd_del(u->ring.ring_fd);
    io_uring_queue_exit(&u->ring);
    free(u);
    loop->uring = NULL;
    loop->io_inflight = 0;
    loop->io_unsubmitted = 0;
}

void actx__io_loop_forget(actx__loop *loop)
{
    struct actx__uring *u = loop->uring;

    if (!u) {
        return;
    }
    /*
     * Unmaps and closes; its unregistration of the ring fd index acts on
     * this task's table only, which a child does not inherit.
     */
    actx__own_fd_del(u->ring.ring_fd);
    io_uring_queue_exit(&u->ring);
    free(u);
    loop->uring = NULL;
    loop->io_inflight = 0;
    loop->io_unsubmitted = 0;
}

#else /* !ACTX_HAVE_LIBURING: built without liburing, the pool does it all */

void actx__io_atfork_child(void)
{
}

void actx__io_loop_init(actx__loop *loop)
{
    loop->st.io_backend = 0;
}

int actx__io_submit(actx__loop *loop, int op, int fd, void *buf, size_t n,
                    off_t off, actx_done_fn *done, void *opaque, actx_req **out)
{
    (void)loop, (void)op, (void)fd, (void)buf, (void)n, (void)off;
    (void)done, (void)opaque, (void)out;
    return 0;
}

void actx__io_reap(actx__loop *loop)
{
    (void)loop;
}

void actx__io_flush_slow(actx__loop *loop)
{
    loop->io_unsubmitted = 0;
}

bool actx__io_is_ring_req(actx_req *req)
{
    (void)req;
    return false;
}

int actx__io_cancel(actx__loop *loop, actx_req *req)
{
    (void)loop, (void)req;
    return -EBUSY;
}

int actx__io_ring_fd(actx__loop *loop)
{
    (void)loop;
    return -1;
}

void actx__io_loop_closing(actx__loop *loop)
{
    (void)loop;
}

void actx__io_loop_shutdown(actx__loop *loop)
{
    (void)loop;
}

void actx__io_loop_forget(actx__loop *loop)
{
    (void)loop;
}

void actx__io_fallback_done(void *opaque, long ret)
{
    (void)opaque, (void)ret; /* never used without a ring */
}

#endif /* ACTX_HAVE_LIBURING */

void actx__io_dump(actx__loop *loop, FILE *out)
{
    fprintf(out,
            "  file I/O: %s, %lu submissions entered, %ld operations in "
            "flight, %u not entered\n",
            loop->st.io_backend ? "io_uring" : "worker pool", loop->io_submits,
            loop->io_inflight, loop->io_unsubmitted);
#ifdef ACTX_HAVE_LIBURING
    if (loop->uring) {
        for (unsigned b = 0; b < CHOICE_BUCKETS; b++) {
            struct read_choice *ch = &loop->uring->choice[b];

            if (ch->batches != 0) {
                fprintf(out,
                        "  buffered reads in batches of %u%s: %u batches, "
                        "ns per read inline %u, on the ring %u\n",
                        1u << b,
                        b == 0                    ? ""
                        : b == CHOICE_BUCKETS - 1 ? " or more"
                                                  : " or more (to double)",
                        ch->batches, ch->ns_inline, ch->ns_ring);
            }
        }
    }
#endif
}
