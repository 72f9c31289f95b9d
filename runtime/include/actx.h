/**
 * @file actx.h
 * actx.h - a threaded multi-context runtime.
 *
 * actx ports the AsyncContext design of QEMU's 2009 async.c to one event
 * loop per thread.  Every thread that calls into actx owns a loop, and every
 * loop owns a stack of contexts whose bottom is the root context (id 0).
 * Bottom halves (BHs), requests, fd handlers and timers belong to the context
 * that was current when they were created; their callbacks run only while
 * that context is current.  Everything that belongs to an outer context is
 * kept - never lost, never run early - until that context is current again.
 * That is what makes a synchronous wait inside a callback safe:
 *
 *     actx_push();                         enter a private context
 *     req = actx_aio_pread(fd, ..., done, &st);
 *     ACTX_WAIT_WHILE(!st.done);           runs *only* done, never callers'
 *     actx_pop();                          outer completions run again
 *
 * Completions from other threads travel through a per-loop lock-free mailbox
 * signalled by an eventfd that is written only when the owner may be asleep:
 * wake-ups coalesce, posts never do.
 *
 * Conventions
 *   - Functions return 0 or a positive value on success and a negative errno
 *     on failure unless stated otherwise; actx_strerror() names the error.
 *   - "Owner thread only." means the thread whose loop the object belongs to
 *     (for functions without an object: the calling thread's own loop).
 *     Every build checks the cheap owner rules and returns -EPERM (or does
 *     nothing, for void functions) with a diagnostic through the log
 *     handler (stderr by default, see actx_set_log_handler()); debug builds
 *     additionally check internal invariants with assertions.
 *   - "Any thread." functions may be called concurrently from any thread.
 *   - A thread's loop is created by its first call into actx.  If that
 *     creation fails, the call fails as actx_thread_init() does: -EMFILE,
 *     -ENFILE or -ENOMEM (NULL with errno set for functions returning a
 *     pointer; 0 for actx_poll, actx_bh_poll, actx_process_queue; false for
 *     actx_can_progress; nothing for void functions).  The errors listed
 *     below are in addition to these.
 *   - Misuse the runtime can detect cheaply (see each function) is
 *     reported with a diagnostic through the log handler and the documented error; the
 *     process goes on.  Debug builds (-DACTX_DEBUG) also keep freed BHs and
 *     timers in a quarantine so that a double delete/free is reported, and
 *     stop (abort, with the message) on one actx_ctx_unref() too many.
 *   - Callbacks never run while a runtime lock is held and never on a thread
 *     other than their owner thread (work functions of the pool aside).
 *
 * Callbacks and the context stack
 *   - A callback (BH, done, call, fd handler, timer) may push and pop
 *     contexts.  The usual case is a nested wait: push, start the I/O,
 *     ACTX_WAIT_WHILE(), pop.  The callback returns with the stack as it
 *     found it, and the call that ran it goes on with the other callbacks
 *     due in its context.
 *   - A callback that returns with another context current (it pushed and
 *     did not pop, one level or several, or it popped its own context)
 *     ends the pass that ran it: that call (actx_poll(), actx_bh_poll(),
 *     actx_process_queue(), the flush of actx_pop(), ...) runs no more
 *     callbacks of the context it ran for, none of any kind, and returns
 *     as usual (1 if anything but an idle BH ran).  What it did not run is
 *     kept in its context, in its order (moved to the parent with a popped
 *     context), and runs at a later call while that context is current:
 *     after the pop of what was pushed, whether the pushing callback or a
 *     later callback of the pushed context pops it.
 *   - A wait in progress when that happens (actx_flush(), actx_run(),
 *     ACTX_WAIT_WHILE(), actx_cancel_context()) goes on polling the
 *     context now current, so a later callback of it may pop it and the
 *     wait goes on in the old context; if the current context can make no
 *     progress, the wait ends as when nothing can (actx_flush():
 *     -EDEADLK; actx_run() returns 0), and once its deadline has passed,
 *     as when the wait's own has (-ETIMEDOUT).
 *   - At thread shutdown, a context a callback leaves pushed is popped
 *     again before the next callback of the root runs.
 *
 * This is the only public header of the runtime; both Python backends
 * read it.  The guide (concepts, the semantics contract, the wake-up
 * protocol, embedding, the ABI policy) is in docs/.
 */
#ifndef ACTX_H
#define ACTX_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Marks the library's exported functions: default visibility while the
 * library itself is built (ACTX_BUILDING), empty for its users.
 */
#if defined(ACTX_BUILDING) && defined(__GNUC__)
#define ACTX_EXTERN __attribute__((visibility("default")))
#else
#define ACTX_EXTERN
#endif

/** Major version of this header; a new major changes the soname. */
#define ACTX_VERSION_MAJOR 1
/** Minor version of this header: additions, binary compatible. */
#define ACTX_VERSION_MINOR 2
/** Patch version of this header: fixes only. */
#define ACTX_VERSION_PATCH 0

/** A callback: BHs, calls, fd handlers and timers; opaque is the caller's. */
typedef void actx_fn(void *opaque);
/** A request's completion callback: ret is what the request completed with. */
typedef void actx_done_fn(void *opaque, long ret);
typedef long actx_work_fn(void *opaque); /**< runs on a pool thread */
/** A bottom half (opaque; see actx_bh_new()). */
typedef struct actx_bh actx_bh;
/** A request (opaque; see actx_req_new(), actx_submit()). */
typedef struct actx_req actx_req;
/** A counted handle on a context (opaque; see actx_ctx_current()). */
typedef struct actx_ctx actx_ctx;
/** A timer (opaque; see actx_timer_new()). */
typedef struct actx_timer actx_timer;

