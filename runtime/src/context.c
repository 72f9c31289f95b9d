/*
 * context.c - the per-thread context stack, re-homing at pop, and context
 * handles (actx_ctx_current/ref/unref/call, actx_stop).
 *
 * Invariants:
 *   - loop->cur is the top of the stack; ctx->parent links down to the root.
 *   - A context on the stack has fwd == NULL.  A popped context forwards to
 *     the parent it had; actx__ctx_resolve follows fwd to the live context
 *     that now owns its things.
 *   - Pop is O(1): queues and BH lists are spliced, counters added; objects
 *     keep naming the popped context until the owner next touches them.
 *   - Contexts are recycled through a per-loop free list (no malloc in
 *     steady state).  Only the owner thread recycles; a context whose last
 *     reference is dropped elsewhere (only possible after its loop shut
 *     down) is freed with free().
 */
#include "actx-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static actx_ctx *ctx_alloc(actx__loop *loop)
{
    actx_ctx *c = loop->ctx_free;

    if (c) {
        loop->ctx_free = c->parent;
    } else {
        c = aligned_alloc(ACTX__CACHELINE, sizeof(*c));
        if (!c) {
            return NULL;
        }
        memset(c, 0, sizeof(*c));
        c->loop = loop;
        c->loop_id = loop->id;
        c->mb = loop->mb;
        actx__mb_charge(loop);
    }
    c->fwd = NULL;
    c->popped = c->hheld = c->stop = c->zombie = false;
    c->objs = c->npending = c->nreq = 0;
    c->q_head = NULL;
    c->q_tail = &c->q_head;
    c->q_len = 0;
    c->bh_head = NULL;
    c->bh_tail = &c->bh_head;
    c->bh_len = 0;
    actx__assert(c->timers == NULL && c->fdset == NULL);
    /* Relaxed: nobody else can see a context before it is pushed. */
    atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
    atomic_store_explicit(&c->handles, 0, memory_order_relaxed);
    atomic_store_explicit(&c->release_posted, 0, memory_order_relaxed);
    return c;
}

/*
 * A context freed off its owner's loop (its last handle dropped after the
 * owner shut down).  Debug builds keep the last few allocated, with no
 * handle, so that one unref too many is reported (actx_ctx_unref) instead
 * of reading freed memory.
 */
#ifdef ACTX_DEBUG
#define CTX_QUARANTINE 64
static pthread_mutex_t ctx_quarantine_lock = PTHREAD_MUTEX_INITIALIZER;
static actx_ctx *ctx_quarantined[CTX_QUARANTINE];
static unsigned ctx_quarantine_n;

static void ctx_quarantine(actx_ctx *c)
{
    actx_ctx *old;
    unsigned i;

    /* Still reachable from here, so leak checkers do not count them. */
    pthread_mutex_lock(&ctx_quarantine_lock);
    i = ctx_quarantine_n++ % CTX_QUARANTINE;
    old = ctx_quarantined[i];
    ctx_quarantined[i] = c;
    pthread_mutex_unlock(&ctx_quarantine_lock);
    free(old);
}

void actx__ctx_atfork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&ctx_quarantine_lock);
    } else if (phase == 1) {
        pthread_mutex_unlock(&ctx_quarantine_lock);
    } else {
        pthread_mutex_unlock(&ctx_quarantine_lock); /* held since prepare */
    }
}
#else
static void ctx_quarantine(actx_ctx *c)
{
    free(c);
}

void actx__ctx_atfork(int phase)
{
    (void)phase; /* no lock without the debug quarantine */
}
#endif

/* Free a context whose last reference is gone; returns its fwd target. */
static actx_ctx *ctx_free(actx_ctx *c)
{
    actx_ctx *next = c->fwd;
    actx__loop *loop = actx__tls_loop;

    if (actx__ctx_is_local(loop, c)) {
        c->parent = loop->ctx_free;
        loop->ctx_free = c;
    } else {
        actx__mailbox *mb = c->mb;

        ctx_quarantine(c);
        actx__mb_unref(mb, 1);
    }
    return next;
}

