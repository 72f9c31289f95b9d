/*
 * timer.c - timers: one intrusive pairing heap of armed timers per context.
 *
 * ctx->timers is the root of the context's heap of armed timers, or NULL
 * when it has none (poll.c tests that pointer on its fast path).  The heap
 * is intrusive: its links live in the timers themselves, so arming,
 * re-arming, disarming, firing and merging never allocate.  That is what
 * lets actx_timer_mod() and actx_pop() never fail: the only allocation is
 * the timer itself, at actx_timer_new().  Insertion and merge are O(1);
 * removing the earliest (firing) or any other timer is O(log n) amortized.
 *
 * Ownership and counting follow the other objects: a timer names the
 * context current at actx_timer_new (t->ctx holds one objs count) and is
 * resolved lazily with actx__obj_ctx.  An armed timer sits in the heap of
 * the context it resolves to and adds 1 to that context's npending.  At
 * pop the child's heap is melded into the parent's (O(1)); context.c moves
 * the npending counts, and the timers' ctx fields forward to the parent,
 * so both views agree.  A timer created in a child and armed after the pop
 * resolves to the parent when armed.
 *
 * Firing: only timers of the current context with deadline <= now, each
 * removed from the heap before its callback runs, so it fires at most once
 * per actx_timer_mod and the callback may mod, del or free it (or others).
 * A run fires at most as many timers as the loop had armed when it started:
 * a callback that keeps re-arming in the past cannot trap the loop in one
 * poll; the rest are due at the next one.
 *
 * Timers still alive at thread shutdown are freed with the loop (as BHs
 * are); using one afterwards is a use-after-free.  In debug builds a freed
 * timer is quarantined (actx__quarantine) with a dead mark, so that a
 * second actx_timer_free (or a mod/del after free) is reported instead of
 * reading freed memory.
 */
#include "actx-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define TIMER_LIVE 0x71e3u
#define TIMER_DEAD 0xdeadu

struct actx_timer {
    uint64_t expire;
    /*
     * Pairing-heap links: the leftmost child, the next sibling, and prev:
     * the parent for a leftmost child, else the previous sibling (NULL for
     * the root).
     */
    actx_timer *child, *next, *prev;
    bool armed;
    unsigned state; /* TIMER_LIVE, TIMER_DEAD once freed */
    actx_fn *cb;
    void *opaque;
    actx_ctx *ctx;                   /* holds one objs count */
    actx__loop *loop;                /* immutable */
    actx_timer *all_prev, *all_next; /* loop->timers_all */
};

uint64_t actx_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* The heap.                                                                 */

/* Meld two roots (either may be NULL); the earlier deadline stays on top. */
static actx_timer *meld(actx_timer *a, actx_timer *b)
{
    if (!a) {
        return b;
    }
    if (!b) {
        return a;
    }
    if (b->expire < a->expire) {
        actx_timer *tmp = a;

        a = b;
        b = tmp;
    }
    b->prev = a;
    b->next = a->child;
    if (a->child) {
        a->child->prev = b;
    }
    a->child = b;
    return a;
}

/* The standard two-pass pairing of a sibling list into one root. */
static actx_timer *merge_pairs(actx_timer *first)
{
    actx_timer *pairs = NULL, *root = NULL;

    /* Left to right: meld neighbours, stacking the results. */
    while (first) {
        actx_timer *a = first, *b = a->next, *m;

        if (b) {
            first = b->next;
            b->next = b->prev = NULL;
        } else {
            first = NULL;
        }
        a->next = a->prev = NULL;
        m = meld(a, b);
        m->next = pairs;
        pairs = m;
    }
    /* Right to left: meld each into the accumulated root. */
    while (pairs) {
        actx_timer *next = pairs->next;

        pairs->next = NULL;
        root = meld(root, pairs);
        pairs = next;
    }
    return root;
}

/* Remove t from the heap rooted at root; returns the new root. */
static actx_timer *heap_remove(actx_timer *root, actx_timer *t)
{
    actx_timer *sub;

    if (t != root) {
        /* Cut t (with its subtree) out of its sibling list. */
        if (t->prev->child == t) {
            t->prev->child = t->next;
        } else {
            t->prev->next = t->next;
        }
        if (t->next) {
            t->next->prev = t->prev;
        }
    } else {
        root = NULL;
    }
    sub = merge_pairs(t->child);
    t->child = t->next = t->prev = NULL;
    return meld(root, sub);
}