/* ------------------------------------------------------------------------ */
/* Context stack.  Owner thread only.                                        */

/**
 * Enter a new context; returns its id (its depth, >= 1) or -ENOMEM (or a
 * loop-creation error on a thread's first call, see Conventions).
 * No syscall and no malloc in steady state (contexts are recycled per
 * thread).
 *
 * What a nested wait costs (push, wait, pop) does not grow with what the
 * outer contexts hold: an outer fd that turns ready meanwhile costs no
 * system call, then or at the pop (each context with fd handlers has an
 * epoll set of its own and a wait looks only at the current one's);
 * completions, calls and BHs posted for outer contexts from other threads
 * do not wake it; outer timers and idle BHs do not shorten its sleeps.
 * They are kept and run after the pop (docs/nested-waits.md).
 */
ACTX_EXTERN int actx_push(void);

/**
 * Leave the current context: -EINVAL at the root (nothing changes; a
 * diagnostic through the log handler).
 * Otherwise: run actx_bh_poll() until it reports no progress (at most 10,000
 * rounds); re-home everything of the child that is still alive (BHs with
 * their scheduled/idle state, outstanding and queued requests, pending
 * calls, fd handlers, timers, context handles) to the parent; make the
 * parent current.  The parent's queued completions run at its next
 * actx_poll() or actx_process_queue().  Returns 0.
 * Re-homing is O(1) but for the child's own fd handlers when the parent
 * has some too (each moves into the parent's epoll set: two epoll_ctl).
 * A callback running inside the flush must leave the context stack as it
 * found it: if a BH leaves it changed, the flush runs no more BHs of the
 * child and actx_pop returns -EBUSY (with a diagnostic) and pops nothing.
 * It never allocates and never fails otherwise.
 */
ACTX_EXTERN int actx_pop(void);

/**
 * Depth of the current context (the root is 0).  Never fails: a thread
 * without a loop (none created yet, or its creation failed) is at its root
 * and gets 0; this call does not create the loop.
 */
ACTX_EXTERN int actx_context_id(void);

/**
 * Since 1.2.  As actx_push(), and the new context has a deadline at
 * deadline_ns on the actx_now_ns() clock (UINT64_MAX: none of its own; a
 * time already past is allowed).  Its effective deadline is the earlier of
 * that and its parent's effective deadline, fixed at the push: the root
 * has none, and a context made by a plain actx_push() inherits its
 * parent's, so a callee that pushes its own context gives up too.
 * Returns the new context's id, or -ENOMEM.
 *
 * After the effective deadline, the current context's waits give up
 * instead of sleeping: actx_poll(true) returns 0 and actx_poll_timeout()
 * -ETIMEDOUT once they have run what was runnable; ACTX_WAIT_WHILE(),
 * actx_flush() and actx_run() evaluate to / return -ETIMEDOUT.  The
 * deadline itself cancels, loses and moves nothing: what the context
 * still has outstanding completes in it later, or after the pop in its
 * parent, as always.  To leave nothing behind, call actx_cancel_context()
 * before the pop (see docs/deadlines.md).  Owner thread only.
 */
ACTX_EXTERN int actx_push_deadline(uint64_t deadline_ns);

/**
 * Since 1.2.  The current context's effective deadline (see
 * actx_push_deadline()), UINT64_MAX if it has none.  Never fails (a thread
 * without a loop is at its root: UINT64_MAX).  Owner thread only.
 */
ACTX_EXTERN uint64_t actx_deadline(void);

/**
 * Since 1.2.  Cancel every outstanding request of the current context
 * that has not started (as actx_req_cancel(): pool work still queued, file
 * AIO the kernel agrees to cancel), then wait, ignoring the deadline,
 * until no request of the context is outstanding: when it returns, every
 * done callback of the context's requests has run, the cancelled ones
 * with -ECANCELED, so state on the caller's stack that they use may go.
 * Work already running on a pool thread is waited for, never abandoned;
 * a request made by actx_req_new() cannot be cancelled and is waited for
 * (it must be completed by someone, or this never returns).  Requests of
 * popped child contexts re-homed into this one count as its own; requests
 * a done callback makes during the wait are waited for, not cancelled.
 * BHs, calls, fd handlers and timers are left alone (only the current
 * context's callbacks run meanwhile, as in any wait).  A done callback
 * that leaves another context current which can make no progress ends
 * the wait early: the rest of the context's done callbacks then run after
 * that context's pop (see "Callbacks and the context stack" above).
 * Returns the number of requests cancelled (>= 0).  Owner thread only.
 */
ACTX_EXTERN int actx_cancel_context(void);

/* ------------------------------------------------------------------------ */
/* Bottom halves.                                                            */

/**
 * A BH of the current context.  NULL with errno set (ENOMEM, EINVAL for a
 * NULL cb) on failure.  Owner thread only.
 */
ACTX_EXTERN actx_bh *actx_bh_new(actx_fn *cb, void *opaque);

/**
 * Any thread.  No-op if already scheduled (an idle-scheduled BH stays
 * idle); otherwise marks it scheduled and wakes the owner loop if it sleeps.
 */
ACTX_EXTERN void actx_bh_schedule(actx_bh *bh);

/**
 * Any thread.  No-op if already scheduled; otherwise scheduled + idle.  No
 * wake-up: it runs at the latest 10 ms later (a loop with scheduled idle
 * BHs sleeps at most 10 ms), or sooner when the loop iterates anyway.  From
 * another thread, an owner that sleeps without such a bound is woken.
 */
ACTX_EXTERN void actx_bh_schedule_idle(actx_bh *bh);

/** Any thread.  Clears the scheduled state; the callback does not run. */
ACTX_EXTERN void actx_bh_cancel(actx_bh *bh);