/* Drop one reference; frees along the forwarding chain as counts hit 0. */
void actx__ctx_unref_ref(actx_ctx *c)
{
    while (c) {
        /* acq_rel: the freeing thread sees every holder's last use. */
        if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) {
            return;
        }
        c = ctx_free(c);
    }
}

static void zombie_unlink(actx__loop *loop, actx_ctx *c)
{
    if (c->zprev) {
        c->zprev->znext = c->znext;
    } else {
        loop->zombies = c->znext;
    }
    if (c->znext) {
        c->znext->zprev = c->zprev;
    }
    c->zombie = false;
}

/* The loop no longer needs a popped context: drop its reference. */
static void ctx_loop_put(actx__loop *loop, actx_ctx *c)
{
    if (c->zombie) {
        zombie_unlink(loop, c);
    }
    actx__ctx_unref_ref(c);
}

/* Slow path of actx__obj_ctx: the object names a popped context. */
actx_ctx *actx__obj_ctx_moved(actx_ctx **slot)
{
    actx_ctx *c = *slot, *live = actx__ctx_resolve(c);

    live->objs++;
    *slot = live;
    actx__obj_put(c->loop, c);
    return live;
}

/* Slow path of actx__obj_put: the last object of a popped context. */
void actx__obj_put_last(actx__loop *loop, actx_ctx *c)
{
    if (c->popped && !c->hheld) {
        ctx_loop_put(loop, c);
    }
}

void actx__queue_append(actx_ctx *c, actx__msg *m)
{
    m->next = NULL;
    *c->q_tail = m;
    c->q_tail = &m->next;
    c->q_len++;
}

actx_ctx *actx__ctx_new_root(actx__loop *loop)
{
    actx_ctx *c = ctx_alloc(loop);

    if (c) {
        c->parent = NULL;
        c->depth = 0;
        c->deadline = UINT64_MAX;
        loop->cur = c;
    }
    return c;
}

int actx_push(void)
{
    actx__loop *loop = actx__loop_get();
    actx_ctx *c;

    if (ACTX__UNLIKELY(!loop)) {
        return -errno;
    }
    c = ctx_alloc(loop);
    if (ACTX__UNLIKELY(!c)) {
        return -ENOMEM;
    }
    c->parent = loop->cur;
    c->depth = loop->cur->depth + 1;
    c->deadline = loop->cur->deadline; /* inherited: one load, one store */
    loop->cur = c;
    return c->depth;
}

/*
 * The effective deadline is computed once here, so that nothing on the
 * wait paths walks the stack, and actx_push() pays only for the copy.
 */
int actx_push_deadline(uint64_t deadline_ns)
{
    int r = actx_push();

    if (r > 0 && deadline_ns < actx__tls_loop->cur->deadline) {
        actx__tls_loop->cur->deadline = deadline_ns;
    }
    return r;
}

uint64_t actx_deadline(void)
{
    actx__loop *loop = actx__tls_loop;

    /* A thread without a loop is at its root, which has none. */
    return loop ? loop->cur->deadline : UINT64_MAX;
}

static void pop_rehome(actx__loop *loop, actx_ctx *c);

int actx_pop(void)
{
    actx__loop *loop = actx__loop_get();
    actx_ctx *c;
    bool ran_idle;
    int i;

    if (ACTX__UNLIKELY(!loop)) {
        return -errno;
    }
    c = loop->cur;
    if (ACTX__UNLIKELY(!c->parent)) {
        actx__misuse(__func__, "pop at the root");
        return -EINVAL;
    }

    /* 1-2: flush, bounded against BHs that reschedule themselves. */
    if (c->bh_head) {
        bool outer = actx__enter(loop);
        for (i = 0; i < ACTX__POP_FLUSH_ROUNDS; i++) {
            if (!c->bh_head || !actx__bh_poll_ctx(loop, c, &ran_idle) ||
                actx__pass_ends(loop, c)) {
                break; /* done, or a BH changed the stack: -EBUSY below */
            }
        }
        actx__leave(loop, outer);
        if (ACTX__UNLIKELY(actx__tls_loop != loop)) {
            return 0; /* a BH shut the runtime down: everything is popped */
        }
    }
    if (ACTX__UNLIKELY(loop->cur != c)) {
        actx__misuse(__func__, "a BH left the context stack changed");
        return -EBUSY;
    }
    pop_rehome(loop, c);
    return 0;
}

