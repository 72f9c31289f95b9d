/*
 * timer.c - timers: one binary min-heap of armed timers per context.
 *
 * ctx->timers is the heap of the context's armed timers, or NULL when it
 * has none (poll.c tests that pointer on its fast path).  Heap entries hold
 * the deadline beside the timer pointer, so sifting compares without
 * touching timer objects; each timer records its index (-1: not armed).
 * Arm, re-arm, disarm and fire are O(log n).
 *
 * Ownership and counting follow the other objects: a timer names the
 * context current at actx_timer_new (t->ctx holds one objs count) and is
 * resolved lazily with actx__obj_ctx.  An armed timer sits in the heap of
 * the context it resolves to and adds 1 to that context's npending.  At
 * pop the child's heap is merged into the parent's (the smaller into the
 * larger); context.c moves the npending counts, and the timers' ctx fields
 * forward to the parent, so both views agree.  A timer created in a child
 * and armed after the pop resolves to the parent when armed.
 *
 * Firing: only timers of the current context with deadline <= now, each
 * removed from the heap before its callback runs, so it fires at most once
 * per actx_timer_mod and the callback may mod, del or free it (or others).
 * A run fires at most as many timers as the heap held when it started: a
 * callback that keeps re-arming in the past cannot trap the loop in one
 * poll; the rest are due at the next one.
 *
 * Timers still alive at thread shutdown are freed with the loop (as BHs
 * are); using one afterwards is a use-after-free.
 */
#include "actx-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

struct actx_timer {
    uint64_t expire;
    long idx; /* in the heap of its context; -1: not armed */
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

static inline void heap_set(theap *h, long i, theap_ent e)
{
    h->v[i] = e;
    e.t->idx = i;
}

static void sift_up(theap *h, long i, theap_ent e)
{
    while (i > 0) {
        long p = (i - 1) / 2;

        if (h->v[p].expire <= e.expire) {
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
        m = (l + 1 < n && h->v[l + 1].expire < h->v[l].expire) ? l + 1 : l;
        if (e.expire <= h->v[m].expire) {
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
    if (i > 0 && e.expire < h->v[(i - 1) / 2].expire) {
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

static int heap_insert(theap *h, actx_timer *t)
{
    theap_ent e = {t->expire, t};

    if (ACTX__UNLIKELY(heap_reserve(h, h->n + 1) < 0)) {
        return -ENOMEM;
    }
    sift_up(h, h->n++, e);
    return 0;
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

/* The heap of c, created (or taken from the loop's spare) if needed. */
static theap *ctx_heap(actx__loop *loop, actx_ctx *c)
{
    theap *h = c->timers;

    if (ACTX__LIKELY(h != NULL)) {
        return h;
    }
    h = loop->theap_spare;
    if (h) {
        loop->theap_spare = NULL;
    } else {
        h = calloc(1, sizeof(*h));
        if (!h) {
            return NULL;
        }
    }
    c->timers = h;
    return h;
}

/* c's heap became empty: c->timers must be NULL again (poll.c). */
static void ctx_heap_release(actx__loop *loop, actx_ctx *c)
{
    theap *h = c->timers, *spare = loop->theap_spare;

    c->timers = NULL;
    /* Keep the roomier of the two for the next context that arms one. */
    if (!spare || spare->cap < h->cap) {
        loop->theap_spare = h;
        h = spare;
    }
    heap_free(h);
}

/* Disarm an armed t whose context is c. */
static void disarm(actx__loop *loop, actx_ctx *c, actx_timer *t)
{
    theap *h = c->timers;

    actx__assert(h && t->idx < h->n && h->v[t->idx].t == t);
    heap_remove(h, t->idx);
    c->npending--;
    loop->ntimers--;
    if (h->n == 0) {
        ctx_heap_release(loop, c);
    }
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
    t->idx = -1;
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

    if (ACTX__UNLIKELY(!t)) {
        return;
    }
    loop = t->loop;
    ACTX__CHECK_OWNER(loop, );
    c = actx__obj_ctx(&t->ctx);
    if (t->idx >= 0) {
        theap_ent e = {expire_ns, t};

        h = c->timers;
        actx__assert(h && h->v[t->idx].t == t);
        t->expire = expire_ns;
        heap_fix(h, t->idx, e);
        return;
    }
    h = ctx_heap(loop, c);
    t->expire = expire_ns;
    if (ACTX__UNLIKELY(!h || heap_insert(h, t) < 0)) {
        /* void API: nothing to return; say so loudly, never fire early. */
        actx__misuse(__func__, "out of memory: timer not armed");
        if (h && h->n == 0) {
            ctx_heap_release(loop, c);
        }
        return;
    }
    c->npending++;
    loop->ntimers++;
}

void actx_timer_del(actx_timer *t)
{
    if (ACTX__UNLIKELY(!t)) {
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

    if (ACTX__UNLIKELY(!t)) {
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
    free(t);
}

/* ------------------------------------------------------------------------ */
/* Loop hooks.                                                               */

int actx__timers_run(actx__loop *loop, actx_ctx *c)
{
    theap *h = c->timers;
    uint64_t now = actx_now_ns();
    long budget = h->n;
    int ran = 0;

    /* c->timers is re-read each round: a callback may empty or merge it. */
    while (budget-- > 0 && (h = c->timers) != NULL && h->v[0].expire <= now) {
        actx_timer *t = h->v[0].t;

        disarm(loop, c, t);
        loop->st.timers_fired++;
        ran = 1;
        t->cb(t->opaque); /* t may be gone from here on */
    }
    return ran;
}

int64_t actx__timers_next_ns(actx__loop *loop, actx_ctx *c)
{
    theap *h = c->timers;
    uint64_t now;

    (void)loop;
    if (!h) {
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

void actx__timers_pop(actx__loop *loop, actx_ctx *child, actx_ctx *parent)
{
    theap *from = child->timers, *into = parent->timers;
    long i;

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
    if (heap_reserve(into, into->n + from->n) < 0) {
        /* Pop cannot fail and must not lose a timer. */
        actx__misuse(__func__, "out of memory merging timer heaps");
        abort();
    }
    for (i = 0; i < from->n; i++) {
        heap_insert(into, from->v[i].t); /* room reserved: cannot fail */
    }
    from->n = 0;
    if (!loop->theap_spare) {
        loop->theap_spare = from;
    } else {
        heap_free(from);
    }
}

void actx__timers_loop_shutdown(actx__loop *loop)
{
    while (loop->timers_all) {
        actx_timer_free(loop->timers_all);
    }
    heap_free(loop->theap_spare);
    loop->theap_spare = NULL;
}