/**
 * Owner thread only (from another thread: a diagnostic, nothing happens).
 * Cancels and frees (at once or deferred).  Legal from inside the BH's own
 * callback; the callback never runs afterwards.  Must not race with
 * actx_bh_schedule() from another thread (as in QEMU).  NULL: no-op.
 * Deleting it again is a use-after-free, reported in debug builds.
 */
ACTX_EXTERN void actx_bh_delete(actx_bh *bh);

/**
 * Owner thread only (from another thread: a diagnostic, false).  Is bh
 * scheduled (idle or not), i.e. will it run at a poll of its context
 * unless cancelled or deleted first?  A BH whose callback is running is
 * not, unless it was scheduled again.  For a binding that must know
 * whether a BH it no longer references can be deleted at once (bindings/
 * common/actx_py.h).  NULL: false.
 */
ACTX_EXTERN bool actx_bh_scheduled(actx_bh *bh);

/**
 * Owner thread only.  Run the scheduled BHs of the current context once
 * each, in the order they were scheduled; a BH scheduled during this call
 * runs at the next call.  Returns 1 if a non-idle BH ran, else 0.
 * Cost O(scheduled BHs).
 */
ACTX_EXTERN int actx_bh_poll(void);

/* ------------------------------------------------------------------------ */
/* Requests and completions.                                                 */

/**
 * Owner thread only.  An outstanding request of the current context; it
 * completes through actx_req_complete().  NULL with errno set on failure:
 * ENOMEM, EPIPE (called by a callback that runs while this thread's
 * runtime shuts down).  done may be NULL.
 */
ACTX_EXTERN actx_req *actx_req_new(actx_done_fn *done, void *opaque);

/**
 * Any thread, exactly once per request.  done(opaque, ret) runs on the owner
 * thread while the request's context is current, in arrival order among the
 * completions of that context; then the request is freed.  Returns 0, or
 * -EPIPE when the owner thread's runtime has shut down (the request is
 * freed, done never runs, the refusal is counted).  Misuse, refused with a
 * diagnostic through the log handler, in every build (done still runs exactly once):
 * -EINVAL for NULL or for a request of actx_submit() / actx_aio_*() (the
 * pool completes those); -EALREADY for a request already completed (by
 * actx_req_complete, or cancelled), until its memory is reused by a later
 * request.  Two completions racing on two threads are not detected, and
 * after -EPIPE the request is gone: completing it again is undefined.
 */
ACTX_EXTERN int actx_req_complete(actx_req *req, long ret);

/**
 * Any thread; process-wide.  Install fn to be told about every completion
 * refused because its owner thread's runtime had shut down (-EPIPE): it is
 * called on the completing thread, after the request was freed, with the
 * request's done, opaque and the ret that could not be delivered.  done
 * itself never runs; the hook lets the creator release what opaque holds
 * (bindings drop their reference to the request's object).  Returns the
 * previous hook (chain to it for done functions that are not yours); NULL
 * removes.  The hook must not block and must not use the dead loop.
 */
typedef void actx_refused_fn(actx_done_fn *done, void *opaque, long ret);
/** Any thread.  Installs the hook described at actx_refused_fn. */
ACTX_EXTERN actx_refused_fn *actx_set_refused_hook(actx_refused_fn *fn);

/**
 * Owner thread only.  work(opaque) runs on a pool thread; its return value
 * is passed to done (which may be NULL), delivered like any completion.
 * NULL with errno on failure: EINVAL (NULL work), ENOMEM, EPIPE (this
 * thread's runtime, or the process, is shutting down), EAGAIN (this thread
 * already has 1,048,576 outstanding requests: the bound on queue growth;
 * or no pool thread can run it: none could be created - pthread_create or
 * its allocation failed, or 4,096 threads exist - and every existing one
 * is blocked in a nested wait).  Work is never accepted that no thread
 * will run: what is accepted runs (or is cancelled at process exit).
 *
 * The pool (one per process) starts on first use.  Work starts in
 * submission order (FIFO); how many run at once is the pool's size.  A
 * submission costs one CAS and no system call unless an idle worker must be
 * woken (at most one wake-up per burst: woken workers wake the next) or a
 * thread created.  The completion travels like actx_req_complete's: one
 * post to this loop's mailbox, an eventfd write only if this loop sleeps.
 *
 * A work function may use the runtime on its pool thread (it has its own
 * loop): push, submit, ACTX_WAIT_WHILE, pop.  Policy: the pool grows.  A
 * worker sleeping in such a nested wait does not count against the size;
 * while work is queued, no worker is idle and (threads - blocked) < size, a
 * thread is created (up to 4096), so nested waits on every pool thread at
 * once cannot deadlock.  When no thread can be created, a worker about to
 * sleep in a nested wait while work is queued and no other worker will
 * come runs that work itself, inline, so nested waits never deadlock,
 * whatever the thread limit.  Requests a work function submits without waiting
 * complete on that pool thread between jobs; contexts it leaves pushed are
 * popped (with a diagnostic).
 *
 * Idle threads retire: after 5 s idle, or 200 ms for threads beyond the
 * size (grown for nested waits); the next submission starts threads again.
 * Pool threads block all signals.
 *
 * If the owner thread's runtime shuts down while work is in flight, the
 * work still runs; its completion is refused (-EPIPE at the worker), the
 * request freed and the refusal counted (posts_refused, posts_refused_all).
 * At process exit (atexit) the pool stops: queued work that has not
 * started is cancelled, running work gets 2 s to finish, then every pool
 * thread is joined; one still running (stuck) is detached and left alone.
 * After fork() the child starts with an empty pool; the parent's queued
 * work does not run in the child.
 */
ACTX_EXTERN actx_req *actx_submit(actx_work_fn *work, actx_done_fn *done,
                                  void *opaque);