/*
 * Shutdown only (thread.c): pop the current context without its flush.
 * Its scheduled BHs move to the parent still scheduled, as the rest of
 * it does.  For a BH that changes the stack at every flush, so that
 * actx_pop never succeeds.
 */
void actx__pop_noflush(actx__loop *loop)
{
    actx__assert(loop->cur->parent);
    pop_rehome(loop, loop->cur);
}

/* Steps 3-4 of actx_pop: c, the current context, goes. */
static void pop_rehome(actx__loop *loop, actx_ctx *c)
{
    actx_ctx *p;

    /* 3: re-home to the parent.  Lists are spliced, so order is kept. */
    p = c->parent;
    if (c->bh_head) {
        *p->bh_tail = c->bh_head;
        c->bh_head->list_pprev = p->bh_tail;
        p->bh_tail = c->bh_tail;
        p->bh_len += c->bh_len;
        c->bh_head = NULL;
        c->bh_tail = &c->bh_head;
        c->bh_len = 0;
    }
    if (c->q_head) {
        *p->q_tail = c->q_head;
        p->q_tail = c->q_tail;
        p->q_len += c->q_len;
        c->q_head = NULL;
        c->q_tail = &c->q_head;
        c->q_len = 0;
    }
    p->npending += c->npending;
    p->nreq += c->nreq;
    c->npending = c->nreq = 0;
    /*
     * The counts are the parent's now, so forward before the hooks: an
     * object they free (an fd handler found closed when it moves) resolves
     * to the parent and uncounts itself there, not in c (which would leave
     * the parent counted for ever: see actx__fd_pop).
     */
    c->fwd = p;
    if (ACTX__UNLIKELY(c->timers != NULL)) {
        actx__timers_pop(loop, c, p);
    }
    if (ACTX__UNLIKELY(c->fdset != NULL)) {
        actx__fd_pop(loop, c, p); /* only the child's own fd handlers */
    }

    /* 4: the parent is current; its queue runs at its next poll. */
    loop->cur = p;
    c->popped = true;
    if (ACTX__LIKELY(c->objs == 0 && !c->hheld)) {
        /*
         * Acquire pairs with the release of the last foreign unref: if we
         * are the only holder, nobody else can take a reference any more.
         */
        if (ACTX__LIKELY(atomic_load_explicit(&c->refs, memory_order_acquire) ==
                         1)) {
            c->fwd = NULL;
            c->parent = loop->ctx_free;
            loop->ctx_free = c;
            return;
        }
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
        actx__ctx_unref_ref(c);
        return;
    }
    /* Still named by objects or handles: keep it, forwarding to p. */
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    c->zombie = true;
    c->zprev = NULL;
    c->znext = loop->zombies;
    if (loop->zombies) {
        loop->zombies->zprev = c;
    }
    loop->zombies = c;
}

int actx_context_id(void)
{
    actx__loop *loop = actx__tls_loop;

    /* A thread without a loop is at its root; creating one could fail. */
    return loop ? loop->cur->depth : 0;
}

/* ------------------------------------------------------------------------ */
/* Handles.                                                                  */

actx_ctx *actx_ctx_current(void)
{
    actx__loop *loop = actx__loop_get();
    actx_ctx *c;

    if (!loop) {
        return NULL;
    }
    c = loop->cur;
    /* Relaxed: taking a reference needs no ordering (we hold one). */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->handles, 1, memory_order_relaxed);
    if (!c->hheld) {
        c->hheld = true;
        c->npending++;
    }
    return c;
}

actx_ctx *actx_ctx_ref(actx_ctx *c)
{
    if (c) {
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->handles, 1, memory_order_relaxed);
    }
    return c;
}

int actx_ctx_id(actx_ctx *c)
{
    return c ? c->depth : -EINVAL;
}

/*
 * Owner: the last handle of c was dropped (RELEASE message, or directly on
 * the owner thread).  Consumes the reference the release carried.
 */
