/*
 * bh.c - bottom halves.
 *
 * Scheduling on the owner thread is the hot path (a BH that schedules the
 * next one, bursts of scheduled BHs), so it uses no atomic read-modify-write:
 * the owner records a schedule in lstate with a plain store, tagged with the
 * cancel generation it read.  Other threads never write lstate:
 *
 *   - a schedule from another thread first looks at lstate (a valid local
 *     schedule makes it a no-op), else sets R_SCHED in rstate with a CAS and,
 *     if it won R_MAILED (the mailbox link), posts the BH to the mailbox;
 *     the owner moves it into its context's BH list when it drains;
 *   - a cancel from another thread bumps the generation in rstate, which
 *     invalidates any local
 *     schedule made with an older generation, and clears R_SCHED.
 *
 * A BH is runnable when it has a valid local schedule or R_SCHED.  The poll
 * that takes it off the list clears both (a plain store for lstate, a
 * fetch_and only when R_SCHED is set) and runs it.  A BH can be in the
 * mailbox and in a BH list at once, so the two links are separate fields.
 *
 * A context's BH list holds its scheduled BHs in scheduling order (a BH
 * scheduled again after a cancel moves to the tail); each schedule stamps
 * bh->seq with the loop's counter.  actx_bh_poll runs the BHs stamped before
 * it started; one stamped later (scheduled during the call) goes back to the
 * tail and runs at the next call.  A deleted BH leaves the list at once.
 * Cost is O(scheduled), never O(all BHs).
 */
#include "actx-internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* On a cache line of its own (actx-internal.h: the hot first 64 bytes). */
#define BH_ALIGN 64
#define BH_SIZE ((sizeof(actx_bh) + BH_ALIGN - 1) & ~(size_t)(BH_ALIGN - 1))
_Static_assert(offsetof(actx_bh, msg) == BH_ALIGN,
               "the hot part of a BH is one cache line");

#define GEN_BITS (UINT32_MAX << ACTX__BH_GEN_SHIFT)
#define GEN_ONE (1u << ACTX__BH_GEN_SHIFT)

/* Does lstate hold a schedule that no cancel has invalidated (rs: rstate)? */
static inline bool local_valid(uint32_t ls, uint32_t rs)
{
    return (ls & ACTX__BH_L_SCHED) && ((ls ^ rs) & GEN_BITS) == 0;
}

/*
 * Relaxed loads of rstate to check a local schedule: a cancel that
 * happens-before the load (through the user's own synchronisation) is seen
 * by coherence; a racing one may be ordered either way.
 */
static inline uint32_t rstate_relaxed(actx_bh *bh)
{
    return atomic_load_explicit(&bh->rstate, memory_order_relaxed);
}

/*
 * The owner's BH list of a context is doubly linked, so a BH scheduled again
 * after a cancel moves to the tail: the list is always in scheduling order.
 */
static void list_push(actx_ctx *c, actx_bh *bh)
{
    bh->list_next = NULL;
    bh->list_pprev = c->bh_tail;
    *c->bh_tail = bh;
    c->bh_tail = &bh->list_next;
    c->bh_len++;
}

static void list_unlink(actx_ctx *c, actx_bh *bh)
{
    *bh->list_pprev = bh->list_next;
    if (bh->list_next) {
        bh->list_next->list_pprev = bh->list_pprev;
    } else {
        c->bh_tail = bh->list_pprev;
    }
    c->bh_len--;
    bh->list_pprev = NULL;
}

/* Append bh (not scheduled until now) at the tail of its context's list. */
static void list_requeue(actx__loop *loop, actx_bh *bh)
{
    actx_ctx *c = actx__obj_ctx(&bh->ctx);

    if (bh->list_pprev) {
        list_unlink(c, bh);
    }
    bh->seq = ++loop->bh_seq;
    list_push(c, bh);
}

actx_bh *actx_bh_new(actx_fn *cb, void *opaque)
{
    actx__loop *loop;
    actx_bh *bh;

    if (!cb) {
        errno = EINVAL;
        return NULL;
    }
    loop = actx__loop_get();
    if (!loop) {
        return NULL;
    }
    bh = aligned_alloc(BH_ALIGN, BH_SIZE);
    if (!bh) {
        errno = ENOMEM;
        return NULL;
    }
    memset(bh, 0, sizeof(*bh));
    bh->msg.type = ACTX__MSG_BH;
    bh->cb = cb;
    bh->opaque = opaque;
    bh->ctx = loop->cur;
    bh->depth = loop->cur->depth;
    bh->loop = loop;
    bh->mb = loop->mb;
    bh->all_next = loop->bhs;
    if (loop->bhs) {
        loop->bhs->all_prev = bh;
    }
    loop->bhs = bh;
    loop->cur->objs++;
    loop->cur->npending++;
    loop->st.live_bhs++;
    return bh;
}