/**
 * Owner thread only.  File I/O, through the calling thread's io_uring where
 * the kernel allows it, else on the pool (actx_stats().io_backend says
 * which; ACTX_IO=pool in the environment when the thread's loop is created
 * picks the pool).  Both paths give the same results and follow the same
 * rules.  ret is the byte count (short at end of file, as the kernel
 * returns it), 0 for fsync, or -errno (-EBADF for an fd closed by the time
 * the work runs, -ESPIPE for a pipe, a socket or any fd without
 * positional I/O, such as an eventfd).  Refused up front with NULL/errno:
 * a negative fd, or one of the runtime's own (its eventfds, epoll sets and
 * io_uring: a number the caller closed may since be one) (EBADF); a NULL
 * buffer with a non-zero length or a negative offset (EINVAL: never EFAULT
 * from the kernel).  A loop learns the kind of file behind an fd number at
 * its first AIO on it (a file, a stream, O_DIRECT) and keeps it until an
 * AIO on that number fails with EBADF or the loop gets an fd handler for
 * it (actx_set_fd_handler): a number closed and reopened as a pipe, a
 * socket or an eventfd, then given to this function with neither in
 * between, is read on the io_uring path as a stream (as read(2): it
 * waits for data) instead of failing with -ESPIPE.  Requests outstanding
 * at once are not ordered against each other (as POSIX AIO and io_uring
 * without links): a pread of bytes a pwrite not yet completed writes may
 * read the old bytes; issue the read from the write's done to order them
 * (and fsync likewise after the writes it covers).  done may be NULL.
 * Otherwise as actx_submit (not its FIFO start order).
 *
 * io_uring: the requests a loop iteration makes are entered into the
 * kernel together, with one system call, before the loop sleeps or when
 * the iteration (actx_poll, actx_process_queue, actx_backend_timeout_ms)
 * ends; page-cached reads complete inside that call.  A request is
 * cancellable until it is entered, and after that while the kernel has not
 * started it.  Nothing accepted is lost when the kernel refuses to enter
 * them: EAGAIN, EBUSY and EINTR are retried; a hard error (ENOMEM, EBADF)
 * or a refusal that goes on sends the queued requests to the pool (a
 * warning through the log handler), where they complete as the ring would
 * have; during actx_thread_shutdown() they complete with the error instead.
 *
 * Pool: one system call per request on a pool thread (retried on EINTR
 * only), cancellable while queued; a pread the page cache can satisfy at
 * once is done at submission instead (preadv2 RWF_NOWAIT, never blocking):
 * its done still runs at a later poll, in its context, and it counts as
 * finished (actx_req_cancel: -EBUSY).
 */
ACTX_EXTERN actx_req *actx_aio_pread(int fd, void *buf, size_t n, off_t off,
                                     actx_done_fn *done, void *opaque);
/** As actx_aio_pread(), writing n bytes from buf at offset off. */
ACTX_EXTERN actx_req *actx_aio_pwrite(int fd, const void *buf, size_t n,
                                      off_t off, actx_done_fn *done,
                                      void *opaque);
/** As actx_aio_pread(), for fsync(fd); ret is 0 or -errno. */
ACTX_EXTERN actx_req *actx_aio_fsync(int fd, actx_done_fn *done, void *opaque);

/**
 * Owner thread only (-EPERM with a diagnostic from another thread; -EINVAL
 * for NULL).  0 if the work had not started: it never will, and
 * done then runs later (in its context, as usual, never inside this call)
 * with -ECANCELED.  -EBUSY if it has started or finished, if it was already
 * cancelled, or if the request has no pool or io_uring work (made by
 * actx_req_new).  The answer is exact: on io_uring, an operation the
 * kernel had already taken up may still end cancelled, so its end is
 * waited for then (the device's latency at most) and the answer says what
 * done gets.
 * Call it only before done has run (the request is freed after done).
 */
ACTX_EXTERN int actx_req_cancel(actx_req *req);

/**
 * Size the process-wide worker pool before its first use.  Any thread.
 * The size is how many work functions run at once (workers in a nested
 * wait do not count, see actx_submit).  Default max(4, 2 x online CPUs);
 * ACTX_POOL_THREADS in the environment (1..4096, read at first use)
 * replaces the default, and this call, made before first use, wins over
 * both.  Threads are created on demand up to the size and retire when
 * idle.  0, -EBUSY once the pool has started, -EINVAL for n < 1 or
 * n > 4096.
 */
ACTX_EXTERN int actx_pool_set_size(int n);

/* ------------------------------------------------------------------------ */
/* Running the loop.  Owner thread only.                                     */

/**
 * One iteration for the current context: move arrived cross-thread
 * messages into their contexts' queues, then run the current context's
 * scheduled BHs, queued completions and calls, ready fd handlers and due
 * timers.  Returns 1 if anything but an idle BH ran, else 0.  When blocking
 * and nothing ran, sleeps until something of the current context can run
 * and runs it; arrivals for other contexts are queued and do not end the
 * sleep.  Returns 0 at once, without sleeping, when nothing can ever make
 * progress in the current context (no outstanding request, no live BH, no
 * fd handler, no armed timer and no context handle held on it).
 * Since 1.2, a blocking poll never sleeps past the current context's
 * effective deadline (actx_push_deadline()): after it, the call runs what
 * is runnable (ready fds included) and returns, 0 if nothing ran.
 */
ACTX_EXTERN int actx_poll(bool blocking);

