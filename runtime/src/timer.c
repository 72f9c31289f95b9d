/*
 * timer.c - timers: one binary min-heap of armed timers per context.
 *
 * ctx->timers is the heap of the context, or NULL when no timer resolves
 * to it (poll.c tests that pointer on its fast path).  Heap entries hold
 * the deadline beside the timer pointer, so sifting compares without
 * touching timer objects but for equal deadlines, which fall back on the
 * timers' arm numbers: equal deadlines fire in the order of their
 * actx_timer_mod calls, as QEMU's timer lists and libuv's timers order
 * them (a heap alone would fire them in no useful order).  Arm numbers
 * count per loop, so the order holds across the merge at pop too.  Each
 * timer records its index (-1: not armed).  Arm, re-arm, disarm and fire
 * are O(log n).
 *
 * Arming and popping never allocate, so actx_timer_mod() and actx_pop()
 * never fail: a timer's slot is reserved at actx_timer_new().  Invariant:
 * every heap has room for every live timer of the loop (cap >= live).
 * actx_timer_new() grows the heaps of the stack (the only contexts that
 * have heaps) before the count grows, and gives the current context a heap
 * if it has none; a heap then belongs to its context until the pop that
 * hands it to the parent (moved whole when the parent has none, else
 * merged into the parent's, which has room for both).  Memory: one array
 * of live-timer size per stack context that owns timers (usually only
 * the root).
 *
 * Ownership and counting follow the other objects: a timer names the
 * context current at actx_timer_new (t->ctx holds one objs count) and is
 * resolved lazily with actx__obj_ctx.  An armed timer sits in the heap of
 * the context it resolves to and adds 1 to that context's npending.  At
 * pop the child's heap goes to the parent (the smaller merged into the
 * larger); context.c moves the npending counts, and the timers' ctx fields
 * forward to the parent, so both views agree.
 *
 * Firing: only timers of the current context with deadline <= now, each
 * removed from the heap before its callback runs, so it fires at most once
 * per actx_timer_mod and the callback may mod, del or free it (or others).
 * A run fires at most as many timers as the heap held when it started: a
 * callback that keeps re-arming in the past cannot trap the loop in one
 * poll; the rest are due at the next one.  A run also ends when a callback
 * leaves another context current (actx__pass_ends): the due timers not
 * fired stay armed in their context and fire when it is current again.
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
    uint64_t arm;   /* loop->timer_arms at its latest actx_timer_mod */
    long idx;       /* in the heap of its context; -1: not armed */
    unsigned state; /* TIMER_LIVE, TIMER_DEAD once freed */
    actx_fn *cb;
    void *opaque;
    actx_ctx *ctx;                   /* holds one objs count */
    actx__loop *loop;                /* immutable */
    actx_timer *all_prev, *all_next; /* loop->timers_all */
};

typedef struct theap_ent {
    uint64_t expire;
    actx_timer *t;
} theap_ent;

typedef struct theap {
    long n, cap;
    theap_ent *v;
} theap;

uint64_t actx_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* The heap.                                                                 */

/* a fires before b: earlier deadline, or the same one armed earlier. */
static inline bool before(theap_ent a, theap_ent b)
{
    return a.expire < b.expire || (a.expire == b.expire && a.t->arm < b.t->arm);
}

static inline void heap_set(theap *h, long i, theap_ent e)
{
    h->v[i] = e;
    e.t->idx = i;
}

static void sift_up(theap *h, long i, theap_ent e)
{
    while (i > 0) {
        long p = (i - 1) / 2;

        if (!before(e, h->v[p])) {
            break;
        }
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, e);
}

static void sift_down(theap *h, long i, theap_ent e)
{
    long n = h->n;

    for (;;) {
        long l = 2 * i + 1, m;

        if (l >= n) {
            break;
        }
        m = (l + 1 < n && before(h->v[l + 1], h->v[l])) ? l + 1 : l;
        if (!before(h->v[m], e)) {
            break;
        }
        heap_set(h, i, h->v[m]);
        i = m;
    }
    heap_set(h, i, e);
}

/* Put e at index i (a hole) and restore the heap property. */
static void heap_fix(theap *h, long i, theap_ent e)
{
    if (i > 0 && before(e, h->v[(i - 1) / 2])) {
        sift_up(h, i, e);
    } else {
        sift_down(h, i, e);
    }
}

static int heap_reserve(theap *h, long n)
{
    theap_ent *v;
    long cap;

    if (ACTX__LIKELY(n <= h->cap)) {
        return 0;
    }
    cap = h->cap ? h->cap : 16;
    while (cap < n) {
        cap *= 2;
    }
    v = realloc(h->v, (size_t)cap * sizeof(*v));
    if (!v) {
        return -ENOMEM;
    }
    h->v = v;
    h->cap = cap;
    return 0;
}

/* Room is reserved (see the top comment): cannot fail. */
static void heap_insert(theap *h, actx_timer *t)
{
    theap_ent e = {t->expire, t};

    actx__assert(h->n < h->cap);
    sift_up(h, h->n++, e);
}

