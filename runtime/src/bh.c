/*
 * bh.c - bottom halves.
 *
 * A BH is scheduled by setting SCHEDULED and, if it was not linked
 * anywhere, linking it (ENQUEUED): on the owner thread straight into its
 * context's BH list, from other threads through the mailbox, which the
 * owner drains into the same list.  The flags word decides every race:
 * whoever sets ENQUEUED owns the link; cancel only clears SCHEDULED, and
 * the poll that unlinks a cancelled BH skips it.
 *
 * A BH list holds BHs in scheduling order, each stamped with the loop's
 * sequence number when appended.  actx_bh_poll runs the entries stamped
 * before it started, so a BH scheduled during the call runs at the next one
 * and a nested poll from a callback (same context) simply continues the
 * list.  Cost is O(scheduled), never O(all BHs).
 */
#include "actx-internal.h"

#include <errno.h>
#include <stdlib.h>

static void bh_list_append(actx__loop *loop, actx_ctx *c, actx_bh *bh)
{
    bh->seq = ++loop->bh_seq;
    bh->msg.next = NULL;
    *c->bh_tail = &bh->msg;
    c->bh_tail = &bh->msg.next;
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
    bh = malloc(sizeof(*bh));
    if (!bh) {
        errno = ENOMEM;
        return NULL;
    }
    bh->msg.type = ACTX__MSG_BH;
    atomic_init(&bh->flags, 0);
    bh->cb = cb;
    bh->opaque = opaque;
    bh->ctx = loop->cur;
    bh->loop = loop;
    bh->mb = loop->mb;
    bh->seq = 0;
    bh->all_prev = NULL;
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

static void bh_schedule(actx_bh *bh, bool idle)
{
    actx__loop *loop;
    unsigned old, new;

    if (ACTX__UNLIKELY(!bh)) {
        return;
    }
    old = atomic_load_explicit(&bh->flags, memory_order_relaxed);
    do {
        if (old & (ACTX__BH_SCHEDULED | ACTX__BH_DELETED)) {
            return;
        }
        new = old | ACTX__BH_SCHEDULED | ACTX__BH_ENQUEUED;
        new = idle ? (new | ACTX__BH_IDLE) : (new & ~ACTX__BH_IDLE);
        /*
         * seq_cst: orders the flag change before our load of notify_me
         * (actx__mb_notify), pairing with the owner's store of notify_me
         * before it scans BH lists for runnable work.
         */
    } while (!atomic_compare_exchange_weak(&bh->flags, &old, new));

    loop = actx__tls_loop;
    if (loop == bh->loop) {
        /* Owner thread: nobody sleeps; keep order with earlier arrivals. */
        if (!(old & ACTX__BH_ENQUEUED)) {
            actx__drain_if_any(loop);
            bh_list_append(loop, actx__obj_ctx(&bh->ctx), bh);
        }
        return;
    }
    if (!(old & ACTX__BH_ENQUEUED)) {
        /* We own the link. */
        if (actx__mb_post(bh->mb, &bh->msg,
                          idle ? ACTX__WAKE_UNBOUNDED : ACTX__WAKE_ANY)) {
            return; /* the loop is gone: scheduling a dead BH is misuse */
        }
        if (!idle) {
            return;
        }
        /*
         * Another thread may have turned our idle schedule into a normal
         * one and notified before our push was visible: wake for it now.
         * The BH may already be run (not freed: delete must not race).
         */
        new = atomic_load(&bh->flags);
        if ((new & ACTX__BH_SCHEDULED) && !(new & ACTX__BH_IDLE)) {
            actx__mb_notify(bh->mb, ACTX__WAKE_ANY);
        }
    } else if (!idle) {
        /* Linked already (maybe as idle): make sure the owner looks. */
        actx__mb_notify(bh->mb, ACTX__WAKE_ANY);
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
    if (bh) {
        /* The link stays; the poll that unlinks it sees it cancelled. */
        atomic_fetch_and(&bh->flags, ~ACTX__BH_SCHEDULED);
    }
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
    unsigned old;

    if (!bh) {
        return;
    }
    loop = bh->loop;
    ACTX__CHECK_OWNER(loop, );
    old = atomic_fetch_or(&bh->flags, ACTX__BH_DELETED);
    if (old & ACTX__BH_DELETED) {
        actx__misuse(__func__, "BH deleted twice");
        return;
    }
    atomic_fetch_and(&bh->flags, ~ACTX__BH_SCHEDULED);
    bh_unlink_all(loop, bh);
    loop->st.live_bhs--;
    actx__ctx_resolve(bh->ctx)->npending--;
    actx__obj_put(loop, bh->ctx);
    if (!(old & ACTX__BH_ENQUEUED)) {
        free(bh);
    }
    /* Else whoever unlinks it (poll, drain, shutdown) frees it. */
}

/* Owner: a BH posted by another thread arrived. */
void actx__bh_arrived(actx__loop *loop, actx_bh *bh)
{
    if (atomic_load(&bh->flags) & ACTX__BH_DELETED) {
        free(bh);
        return;
    }
    bh_list_append(loop, actx__obj_ctx(&bh->ctx), bh);
}

int actx__bh_poll_ctx(actx__loop *loop, actx_ctx *c, bool *ran_idle)
{
    uint64_t limit = loop->bh_seq;
    int progress = 0;
    actx__msg *m;

    while ((m = c->bh_head) != NULL) {
        actx_bh *bh = ACTX__CONTAINER_OF(m, actx_bh, msg);
        unsigned old;

        if (bh->seq > limit) {
            break; /* scheduled during this call */
        }
        c->bh_head = m->next;
        if (!c->bh_head) {
            c->bh_tail = &c->bh_head;
        }
        /*
         * Unlink and unschedule in one step: a schedule from now on links
         * it again and runs it at a later poll.
         */
        old = atomic_fetch_and(&bh->flags,
                               ~(ACTX__BH_ENQUEUED | ACTX__BH_SCHEDULED));
        if (old & ACTX__BH_DELETED) {
            free(bh);
            continue;
        }
        if (!(old & ACTX__BH_SCHEDULED)) {
            continue; /* cancelled */
        }
        if (old & ACTX__BH_IDLE) {
            *ran_idle = true;
        } else {
            progress = 1;
        }
        loop->st.bh_runs++;
        bh->cb(bh->opaque); /* may delete bh: do not touch it after */
    }
    return progress;
}

int actx_bh_poll(void)
{
    actx__loop *loop = actx__loop_get();
    bool ran_idle = false;

    if (!loop) {
        return 0;
    }
    actx__drain_if_any(loop);
    return actx__bh_poll_ctx(loop, loop->cur, &ran_idle);
}

/* Owner: is a non-idle BH scheduled in c?  O(scheduled); used to decide
 * whether to sleep, never on the fast path. */
bool actx__bh_has_nonidle(actx_ctx *c)
{
    actx__msg *m;

    for (m = c->bh_head; m; m = m->next) {
        actx_bh *bh = ACTX__CONTAINER_OF(m, actx_bh, msg);
        unsigned f = atomic_load(&bh->flags);

        if ((f & ACTX__BH_SCHEDULED) && !(f & ACTX__BH_IDLE)) {
            return true;
        }
    }
    return false;
}

/* Shutdown: free what lists still link, then every live BH. */
void actx__bh_loop_shutdown(actx__loop *loop)
{
    actx_ctx *c = loop->root;
    actx__msg *m;

    while ((m = c->bh_head) != NULL) {
        actx_bh *bh = ACTX__CONTAINER_OF(m, actx_bh, msg);

        c->bh_head = m->next;
        if (atomic_fetch_and(&bh->flags, ~ACTX__BH_ENQUEUED) &
            ACTX__BH_DELETED) {
            free(bh);
        }
    }
    c->bh_tail = &c->bh_head;
    while (loop->bhs) {
        actx_bh *bh = loop->bhs;

        loop->bhs = bh->all_next;
        actx__ctx_resolve(bh->ctx)->npending--;
        actx__obj_put(loop, bh->ctx);
        loop->st.live_bhs--;
        free(bh);
    }
}