/**
 * Owner thread only.  actx_poll(true) for a caller that must get control
 * back now and then (a host's signal handlers, its own deadline): the same
 * iteration, adaptive polling included (actx_set_poll_max_ns), but it
 * waits at most about timeout_ns in all (negative: no limit) and returns
 * when a signal interrupts its sleep.  Returns 1 if anything but an idle
 * BH ran; 0 where actx_poll(true) returns 0 (only idle BHs ran, or nothing
 * can ever make progress in the current context); -ETIMEDOUT when
 * timeout_ns passed, or -EINTR when a signal interrupted the sleep (the
 * kernel may also interrupt it without one: after an io_uring this thread
 * used was closed, e.g. by actx_thread_shutdown() of a loop that did file
 * AIO, its next sleep may end so once), with nothing run either way: call
 * again.  -ENOMEM/-EMFILE if the loop cannot be created.
 * Since 1.2, the current context's effective deadline (actx_push_deadline())
 * ends the wait as timeout_ns does, whichever comes first (-ETIMEDOUT).
 */
ACTX_EXTERN int actx_poll_timeout(int64_t timeout_ns);

/**
 * Move arrived mailbox messages into their contexts' queues, then run the
 * queued completions and calls of the current context; 1 if any ran.
 */
ACTX_EXTERN int actx_process_queue(void);

/**
 * Poll until the current context has no outstanding request and no
 * scheduled non-idle BH.  Requests of other contexts are not waited for.
 * Returns 0, or -EDEADLK if that state can never be reached (nothing can
 * make progress in the current context).  Since 1.2: -ETIMEDOUT when the
 * current context's effective deadline (actx_push_deadline()) passed with
 * that state still not reached (what was runnable ran first; nothing is
 * cancelled).
 */
ACTX_EXTERN int actx_flush(void);

/**
 * Owner thread only.  True while actx_flush() would still wait: the current
 * context has an outstanding request, a queued completion or call, or a
 * scheduled non-idle BH (arrived messages are moved into their queues
 * first).  For a flush that waits in the caller's own loop (e.g. one that
 * must stay interruptible by signals).  False if the thread's loop cannot
 * be created.
 */
ACTX_EXTERN bool actx_flush_pending(void);

/**
 * Poll, blocking, in the current context until actx_stop() is called for
 * it or nothing can make progress.  Returns 0; since 1.2, -ETIMEDOUT when
 * the current context's effective deadline (actx_push_deadline()) passed
 * first.
 */
ACTX_EXTERN int actx_run(void);

/**
 * Any thread.  Make actx_run() in that context (or the context it was
 * re-homed to) return.  A stop that arrives while the context is not in
 * actx_run() makes its next actx_run() return after one iteration.  0, or
 * -EPIPE after the owner thread's runtime shut down, -EINVAL for NULL,
 * -ENOMEM (the stop message could not be allocated).
 */
ACTX_EXTERN int actx_stop(actx_ctx *ctx);

/**
 * ACTX_WAIT_WHILE(cond): poll, blocking, in the current context while cond
 * holds.  Evaluates to 0, or to -EDEADLK when the current context can make
 * no more progress while cond still holds.  Since 1.2, to -ETIMEDOUT when
 * cond still holds after the current context's effective deadline
 * (actx_push_deadline()): the poll that reaches it first runs what is
 * runnable; nothing is cancelled (see actx_cancel_context()).  Also
 * -ETIMEDOUT once a context a callback left pushed (it became the current
 * one) has passed its deadline.  Owner thread only.
 */
#define ACTX_WAIT_WHILE(cond)                                                  \
    __extension__({                                                            \
        int actx_wait_ret_ = 0;                                                \
        uint64_t actx_wait_dl_ = actx_deadline();                              \
        while (cond) {                                                         \
            int actx_wait_r_ = actx_poll(true);                                \
            if (actx_wait_r_ == 0 && !actx_can_progress() && (cond)) {         \
                actx_wait_ret_ = -EDEADLK;                                     \
                break;                                                         \
            }                                                                  \
            if (((__builtin_expect(actx_wait_dl_ != UINT64_MAX, 0) &&          \
                  actx_now_ns() >= actx_wait_dl_) ||                           \
                 (actx_wait_r_ == 0 && actx_now_ns() >= actx_deadline())) &&   \
                (cond)) {                                                      \
                actx_wait_ret_ = -ETIMEDOUT;                                   \
                break;                                                         \
            }                                                                  \
        }                                                                      \
        actx_wait_ret_;                                                        \
    })

/**
 * Owner thread only.  True while something could still run in the current
 * context: something runnable now, an outstanding request, a live BH, an fd
 * handler, an armed timer or a context handle held on it.
 */
ACTX_EXTERN bool actx_can_progress(void);

/* ------------------------------------------------------------------------ */
/* Cross-thread context handles.                                             */

/** Owner thread only.  A new counted reference to the current context. */
ACTX_EXTERN actx_ctx *actx_ctx_current(void);

/**
 * Any thread.  A handle stays valid after its owner thread exits, until
 * its last unref.  actx_ctx_ref returns its argument (NULL: NULL);
 * actx_ctx_unref(NULL) is a no-op.  One unref more than the handle's
 * references is misuse: reported (the extra unref does nothing) in
 * release builds, an abort with the message in debug builds, also after
 * the owner thread exited (debug builds keep the last contexts freed that
 * way in a quarantine).
 */
ACTX_EXTERN actx_ctx *actx_ctx_ref(actx_ctx *ctx);
/** Any thread.  Drops a reference taken by actx_ctx_current()/_ref(). */
ACTX_EXTERN void actx_ctx_unref(actx_ctx *ctx);

/** Any thread.  The id the context had while it was on its stack. */
ACTX_EXTERN int actx_ctx_id(actx_ctx *ctx);

/**
 * Any thread.  Runs fn(opaque) once on the owner thread while that context
 * (or the one it was re-homed to) is current; never inline, even on the
 * owner thread.  0, -ENOMEM, -EINVAL (NULL), or -EPIPE after the owner
 * thread's runtime shut down.  Everything accepted runs before shutdown
 * completes.
 */