/* Scheduling on the owner thread, in full. */
static __attribute__((noinline)) void schedule_local(actx__loop *loop,
                                                     actx_bh *bh, bool idle)
{
    uint32_t ls, rs;
    actx_ctx *c;

    if (ACTX__UNLIKELY(!bh->cb)) {
        return; /* deleted */
    }
    /*
     * Earlier arrivals first: scheduling order is run order.  Only the
     * mailbox carries BHs (ring completions are requests).  Relaxed as in
     * actx__drain_if_any.
     */
    if ((uintptr_t)atomic_load_explicit(&loop->mb->head, memory_order_relaxed) >
        1) {
        actx__drain(loop, false);
    }
    ls = atomic_load_explicit(&bh->lstate, memory_order_relaxed);
    rs = rstate_relaxed(bh);
    if (local_valid(ls, rs) || (rs & ACTX__BH_R_SCHED)) {
        return; /* already scheduled: an idle one stays idle */
    }
    atomic_store_explicit(&bh->lstate,
                          (rs & GEN_BITS) | ACTX__BH_L_SCHED |
                              (idle ? ACTX__BH_L_IDLE : 0),
                          memory_order_relaxed);
    c = actx__obj_ctx(&bh->ctx);
    if (bh->list_pprev != NULL) {
        list_unlink(c, bh); /* cancelled, still listed: to the tail */
    }
    bh->seq = ++loop->bh_seq;
    list_push(c, bh);
    actx__local_post(loop);
}

/*
 * The hot path of a burst: schedule_local where nothing unusual holds
 * (an empty mailbox, a live BH of a live context, not listed, no embedder
 * to notify), with no call and so no stack frame.  Anything else goes to
 * schedule_local, which checks it all again.
 */
static inline __attribute__((always_inline)) void
schedule_local_fast(actx__loop *loop, actx_bh *bh, bool idle)
{
    uint32_t ls, rs;
    actx_ctx *c = bh->ctx;

    if (ACTX__UNLIKELY((uintptr_t)atomic_load_explicit(
                           &loop->mb->head, memory_order_relaxed) > 1 ||
                       !bh->cb || bh->list_pprev != NULL || c->fwd != NULL ||
                       loop->notify_armed)) {
        schedule_local(loop, bh, idle);
        return;
    }
    ls = atomic_load_explicit(&bh->lstate, memory_order_relaxed);
    rs = rstate_relaxed(bh);
    if (local_valid(ls, rs) || (rs & ACTX__BH_R_SCHED)) {
        return; /* already scheduled: an idle one stays idle */
    }
    atomic_store_explicit(&bh->lstate,
                          (rs & GEN_BITS) | ACTX__BH_L_SCHED |
                              (idle ? ACTX__BH_L_IDLE : 0),
                          memory_order_relaxed);
    bh->seq = ++loop->bh_seq;
    list_push(c, bh);
}

static void schedule_remote(actx_bh *bh, bool idle)
{
    uint32_t old, new, ls;

    old = rstate_relaxed(bh);
    do {
        /*
         * Already scheduled, here or by the owner: the schedule changes
         * nothing, but it is still a write of rstate, so that the run
         * covering it is ordered after it: the owner's fetch_and (or the
         * run the R_SCHED set here causes) acquires it, and the callback
         * sees what this thread wrote before scheduling (as
         * qemu_bh_schedule's callers rely on).  A plain load would let
         * the owner take the BH off and run it without that ordering.
         */
        if (old & ACTX__BH_R_SCHED) {
            new = old;
            continue;
        }
        ls = atomic_load_explicit(&bh->lstate, memory_order_relaxed);
        new = old | ACTX__BH_R_SCHED | ACTX__BH_R_MAILED;
        if (local_valid(ls, old)) {
            /* An idle schedule of the owner's stays idle. */
            idle = ls & ACTX__BH_L_IDLE;
        }
        new = idle ? (new | ACTX__BH_R_IDLE) : (new & ~ACTX__BH_R_IDLE);
        /*
         * seq_cst: orders the schedule before our load of notify_me
         * (actx__mb_notify), pairing with the owner's store of notify_me
         * before it scans its BH list (actx__bh_has_nonidle).
         */
    } while (!atomic_compare_exchange_weak(&bh->rstate, &old, new));

    if (old & ACTX__BH_R_SCHED) {
        return;
    }
    if (old & ACTX__BH_R_MAILED) {
        /* Still in the mailbox from an earlier, cancelled schedule. */
        if (!idle) {
            actx__mb_notify(bh->mb, ACTX__WAKE_ANY, bh->depth);
        }
        return;
    }
    if (actx__mb_post(bh->mb, &bh->msg,
                      idle ? ACTX__WAKE_UNBOUNDED : ACTX__WAKE_ANY,
                      bh->depth) ||
        !idle) {
        return; /* posted (or the loop is gone: scheduling is misuse) */
    }
    /*
     * Another thread may have turned our idle schedule into a normal one
     * (cancel + schedule) and notified before our push was visible.
     */
    new = atomic_load(&bh->rstate);
    if ((new &ACTX__BH_R_SCHED) && !(new &ACTX__BH_R_IDLE)) {
        actx__mb_notify(bh->mb, ACTX__WAKE_ANY, bh->depth);
    }
}