void actx__ctx_release_msg(actx__loop *loop, actx_ctx *c)
{
    /*
     * seq_cst pair: the unref does handles-- then exchange(release_posted);
     * we clear release_posted then load handles.  Either we see the new
     * handle count, or the next unref to zero sees release_posted clear and
     * posts again.
     */
    atomic_store(&c->release_posted, 0);
    if (c->hheld && atomic_load(&c->handles) == 0) {
        c->hheld = false;
        actx__ctx_resolve(c)->npending--;
        if (c->popped && c->objs == 0) {
            ctx_loop_put(loop, c);
        }
    }
    actx__ctx_unref_ref(c);
}

/* One unref more than refs: undo it, report it; debug builds stop here. */
static void ctx_over_unref(actx_ctx *c)
{
    atomic_fetch_add(&c->handles, 1);
    actx__misuse("actx_ctx_unref",
                 "context handle released more often than it was taken");
#ifdef ACTX_DEBUG
    abort();
#endif
}

void actx_ctx_unref(actx_ctx *c)
{
    actx__loop *loop;
    long old;

    if (!c) {
        return;
    }
    /* seq_cst: see actx__ctx_release_msg. */
    old = atomic_fetch_sub(&c->handles, 1);
    if (ACTX__UNLIKELY(old <= 0)) {
        ctx_over_unref(c);
        return;
    }
    if (old == 1 && !atomic_exchange(&c->release_posted, 1)) {
        /* Our reference travels with the release. */
        loop = actx__tls_loop;
        if (actx__ctx_is_local(loop, c) && !loop->closed) {
            actx__drain_if_any(loop);
            actx__ctx_release_msg(loop, c);
            return;
        }
        c->release_msg.type = ACTX__MSG_RELEASE;
        if (actx__mb_post(c->mb, &c->release_msg, ACTX__WAKE_ANY, c->depth) ==
            0) {
            return;
        }
    }
    actx__ctx_unref_ref(c);
}

static int post_call(actx_ctx *c, uint16_t type, actx_fn *fn, void *opaque)
{
    actx__loop *loop;
    actx__call *call;

    if (!c || (type == ACTX__MSG_CALL && !fn)) {
        return -EINVAL;
    }
    call = malloc(sizeof(*call));
    if (!call) {
        return -ENOMEM;
    }
    call->msg.type = type;
    call->fn = fn;
    call->opaque = opaque;
    call->ctx = c;
    /* The message's reference; relaxed since the caller holds one. */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);

    loop = actx__tls_loop;
    if (actx__ctx_is_local(loop, c)) {
        /* Owner thread: queue it behind what already arrived, never run. */
        if (!loop->closed) {
            actx__drain_if_any(loop);
            actx__dispatch(loop, &call->msg);
            actx__local_post(loop);
            return 0;
        }
    } else if (actx__mb_post(c->mb, &call->msg, ACTX__WAKE_ANY, c->depth) ==
               0) {
        return 0;
    }
    actx__mb_refused(c->mb);
    free(call);
    actx__ctx_unref_ref(c);
    return -EPIPE;
}

int actx_ctx_call(actx_ctx *c, actx_fn *fn, void *opaque)
{
    return post_call(c, ACTX__MSG_CALL, fn, opaque);
}

int actx_stop(actx_ctx *c)
{
    return post_call(c, ACTX__MSG_STOP, NULL, NULL);
}

/*
 * Shutdown, after everything was popped and run: drop the loop's references
 * on the root and the zombies (contexts that handles still name live on
 * until their last unref; loop ids are never reused, so no later loop takes
 * them for its own) and free the recycled ones.
 */
void actx__ctx_loop_shutdown(actx__loop *loop)
{
    actx_ctx *c;

    while ((c = loop->zombies) != NULL) {
        zombie_unlink(loop, c);
        actx__ctx_unref_ref(c);
    }
    actx__ctx_unref_ref(loop->root);
    while ((c = loop->ctx_free) != NULL) {
        loop->ctx_free = c->parent;
        free(c);
        loop->mb_budget++;
    }
}