/* Disarm an armed t whose context is c. */
static void disarm(actx__loop *loop, actx_ctx *c, actx_timer *t)
{
    actx__assert(t->armed && c->timers != NULL);
    c->timers = heap_remove(c->timers, t);
    t->armed = false;
    c->npending--;
    loop->ntimers--;
}

/* A timer handed to mod/del/free: not one already freed (debug builds). */
static inline bool timer_ok(actx_timer *t, const char *func)
{
    if (ACTX__UNLIKELY(t->state != TIMER_LIVE)) {
        actx__misuse(func, "timer already freed");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Public API.                                                               */

actx_timer *actx_timer_new(actx_fn *cb, void *opaque)
{
    actx__loop *loop;
    actx_timer *t;

    if (!cb) {
        errno = EINVAL;
        return NULL;
    }
    loop = actx__loop_get();
    if (!loop) {
        return NULL;
    }
    t = malloc(sizeof(*t));
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    t->expire = 0;
    t->child = t->next = t->prev = NULL;
    t->armed = false;
    t->state = TIMER_LIVE;
    t->cb = cb;
    t->opaque = opaque;
    t->ctx = loop->cur;
    t->loop = loop;
    t->all_prev = NULL;
    t->all_next = loop->timers_all;
    if (loop->timers_all) {
        loop->timers_all->all_prev = t;
    }
    loop->timers_all = t;
    loop->cur->objs++;
    return t;
}

void actx_timer_mod(actx_timer *t, uint64_t expire_ns)
{
    actx__loop *loop;
    actx_ctx *c;

    if (ACTX__UNLIKELY(!t) || !timer_ok(t, __func__)) {
        return;
    }
    loop = t->loop;
    ACTX__CHECK_OWNER(loop, );
    c = actx__obj_ctx(&t->ctx);
    if (t->armed) {
        c->timers = heap_remove(c->timers, t);
    } else {
        t->armed = true;
        c->npending++;
        loop->ntimers++;
    }
    t->expire = expire_ns;
    c->timers = meld(c->timers, t);
}

void actx_timer_del(actx_timer *t)
{
    if (ACTX__UNLIKELY(!t) || !timer_ok(t, __func__)) {
        return;
    }
    ACTX__CHECK_OWNER(t->loop, );
    if (t->armed) {
        disarm(t->loop, actx__obj_ctx(&t->ctx), t);
    }
}

void actx_timer_free(actx_timer *t)
{
    actx__loop *loop;

    if (ACTX__UNLIKELY(!t) || !timer_ok(t, __func__)) {
        return;
    }
    loop = t->loop;
    ACTX__CHECK_OWNER(loop, );
    if (t->armed) {
        disarm(loop, actx__obj_ctx(&t->ctx), t);
    }
    if (t->all_prev) {
        t->all_prev->all_next = t->all_next;
    } else {
        loop->timers_all = t->all_next;
    }
    if (t->all_next) {
        t->all_next->all_prev = t->all_prev;
    }
    actx__obj_put(loop, t->ctx);
    t->state = TIMER_DEAD;
    actx__quarantine(loop, t);
}

/* ------------------------------------------------------------------------ */
/* Loop hooks.                                                               */

int actx__timers_run(actx__loop *loop, actx_ctx *c)
{
    uint64_t now = actx_now_ns();
    long budget = loop->ntimers;
    actx_timer *t;
    int ran = 0;

    /* c->timers is re-read each round: a callback may empty or meld it. */
    while (budget-- > 0 && (t = c->timers) != NULL && t->expire <= now) {
        disarm(loop, c, t);
        loop->st.timers_fired++;
        ran = 1;
        t->cb(t->opaque); /* t may be gone from here on */
    }
    return ran;
}

int64_t actx__timers_next_ns(actx__loop *loop, actx_ctx *c)
{
    actx_timer *t = c->timers;
    uint64_t now;

    (void)loop;
    if (!t) {
        return -1;
    }
    now = actx_now_ns();
    if (t->expire <= now) {
        return 0;
    }
    return t->expire - now > (uint64_t)INT64_MAX ? INT64_MAX
                                                 : (int64_t)(t->expire - now);
}

/* Pop cannot fail and must not lose a timer: a meld never allocates. */
void actx__timers_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent)
{
    (void)loop;
    parent->timers = meld(parent->timers, child->timers);
    child->timers = NULL;
}

void actx__timers_loop_shutdown(actx__loop *loop)
{
    while (loop->timers_all) {
        actx_timer_free(loop->timers_all);
    }
}