static inline __attribute__((always_inline)) void bh_schedule(actx_bh *bh,
                                                              bool idle)
{
    actx__loop *loop = actx__tls_loop;

    if (ACTX__UNLIKELY(!bh)) {
        return;
    }
    if (ACTX__LIKELY(loop == bh->loop)) {
        schedule_local_fast(loop, bh, idle);
    } else {
        schedule_remote(bh, idle);
    }
}

void actx_bh_schedule(actx_bh *bh)
{
    bh_schedule(bh, false);
}

void actx_bh_schedule_idle(actx_bh *bh)
{
    bh_schedule(bh, true);
}

void actx_bh_cancel(actx_bh *bh)
{
    if (!bh) {
        return;
    }
    if (actx__tls_loop == bh->loop) {
        atomic_store_explicit(&bh->lstate, 0, memory_order_relaxed);
        if (bh->list_pprev &&
            !(atomic_load_explicit(&bh->rstate, memory_order_relaxed) &
              ACTX__BH_R_SCHED)) {
            list_unlink(actx__obj_ctx(&bh->ctx), bh);
        }
    } else {
        atomic_fetch_add(&bh->rstate, GEN_ONE); /* wraps: a generation */
    }
    if (atomic_load_explicit(&bh->rstate, memory_order_relaxed) &
        ACTX__BH_R_SCHED) {
        atomic_fetch_and(&bh->rstate, ~(uint32_t)ACTX__BH_R_SCHED);
    }
    /* A listed BH stays listed; the poll that takes it skips it. */
}

static void bh_unlink_all(actx__loop *loop, actx_bh *bh)
{
    if (bh->all_prev) {
        bh->all_prev->all_next = bh->all_next;
    } else {
        loop->bhs = bh->all_next;
    }
    if (bh->all_next) {
        bh->all_next->all_prev = bh->all_prev;
    }
}

void actx_bh_delete(actx_bh *bh)
{
    actx__loop *loop;
    uint32_t old;

    if (!bh) {
        return;
    }
    loop = bh->loop;
    ACTX__CHECK_OWNER(loop, );
    if (!bh->cb) {
        actx__misuse(__func__, "BH deleted twice");
        return;
    }
    bh->cb = NULL; /* deleted: never runs again */
    atomic_store_explicit(&bh->lstate, 0, memory_order_relaxed);
    old = atomic_fetch_and(&bh->rstate, ~(uint32_t)ACTX__BH_R_SCHED);
    if (bh->list_pprev) {
        list_unlink(actx__obj_ctx(&bh->ctx), bh);
    }
    bh_unlink_all(loop, bh);
    loop->st.live_bhs--;
    actx__ctx_resolve(bh->ctx)->npending--;
    actx__obj_put(loop, bh->ctx);
    if (!(old & ACTX__BH_R_MAILED)) {
        actx__quarantine(loop, bh);
    }
    /* Else the drain that takes it out of the mailbox frees it. */
}

bool actx_bh_scheduled(actx_bh *bh)
{
    uint32_t rs;

    if (!bh) {
        return false;
    }
    ACTX__CHECK_OWNER(bh->loop, false);
    if (!bh->cb) {
        actx__misuse(__func__, "BH was deleted");
        return false;
    }
    /*
     * The owner's own plain store makes lstate; rstate as in the poll that
     * takes a BH: seq_cst, pairs with schedule_remote's CAS (a remote
     * schedule that happened-before this call is seen).
     */
    rs = atomic_load(&bh->rstate);
    return local_valid(atomic_load_explicit(&bh->lstate, memory_order_relaxed),
                       rs) ||
           (rs & ACTX__BH_R_SCHED) != 0;
}