ACTX_EXTERN int actx_ctx_call(actx_ctx *ctx, actx_fn *fn, void *opaque);

/* ------------------------------------------------------------------------ */
/* fd handlers, timers, embedding.  Owner thread only.                       */

/**
 * Register level-triggered handlers for fd in the current context; both
 * NULL removes (removing an fd that is not registered is a no-op).
 * Registering an fd again (from any context of the same thread) updates it
 * and moves it to the current context.  on_read runs while fd is readable
 * (or reports hang-up/error), on_write while it is writable, each only
 * while the handler's context is current; an outer context's ready fd
 * waits, without a busy loop, until its context is current again.  A
 * handler may remove or change itself or others, and may push, wait and
 * pop.  Handlers re-home with their context at pop.
 * -EBADF for a negative or closed fd, -EPERM for an fd epoll cannot poll
 * (a regular file), -EINVAL for the loop's own fd, -ENOMEM, -ENOSPC (the
 * kernel's limit of epoll watches).
 * -EBADF is also what a number that is not open gets, before anything is
 * allocated (memory follows registered fds, not fd numbers); -EMFILE when
 * the first handler of a nested context finds no fd for its epoll set.
 * Close-and-free, from any callback (its own handler included):
 *
 *     actx_set_fd_handler(conn->fd, NULL, NULL, NULL);
 *     close(conn->fd);
 *     free(conn);
 *
 * Once the removal returns the runtime never calls the handler again nor
 * touches its opaque: not for the other direction of the same event (read
 * and write due together), not for events already collected in the same
 * dispatch pass, and not when the fd number is reused at once by a new
 * registration (events are matched to a registration, not to a number).
 * The memory can be freed right there; no deferred release is needed.
 * Remove a handler before closing its fd.  An fd found closed while
 * registered (epoll_ctl reports EBADF when the handler is changed, moved
 * or removed) has its handler removed and is counted in
 * actx_stats().fd_errors; the loop never spins on it.  Registering the
 * same number again re-arms it, so a number closed and reopened works
 * once registered again.  When changing an existing registration fails
 * with -ENOMEM (or -ENOSPC, -EMFILE), the registration stays as it was.
 * If moving a nested context's handler into its parent's epoll set at
 * actx_pop() fails for lack of kernel memory, the handler is kept
 * (counted in fd_errors, with a diagnostic) and the move retried at most
 * every 10 ms at the polls of its context, whose sleeps are bounded to
 * 10 ms meanwhile; after 100 failed tries it is removed with an error
 * through the log handler (the loop never polls for ever).
 */
ACTX_EXTERN int actx_set_fd_handler(int fd, actx_fn *on_read, actx_fn *on_write,
                                    void *opaque);

/**
 * A timer of the current context, not armed.  NULL/errno on failure
 * (EINVAL for a NULL cb, ENOMEM).  This is the timer's only allocation:
 * arming, re-arming, disarming and re-homing it at actx_pop() never
 * allocate and never fail.  Timers still alive at thread shutdown are
 * freed with the loop (as BHs are).  actx_timer_mod, _del and _free are
 * owner thread only (from another thread: a diagnostic, nothing happens),
 * no-ops for NULL; using a freed timer is a use-after-free, reported in
 * debug builds.
 */
ACTX_EXTERN actx_timer *actx_timer_new(actx_fn *cb, void *opaque);
/**
 * Arm (or re-arm) for an absolute CLOCK_MONOTONIC deadline in ns.  The
 * callback runs once per mod, never before the deadline (a deadline in the
 * past: at the next poll), only while the timer's context is current: one
 * that expired under a pushed context fires after the pop.  Timers re-home
 * with their context at pop; a timer armed after its context was popped
 * belongs to the context that context was re-homed to.  Timers due at
 * the same deadline fire in the order they were armed (their latest
 * actx_timer_mod), as in QEMU and libuv, also after a pop merged them.
 * O(log n).  Never fails.
 */
ACTX_EXTERN void actx_timer_mod(actx_timer *t, uint64_t expire_ns);
/** Disarm (no-op if not armed). */
ACTX_EXTERN void actx_timer_del(actx_timer *t);
/** Disarm and free; legal from the timer's own callback. */
ACTX_EXTERN void actx_timer_free(actx_timer *t);
/** CLOCK_MONOTONIC now, in ns.  Any thread. */
ACTX_EXTERN uint64_t actx_now_ns(void);

/**
 * Calling thread (its loop).  Adaptive polling: before a blocking
 * actx_poll() (or actx_poll_timeout(), actx_run(), actx_flush()) sleeps,
 * it first polls the mailbox, the current context's queue, its scheduled
 * BHs, its due timers and, while the loop has fd handlers, the ready fds
 * (a zero-timeout epoll wait at most about every microsecond) for up to
 * an adaptive window of at most ns nanoseconds, so that a completion
 * arriving or an fd turning ready soon is run without the cost of
 * sleeping and being woken (eventfd write, epoll wake-up).  The window
 * grows while sleeps turn out short and shrinks to nothing while they are
 * long, so an idle loop does not spin (poll.c explains the rule).  Polling
 * never changes what runs: the same callbacks, in the same contexts, in
 * the same order (an fd of another context found ready waits for its
 * context as always).  0 (the default) never polls; values above 10 s act
 * as 10 s.  Returns 0, -EINVAL for ns < 0, or -ENOMEM/-EMFILE if the loop
 * cannot be created.
 */
ACTX_EXTERN int actx_set_poll_max_ns(int64_t ns);

