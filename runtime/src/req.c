/*
 * req.c - requests and the per-context completion queues.
 *
 * A request is one cache line from a per-thread slab allocator.  It is created
 * on the owner thread in the current context, completed once from any
 * thread (one store of ret and one mailbox post), queued by the owner in the
 * live context it resolves to, and its done callback runs when that context
 * runs its queue.  No list of outstanding requests exists: per-context
 * counters (nreq, npending, objs) and forwarding re-home them at pop in
 * O(1).
 *
 * Each request holds a reference on its owner's mailbox, charged in bulk
 * (actx__mb_charge) so that creating one needs no atomic operation.  A
 * completion refused because the owner shut down frees the request on the
 * completing thread and drops that reference there.
 */
#include "actx-internal.h"

#include <errno.h>
#include <stdlib.h>

/*
 * Requests come from page-sized slabs, carved in address order: a batch of
 * completions then walks memory the way the hardware prefetcher expects.
 * The first line of a slab is its header.  Slabs live until their loop shuts
 * down; a slab that still has requests in flight then is freed by whichever
 * thread drops its last one (the owner, or a completer refused with -EPIPE).
 */
#define SLAB_SIZE 4096
/*
 * req->msg.flags: 0 while an actx_req_new request is outstanding,
 * ACTX__REQ_POOL for pool work, ACTX__REQ_COMPLETED once completed (by
 * hand, by the pool or by a cancel), until the memory is handed out again.
 */
#define SLAB_REQS (SLAB_SIZE / sizeof(actx_req) - 1)

typedef struct req_slab {
    _Atomic long dead;     /* in-flight requests left after shutdown */
    long nfree;            /* owner, at shutdown */
    struct req_slab *next; /* the loop's slabs */
} req_slab;

_Static_assert(sizeof(actx_req) == ACTX__CACHELINE,
               "a request is one cache line");
_Static_assert(sizeof(req_slab) <= sizeof(actx_req), "slab header");

static inline req_slab *slab_of(actx_req *req)
{
    return (req_slab *)((uintptr_t)req & ~(uintptr_t)(SLAB_SIZE - 1));
}

static int slab_refill(actx__loop *loop)
{
    req_slab *slab = aligned_alloc(SLAB_SIZE, SLAB_SIZE);
    actx_req *reqs;
    long i;

    if (!slab) {
        return -ENOMEM;
    }
    atomic_init(&slab->dead, 0);
    slab->nfree = 0;
    slab->next = loop->req_slabs;
    loop->req_slabs = slab;
    reqs = (actx_req *)slab + 1;
    /* Pushed backwards so that they are handed out in address order. */
    for (i = (long)SLAB_REQS - 1; i >= 0; i--) {
        reqs[i].msg.type = ACTX__MSG_REQ;
        reqs[i].mb = loop->mb;
        reqs[i].msg.next = loop->req_free;
        loop->req_free = &reqs[i].msg;
    }
    return 0;
}