static void heap_remove(theap *h, long i)
{
    theap_ent last = h->v[--h->n];

    h->v[i].t->idx = -1;
    if (i < h->n) {
        heap_fix(h, i, last);
    }
}

static void heap_free(theap *h)
{
    if (h) {
        free(h->v);
        free(h);
    }
}

/*
 * A timer is about to be created in the current context: make room for
 * live + 1 timers in every heap of the stack, and give the current
 * context a heap if it has none.  Nothing changes on failure but room.
 */
static int reserve_slot(actx__loop *loop)
{
    long need = loop->timers_live + 1;
    actx_ctx *c;

    if (!loop->cur->timers) {
        theap *h = calloc(1, sizeof(*h));

        if (!h) {
            return -ENOMEM;
        }
        loop->cur->timers = h;
    }
    for (c = loop->cur; c; c = c->parent) {
        if (c->timers && heap_reserve(c->timers, need) < 0) {
            return -ENOMEM;
        }
    }
    loop->timers_live = need;
    return 0;
}

/* Disarm an armed t whose context is c. */
static void disarm(actx__loop *loop, actx_ctx *c, actx_timer *t)
{
    theap *h = c->timers;

    actx__assert(h && t->idx < h->n && h->v[t->idx].t == t);
    heap_remove(h, t->idx);
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
    if (!t || reserve_slot(loop) < 0) {
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    t->expire = 0;
    t->arm = 0;
    t->idx = -1;
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
    theap *h;

    if (ACTX__UNLIKELY(!t) || !timer_ok(t, __func__)) {
        return;
    }
    loop = t->loop;
    ACTX__CHECK_OWNER(loop, );
    c = actx__obj_ctx(&t->ctx);
    h = c->timers; /* the timer's context owns a heap with room for it */
    t->expire = expire_ns;
    t->arm = ++loop->timer_arms; /* behind the timers armed for that time */
    if (t->idx >= 0) {
        theap_ent e = {expire_ns, t};

        actx__assert(h && h->v[t->idx].t == t);
        heap_fix(h, t->idx, e);
        return;
    }
    heap_insert(h, t);
    c->npending++;
    loop->ntimers++;
}

void actx_timer_del(actx_timer *t)
{
    if (ACTX__UNLIKELY(!t) || !timer_ok(t, __func__)) {
        return;
    }
    ACTX__CHECK_OWNER(t->loop, );
    if (t->idx >= 0) {
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
    if (t->idx >= 0) {
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
    loop->timers_live--;
    t->state = TIMER_DEAD;
    actx__quarantine(loop, t);
}

/* ------------------------------------------------------------------------ */
/* Loop hooks.                                                               */

int actx__timers_run(actx__loop *loop, actx_ctx *c)
{
    theap *h = c->timers;
    long budget = h->n;
    uint64_t now;
    int ran = 0;

    if (budget == 0) {
        return 0; /* timers but none armed */
    }
    now = actx_now_ns();
    /* c->timers is re-read each round: a callback may empty or merge it. */
    while (budget-- > 0 && (h = c->timers) != NULL && h->n > 0 &&
           h->v[0].expire <= now) {
        actx_timer *t = h->v[0].t;

        disarm(loop, c, t);
        loop->st.timers_fired++;
        ran = 1;
        t->cb(t->opaque); /* t may be gone from here on */
        if (actx__pass_ends(loop, c)) {
            break; /* the other due timers stay armed in c */
        }
    }
    return ran;
}

int64_t actx__timers_next_ns(actx__loop *loop, actx_ctx *c)
{
    theap *h = c->timers;
    uint64_t now;

    (void)loop;
    if (!h || h->n == 0) {
        return -1;
    }
    now = actx_now_ns();
    if (h->v[0].expire <= now) {
        return 0;
    }
    return h->v[0].expire - now > (uint64_t)INT64_MAX
               ? INT64_MAX
               : (int64_t)(h->v[0].expire - now);
}

/* Pop cannot fail and must not lose a timer: room is reserved. */
void actx__timers_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent)
{
    theap *from = child->timers, *into = parent->timers;
    long i;

    (void)loop;
    child->timers = NULL;
    if (!into) {
        parent->timers = from; /* O(1): the common case */
        return;
    }
    /* Insert the smaller heap into the larger: O(m log(n + m)). */
    if (from->n > into->n) {
        theap *tmp = from;

        from = into;
        into = tmp;
        parent->timers = into;
    }
    actx__assert(into->cap >= into->n + from->n);
    for (i = 0; i < from->n; i++) {
        heap_insert(into, from->v[i].t);
    }
    heap_free(from);
}

void actx__timers_loop_shutdown(actx__loop *loop)
{
    while (loop->timers_all) {
        actx_timer_free(loop->timers_all);
    }
    heap_free(loop->root->timers);
    loop->root->timers = NULL;
}