/**
 * For embedding the thread's loop in another event loop: wait until
 * actx_backend_fd() is readable or actx_backend_timeout_ms() passes (-1: no
 * timeout), then call actx_poll(false).  Calling actx_backend_timeout_ms()
 * declares that the caller is about to wait on the fd: until the next
 * actx_poll(), every post to this loop writes its eventfd.
 * The fd is an epoll fd of the thread, the same for every loop the thread
 * has: a loop created after actx_thread_shutdown() (by the next call that
 * needs one) uses it too, so a host loop that keeps watching it follows
 * the new loop; while the thread has no loop it is never readable; it is
 * closed at thread exit (never close it yourself).  It becomes readable
 * for arrived posts and ready fds of the context that was current at the
 * latest actx_backend_timeout_ms() (never for an outer context's fds, so
 * a host loop does not spin during a nested wait); the timeout is
 * until the current context's next timer, at most 10 ms with idle BHs
 * scheduled, 0 when something can run now, rounded up to whole ms and at
 * most INT_MAX (a timer further out, even at UINT64_MAX, gives INT_MAX,
 * never -1: the host wakes, asks again, and waits again).  An
 * actx_poll(false) that ran something may leave more to do: ask for the
 * timeout again before waiting (GLib: prepare/check/dispatch).
 * docs/embedding.md gives the recipe for any loop; actx-glib.h
 * (libactx-glib) implements it for GLib.
 */
ACTX_EXTERN int actx_backend_fd(void);
/** See actx_backend_fd(). */
ACTX_EXTERN int actx_backend_timeout_ms(void);

/* ------------------------------------------------------------------------ */
/* Threads, errors, introspection.                                           */

/**
 * Calling thread.  Create the calling thread's loop explicitly (it is
 * otherwise created on the first call).  0, or -EMFILE/-ENFILE (no fd for its epoll set or
 * eventfd), -ENOMEM.
 *
 * fork(): the child starts with no loop; its first call makes a fresh one,
 * as on a new thread.  The loops it inherited (the forking thread's, and
 * other threads') are dropped in the child without touching what the
 * parent still uses (no epoll_ctl, eventfd read or write, or ring enter on
 * them; only the child's copies of their descriptors are closed): nothing
 * the child does, shutdown included, changes what the parent sees.  Their
 * callbacks never run in the child; posts from the child to their contexts
 * fail with -EPIPE; their requests, BHs and timers must not be used
 * there.  The pool starts empty (actx_submit); io_uring is set up afresh.
 * The runtime's process-wide locks are held across fork(), so the child
 * never inherits one locked.  A child forked from inside a callback must
 * only exec or _exit.  docs/concepts.md has the whole contract.
 */
ACTX_EXTERN int actx_thread_init(void);

/**
 * Calling thread (its own loop).  Pop any contexts still pushed, run
 * everything already accepted that can run, close the mailbox (later posts
 * get -EPIPE), free the loop and any BHs still alive.  Runs automatically
 * at thread exit.  A later call on
 * this thread creates a new loop.
 * Called from inside a callback (a BH, done, call, timer or fd handler,
 * also a work function run on a pool thread's loop), it is deferred: the
 * callback and whatever called it keep a working loop, and the shutdown
 * happens when the outermost actx_poll / actx_bh_poll /
 * actx_process_queue / actx_flush / actx_run / actx_pop that ran the
 * callback returns.  A callback that then ends its thread (pthread_exit)
 * is shut down at thread exit as usual.
 */
ACTX_EXTERN void actx_thread_shutdown(void);

/**
 * Any thread.  The version of the library actually loaded (which may be
 * newer than the header a program was compiled with):
 * (major << 16) | (minor << 8) | patch, and the same as "1.2.0".
 */
ACTX_EXTERN unsigned actx_version(void);
/** See actx_version(). */
ACTX_EXTERN const char *actx_version_string(void);

/**
 * Any thread.  A static description of a negative errno ("Success" for 0
 * and positive values, "Unknown error" for what is not an errno).
 */
ACTX_EXTERN const char *actx_strerror(int err);

/** Log level: the runtime detected a misuse or a failure it cannot report
 *  through a return value (the syslog LOG_ERR value). */
#define ACTX_LOG_ERROR 3
/** Log level: something was ignored or adjusted (LOG_WARNING). */
#define ACTX_LOG_WARNING 4
/** Log level: detail for debugging; the default handler drops it
 *  (LOG_DEBUG). */
#define ACTX_LOG_DEBUG 7

/**
 * Any thread; process-wide.  Route every message the runtime logs to
 * fn(level, msg, opaque) instead of stderr; fn == NULL restores the
 * default.  level is ACTX_LOG_ERROR, ACTX_LOG_WARNING or ACTX_LOG_DEBUG;
 * msg is one line without a trailing newline, of the form
 * "function: what happened", valid only during the call.
 *
 * fn runs on the thread that detected the condition (an owner thread, a
 * pool thread), never while a runtime lock is held, possibly on several
 * threads at once.  It should be quick and must not block on another
 * thread that may be calling actx_set_log_handler.  A message logged from
 * inside fn itself goes to the default handler.  When this call returns,
 * no other thread is still running the previous handler and none will
 * call it again: its opaque may be freed.
 *
 * The default handler prints "actx: " msg to stderr, errors and warnings
 * only, and at most 20 messages per process (a misuse in a loop must not
 * flood stderr).  An installed handler receives every message, debug
 * ones included.
 */
ACTX_EXTERN void actx_set_log_handler(void (*fn)(int level, const char *msg,
                                                 void *opaque),
                                      void *opaque);