actx_req *actx__req_alloc(actx__loop *loop, actx_done_fn *done, void *opaque)
{
    actx_ctx *c = loop->cur;
    actx_req *req;

    if (ACTX__UNLIKELY(loop->req_free == NULL) && slab_refill(loop) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    req = (actx_req *)loop->req_free;
    loop->req_free = req->msg.next;
    actx__mb_charge(loop);
    req->done = done;
    req->opaque = opaque;
    req->ret = 0;
    req->ctx = c;
    req->job = NULL;
    __atomic_store_n(&req->msg.flags, 0, __ATOMIC_RELAXED); /* not completed */
    c->objs++;
    c->npending++;
    c->nreq++;
    loop->st.outstanding++;
    return req;
}

actx_req *actx_req_new(actx_done_fn *done, void *opaque)
{
    actx__loop *loop = actx__loop_get();

    if (ACTX__UNLIKELY(!loop)) {
        return NULL;
    }
    if (ACTX__UNLIKELY(loop->closed)) {
        errno = EPIPE;
        return NULL;
    }
    return actx__req_alloc(loop, done, opaque);
}

/* Owner: the request is finished with; counters and memory go back. */
static void req_put(actx__loop *loop, actx_req *req)
{
    actx_ctx *live = actx__ctx_resolve(req->ctx);

    live->npending--;
    live->nreq--;
    actx__obj_put(loop, req->ctx);
    loop->st.outstanding--;
    loop->mb_budget++;
    if (ACTX__UNLIKELY(req->job != NULL)) {
        actx__job_free(req->job);
    }
    req->msg.next = loop->req_free;
    loop->req_free = &req->msg;
}

void actx__req_discard(actx__loop *loop, actx_req *req)
{
    req_put(loop, req);
}

/* Not the owner thread, owner gone: the request dies here. */
static _Atomic(actx_refused_fn *) refused_hook;

actx_refused_fn *actx_set_refused_hook(actx_refused_fn *fn)
{
    return atomic_exchange(&refused_hook, fn);
}

/* Tell the hook (if any) that done will never run for this opaque. */
static void refused_notify(actx_done_fn *done, void *opaque, long ret)
{
    actx_refused_fn *hook = atomic_load(&refused_hook);

    if (hook) {
        hook(done, opaque, ret);
    }
}

void actx__req_refused(actx_req *req)
{
    actx__mailbox *mb = req->mb;
    req_slab *slab = slab_of(req);
    actx_done_fn *done = req->done;
    void *opaque = req->opaque;
    long ret = req->ret;

    actx__mb_refused(mb);
    if (req->job) {
        actx__job_free(req->job);
    }
    /* acq_rel: see actx__req_loop_shutdown. */
    if (atomic_fetch_sub_explicit(&slab->dead, 1, memory_order_acq_rel) == 1) {
        free(slab);
    }
    actx__mb_unref(mb, 1);
    refused_notify(done, opaque, ret);
}

int actx__req_post(actx_req *req, long ret)
{
    actx__loop *loop = actx__tls_loop;

    /*
     * Completed (see actx_req_complete).  Relaxed: this only makes a second
     * completion detectable; the post's own ordering publishes the request.
     */
    __atomic_store_n(&req->msg.flags, ACTX__REQ_COMPLETED, __ATOMIC_RELAXED);
    req->ret = ret;
    if (loop && loop->mb == req->mb) {
        /* Owner thread: no atomics; keep order behind earlier arrivals. */
        if (ACTX__UNLIKELY(loop->closed)) {
            actx_done_fn *done = req->done;
            void *opaque = req->opaque;

            actx__mb_refused(loop->mb);
            req_put(loop, req);
            refused_notify(done, opaque, ret);
            return -EPIPE;
        }
        actx__drain_if_any(loop);
        actx__dispatch(loop, &req->msg);
        actx__local_post(loop);
        return 0;
    }
    if (ACTX__UNLIKELY(actx__mb_post(req->mb, &req->msg, ACTX__WAKE_ANY))) {
        actx__req_refused(req);
        return -EPIPE;
    }
    return 0;
}

/* A completion that must not be posted (the header lists the cases). */
static int complete_misuse(actx_req *req)
{
    if (__atomic_load_n(&req->msg.flags, __ATOMIC_RELAXED) ==
        ACTX__REQ_COMPLETED) {
        actx__misuse("actx_req_complete", "request completed twice");
        return -EALREADY;
    }
    actx__misuse("actx_req_complete",
                 "request of actx_submit/actx_aio_*: the pool completes it");
    return -EINVAL;
}

int actx_req_complete(actx_req *req, long ret)
{
    /*
     * A request completed once (by hand, by the pool or by a cancel) stays
     * marked until its memory is handed out again, so a second completion
     * is refused instead of running done twice.  Two completions racing on
     * two threads are not caught (that would need an atomic exchange here).
     */
    if (ACTX__UNLIKELY(!req)) {
        return -EINVAL;
    }
    if (ACTX__UNLIKELY(__atomic_load_n(&req->msg.flags, __ATOMIC_RELAXED) !=
                       0)) {
        return complete_misuse(req);
    }
    return actx__req_post(req, ret);
}

/*
 * Run the queue of c (the current context).  Bounded by the length it had
 * on entry so that a callback that keeps completing requests on its own
 * thread cannot keep one call going forever; items are taken one at a time
 * so a nested poll from a callback continues the same queue.
 */
int actx__run_queue(actx__loop *loop, actx_ctx *c)
{
    long n = c->q_len;
    int ran = 0;

    while (n-- > 0 && c->q_head) {
        actx__msg *m = c->q_head;

        c->q_head = m->next;
        if (!c->q_head) {
            c->q_tail = &c->q_head;
        }
        c->q_len--;
        ran = 1;
        if (ACTX__LIKELY(m->type == ACTX__MSG_REQ)) {
            actx_req *req = (actx_req *)m;
            actx_done_fn *done = req->done;
            void *opaque = req->opaque;
            long ret = req->ret;

            /* Not outstanding any more while done runs (flush inside). */
            req_put(loop, req);
            loop->st.completions_run++;
            if (done) {
                done(opaque, ret);
            }
        } else {
            actx__call *call = (actx__call *)m;

            if (m->type == ACTX__MSG_CALL) {
                loop->st.calls_run++;
                call->fn(call->opaque);
            } else {
                c->stop = true;
            }
            actx__ctx_unref_ref(call->ctx);
            free(call);
        }
    }
    return ran;
}

/*
 * Shutdown (mailbox closed, everything arrived has run): a slab whose
 * requests are all free goes now; one with requests still in flight goes
 * when the last of them is refused.  Completers may already have been
 * refused and decremented dead below zero; whoever brings it to zero frees.
 */
void actx__req_loop_shutdown(actx__loop *loop)
{
    req_slab *slab, *next;
    actx__msg *m;

    for (m = loop->req_free; m; m = m->next) {
        slab_of((actx_req *)m)->nfree++;
    }
    loop->req_free = NULL;
    for (slab = loop->req_slabs; slab; slab = next) {
        long inflight = (long)SLAB_REQS - slab->nfree;

        next = slab->next;
        if (inflight == 0 || atomic_fetch_add_explicit(&slab->dead, inflight,
                                                       memory_order_acq_rel) +
                                     inflight ==
                                 0) {
            free(slab);
        }
    }
    loop->req_slabs = NULL;
}