/* Owner: a BH posted by another thread came out of the mailbox. */
void actx__bh_arrived(actx__loop *loop, actx_bh *bh)
{
    uint32_t old = atomic_fetch_and(&bh->rstate, ~(uint32_t)ACTX__BH_R_MAILED);

    if (!bh->cb) {
        actx__quarantine(loop, bh); /* deleted */
        return;
    }
    if (!(old & ACTX__BH_R_SCHED)) {
        return; /* cancelled on the way */
    }
    if (local_valid(atomic_load_explicit(&bh->lstate, memory_order_relaxed),
                    rstate_relaxed(bh))) {
        return; /* the owner scheduled it meanwhile: keep that place */
    }
    list_requeue(loop, bh);
}

int actx__bh_poll_ctx(actx__loop *loop, actx_ctx *c, bool *ran_idle)
{
    uint64_t limit = loop->bh_seq;
    long n = c->bh_len;
    int progress = 0;
    actx_bh *bh;

    while (n-- > 0 && (bh = c->bh_head) != NULL) {
        uint32_t ls, rf;
        bool run, idle;

        /* Take the head off the list. */
        c->bh_head = bh->list_next;
        if (bh->list_next) {
            bh->list_next->list_pprev = &c->bh_head;
        } else {
            c->bh_tail = &c->bh_head;
        }
        c->bh_len--;
        bh->list_pprev = NULL;
        actx__assert(bh->cb != NULL);
        if (bh->seq > limit) {
            list_push(c, bh); /* scheduled during this call: next one */
            continue;
        }
        ls = atomic_load_explicit(&bh->lstate, memory_order_relaxed);
        rf = rstate_relaxed(bh);
        if (ACTX__LIKELY(((ls ^ rf) & GEN_BITS) == 0 &&
                         (ls & (ACTX__BH_L_SCHED | ACTX__BH_L_IDLE)) ==
                             ACTX__BH_L_SCHED &&
                         !(rf & ACTX__BH_R_SCHED))) {
            /* The common case: a valid, non-idle local schedule only. */
            atomic_store_explicit(&bh->lstate, 0, memory_order_relaxed);
            progress = 1;
            loop->st.bh_runs++;
            bh->cb(bh->opaque); /* may delete bh: do not touch it after */
            if (actx__pass_ends(loop, c)) {
                break; /* the rest stays listed in c, in order */
            }
            continue;
        }
        run = local_valid(ls, rf);
        idle = true;
        if (run) {
            idle = ls & ACTX__BH_L_IDLE;
            atomic_store_explicit(&bh->lstate, 0, memory_order_relaxed);
        }
        if (rf & ACTX__BH_R_SCHED) {
            /* Test-and-clear: a racing cancel may win. */
            rf = atomic_fetch_and(&bh->rstate, ~(uint32_t)ACTX__BH_R_SCHED);
            if (rf & ACTX__BH_R_SCHED) {
                idle = (run ? idle : true) && (rf & ACTX__BH_R_IDLE);
                run = true;
            }
        }
        if (!run) {
            continue; /* cancelled */
        }
        if (idle) {
            *ran_idle = true;
        } else {
            progress = 1;
        }
        loop->st.bh_runs++;
        bh->cb(bh->opaque);
        if (actx__pass_ends(loop, c)) {
            break;
        }
    }
    return progress;
}

int actx_bh_poll(void)
{
    actx__loop *loop = actx__loop_get();
    bool ran_idle = false;
    int r;

    if (!loop) {
        return 0;
    }
    bool outer = actx__enter(loop);
    actx__drain_if_any(loop);
    r = actx__bh_poll_ctx(loop, loop->cur, &ran_idle);
    actx__leave(loop, outer);
    return r;
}

/*
 * Owner: is a non-idle BH scheduled in c?  O(scheduled); used to decide
 * whether to sleep, never on the fast path.  seq_cst loads: O3 of the
 * wake-up protocol (mailbox.c), paired with schedule_remote's CAS.
 */
bool actx__bh_has_nonidle(actx_ctx *c)
{
    actx_bh *bh;

    for (bh = c->bh_head; bh; bh = bh->list_next) {
        uint32_t ls = atomic_load(&bh->lstate);
        uint32_t rf = atomic_load(&bh->rstate);

        if ((local_valid(ls, rf) && !(ls & ACTX__BH_L_IDLE)) ||
            ((rf & ACTX__BH_R_SCHED) && !(rf & ACTX__BH_R_IDLE))) {
            return true;
        }
    }
    return false;
}

/* Shutdown (mailbox closed and drained): free every BH. */
void actx__bh_loop_shutdown(actx__loop *loop)
{
    actx_ctx *c = loop->root;
    actx_bh *bh;

    while ((bh = c->bh_head) != NULL) {
        list_unlink(c, bh);
    }
    while ((bh = loop->bhs) != NULL) {
        loop->bhs = bh->all_next;
        actx__ctx_resolve(bh->ctx)->npending--;
        actx__obj_put(loop, bh->ctx);
        loop->st.live_bhs--;
        free(bh);
    }
}