/** Per-thread counters, filled in by actx_stats(). */
struct actx_stats {
    int depth;                          /**< current context id */
    long live_bhs;                      /**< BHs alive on this thread */
    unsigned long bh_runs;              /**< BH callbacks run */
    unsigned long completions_run;      /**< completions run on this
                                           thread (their done callbacks;
                                           one with no done counts too) */
    unsigned long completions_deferred; /**< arrived while another context
                                           was current */
    unsigned long calls_run;            /**< actx_ctx_call functions run */
    unsigned long mailbox_msgs;         /**< messages taken from the mailbox */
    unsigned long wakeups;              /**< eventfd wake-ups received */
    unsigned long sleeps;               /**< blocking waits entered */
    unsigned long posts_refused;        /**< posts to this thread refused with
                                           -EPIPE (after its shutdown) */
    /* Additions. */
    unsigned long posts_refused_all; /**< process-wide refusals */
    long outstanding;                /**< requests of this thread not yet
                                           done */
    unsigned long fd_errors;         /**< fds found closed while registered */
    unsigned long timers_fired;      /**< timer callbacks run */
    int io_backend; /**< how this thread's actx_aio_* calls run, decided
                       when its loop was created: 0 = the worker pool (also
                       with no loop), 1 = the loop's io_uring (a loop whose
                       ring then cannot be set up falls back to 0) */
};

/**
 * Owner thread (the counters are the calling thread's).  Fill the first
 * size bytes of *st, where size is sizeof(struct actx_stats) as the
 * caller's header had it: fields the library does not know (a caller
 * compiled against a newer header) read 0, and fields the caller does not
 * know (a newer library) are not written, so a caller built against an
 * older, smaller struct keeps working.  Returns how many bytes the library
 * filled (at most its own sizeof), 0 for a NULL st.
 */
ACTX_EXTERN size_t actx_stats_size(struct actx_stats *st, size_t size);

/**
 * The calling thread's counters.  Owner thread (the calling thread's
 * loop; without one all zero, but for posts_refused - posts refused since
 * this thread's last loop shut down - and posts_refused_all).  In a program, actx_stats(st) is a macro
 * for actx_stats_size(st, sizeof(struct actx_stats)), so it fills exactly
 * the struct the program was compiled with; the exported function (what
 * `(actx_stats)(st)` and binaries built against version 1.0 call) fills
 * the fields of version 1.0, up to timers_fired, and never more.
 */
ACTX_EXTERN void(actx_stats)(struct actx_stats *st);
/** See actx_stats(). */
#define actx_stats(st) ((void)actx_stats_size((st), sizeof(struct actx_stats)))

/**
 * Any thread.  The counters of the loop that owns ctx's context - what
 * actx_stats() returns on that loop's thread - for a metrics endpoint or a
 * watchdog on another thread.  Fills the first size bytes of *st by the
 * rule of actx_stats_size() (so struct actx_stats can grow) and returns
 * how many bytes it filled.
 *
 * On the owner thread the counters are read at once.  From another thread
 * the question travels as an actx_ctx_call() does: the owner answers it
 * with one consistent snapshot, taken on its own thread, the next time it
 * iterates while ctx's context (or the one that context was re-homed to)
 * is current, and the caller waits for the answer at most timeout_ns
 * (negative: no limit).  Take the handle on the loop's root context
 * (actx_ctx_current() before anything is pushed): any iteration outside a
 * nested wait answers it.  depth is the depth of the context that was
 * current when the owner answered.  A loop nobody asks pays nothing.  The
 * calling thread needs no loop and none is created for it; while it waits
 * its own loop (if any) runs nothing, so two loops asking each other
 * without a limit would wait forever.
 *
 * -ETIMEDOUT when no answer came in time (the owner is inside a long
 * callback, blocked, or waiting in a nested context: what a watchdog wants
 * to know), -EPIPE after the owner thread's runtime shut down (counted as
 * a refused post, as any), -EINVAL for a NULL ctx or st, -ENOMEM.
 */
ACTX_EXTERN long actx_ctx_stats_size(actx_ctx *ctx, struct actx_stats *st,
                                     size_t size, int64_t timeout_ns);
/** actx_ctx_stats_size() for the struct the program was compiled with. */
#define actx_ctx_stats(ctx, st, timeout_ns)                                    \
    actx_ctx_stats_size((ctx), (st), sizeof(struct actx_stats), (timeout_ns))

/** The process-wide worker pool's state, filled in by actx_pool_stats(). */
struct actx_pool_stats {
    int size;    /**< the pool's size (see actx_pool_set_size()); 0 until
                    the pool's first use */
    int threads; /**< pool threads alive (created, not retired) */
    int idle;    /**< threads waiting for work */
    int busy;    /**< threads running a work function, those inside a
                    nested wait included */
    int blocked; /**< threads sleeping in a nested wait (counted in busy) */
    long queued; /**< work submitted and not started yet (cancelled work
                    still in the queue included) */
    unsigned long threads_created; /**< threads the pool ever created */
    unsigned long threads_retired; /**< threads that retired when idle */
    unsigned long create_failed;   /**< thread creations that failed */
};

/**
 * Any thread.  The worker pool's state, for a metrics endpoint: fills the
 * first size bytes of *st by the rule of actx_stats_size() (the struct can
 * grow) and returns how many bytes it filled, 0 for a NULL st.  The
 * numbers are read together under the pool's lock, so they agree with one
 * another, and may have changed by the time the call returns.  It costs
 * the pool nothing between calls (no counter on the submission path).
 */
ACTX_EXTERN size_t actx_pool_stats_size(struct actx_pool_stats *st,
                                        size_t size);
/** actx_pool_stats_size() for the struct the program was compiled with. */
#define actx_pool_stats(st)                                                    \
    ((void)actx_pool_stats_size((st), sizeof(struct actx_pool_stats)))

/** Calling thread.  Human-readable state of its context stack. */
ACTX_EXTERN void actx_dump(FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* ACTX_H */
