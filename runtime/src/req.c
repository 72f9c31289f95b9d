/*
 * req.c - requests and the per-context completion queues.
 *
 * A request is one cache line from a per-thread free list.  It is created
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

/* Keep at most this many spare requests per thread. */
#define REQ_FREE_MAX 65536

actx_req *actx__req_alloc(actx__loop *loop, actx_done_fn *done, void *opaque)
{
    actx_ctx *c = loop->cur;
    actx_req *req;

    if (ACTX__LIKELY(loop->req_free != NULL)) {
        req = (actx_req *)loop->req_free;
        loop->req_free = req->msg.next;
        loop->req_free_n--;
    } else {
        req = aligned_alloc(ACTX__CACHELINE, sizeof(*req));
        if (!req) {
            errno = ENOMEM;
            return NULL;
        }
        req->msg.type = ACTX__MSG_REQ;
        req->mb = loop->mb;
    }
    actx__mb_charge(loop);
    req->done = done;
    req->opaque = opaque;
    req->ret = 0;
    req->ctx = c;
    req->job = NULL;
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
    if (ACTX__LIKELY(loop->req_free_n < REQ_FREE_MAX)) {
        req->msg.next = loop->req_free;
        loop->req_free = &req->msg;
        loop->req_free_n++;
    } else {
        free(req);
    }
}

/* Not the owner thread, owner gone: the request dies here. */
void actx__req_refused(actx_req *req)
{
    actx__mailbox *mb = req->mb;

    actx__mb_refused(mb);
    if (req->job) {
        actx__job_free(req->job);
    }
    free(req);
    actx__mb_unref(mb, 1);
}

int actx__req_post(actx_req *req, long ret)
{
    actx__loop *loop = actx__tls_loop;

    req->ret = ret;
    if (loop && loop->mb == req->mb) {
        /* Owner thread: no atomics; keep order behind earlier arrivals. */
        if (ACTX__UNLIKELY(loop->closed)) {
            actx__mb_refused(loop->mb);
            req_put(loop, req);
            return -EPIPE;
        }
        actx__drain_if_any(loop);
        actx__dispatch(loop, &req->msg);
        return 0;
    }
    if (ACTX__UNLIKELY(actx__mb_post(req->mb, &req->msg, ACTX__WAKE_ANY))) {
        actx__req_refused(req);
        return -EPIPE;
    }
    return 0;
}

int actx_req_complete(actx_req *req, long ret)
{
    if (ACTX__UNLIKELY(!req)) {
        return -EINVAL;
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

/* Shutdown: return the spare requests to the allocator. */
void actx__req_loop_shutdown(actx__loop *loop)
{
    while (loop->req_free) {
        actx__msg *m = loop->req_free;

        loop->req_free = m->next;
        free(m);
    }
    loop->req_free_n = 0;
}
