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
 * Requests come from 64 KiB slabs, 64 KiB-aligned, each with a bitmap of its
 * free lines.  Allocation takes the lowest free line at or after a cursor
 * that sweeps the slabs in address order; freeing sets a bit.
 *
 * Why a bitmap and not a free list.  A free list hands requests back in the
 * order they were freed: with two producers, or completions that run in a
 * different order than they were issued, consecutive allocations soon land
 * on unrelated lines, every allocation loads ->next from a line that may
 * have left the cache, and a batch of completions stops walking memory the
 * way the hardware prefetcher expects.  With the bitmap the order of frees
 * does not matter: allocation reads one hot bitmap word and only writes
 * the request line, and consecutive allocations are adjacent.  The one
 * exception is the line freed last (req_last, see req_free): it is handed
 * out first, so a done callback that issues the next request reuses the
 * line its completion just ran on.
 *
 * Growth: when fewer than 1/GROW_FRACTION of the lines are free, a new slab
 * is added instead of searching, so the search for a free word stays
 * amortised O(1) per allocation however many requests are in flight.
 *
 * Where slabs come from.  Slabs are carved in address order out of chunks
 * of consecutive slabs (one aligned_alloc each), a chunk as many slabs as
 * the loop has so far, from 1 up to CHUNK_MAX_SLABS (2 MiB): the sweep then
 * walks memory upwards without a gap for up to 32 slabs at a time.  A batch
 * of completions is walked twice in the order it was allocated (the
 * mailbox's reversal in actx__drain, then the queue run), and the hardware
 * prefetcher keeps up with that only when consecutive slabs are adjacent
 * and ascending; one aligned_alloc per slab would leave that to glibc's
 * heap or mmap placement.  Untouched slabs of a chunk cost address space
 * only: a slab's lines are written when it is carved.  (The measurements
 * behind these choices: benchmarks/README.md, "Request memory".)
 *
 * The first lines of a slab are its header and bitmap.  Each chunk holds
 * one reference on the loop's mailbox (so requests need none of their
 * own).  Chunks live until their loop shuts down; a chunk that still has
 * requests in flight then is freed by whichever thread drops its last one
 * (the owner, or a completer refused with -EPIPE), which also drops the
 * chunk's mailbox reference.
 */
#define SLAB_SIZE (64 * 1024)
#define SLAB_LINES (SLAB_SIZE / ACTX__CACHELINE)
#define SLAB_WORDS (SLAB_LINES / 64)
#define SLAB_HDR_LINES 3 /* header line + bitmap (two lines) */
#define SLAB_REQS (SLAB_LINES - SLAB_HDR_LINES)
#define GROW_FRACTION 16
#define CHUNK_MAX_SLABS 32
/*
 * req->msg.flags: 0 while an actx_req_new request is outstanding,
 * ACTX__REQ_POOL for pool work, ACTX__REQ_COMPLETED once completed (by
 * hand, by the pool or by a cancel), until the memory is handed out again.
 */

typedef struct req_slab {
    /* First slab of a chunk only: in-flight requests left after shutdown. */
    _Atomic long dead;
    struct req_slab *next;  /* the loop's slabs, in creation order */
    struct req_slab *chunk; /* the first slab of its chunk (the allocation) */
    alignas(ACTX__CACHELINE) uint64_t free_bits[SLAB_WORDS]; /* owner-only */
} req_slab;

_Static_assert(sizeof(actx_req) == ACTX__CACHELINE,
               "a request is one cache line");
_Static_assert(sizeof(req_slab) <= SLAB_HDR_LINES * ACTX__CACHELINE,
               "slab header");

/* The cursor's word before the first slab: empty, never written. */
static uint64_t no_bits;

/* A new loop's cursor (thread.c): every allocation starts on the slow path. */
void actx__req_loop_init(actx__loop *loop)
{
    loop->req_bitsp = &no_bits;
}

static inline req_slab *slab_of(actx_req *req)
{
    return (req_slab *)((uintptr_t)req & ~(uintptr_t)(SLAB_SIZE - 1));
}

/* Move the allocation cursor to bitmap word w of slab. */
static void cursor_set(actx__loop *loop, req_slab *slab, unsigned w)
{
    loop->req_cur = slab;
    loop->req_word = w;
    loop->req_bitsp = &slab->free_bits[w];
    loop->req_base = (actx_req *)slab + w * 64;
}

/* A new chunk of slabs to carve from (see "Where slabs come from"). */
static int chunk_add(actx__loop *loop)
{
    size_t n = (size_t)(loop->req_cap / SLAB_REQS);
    req_slab *chunk;

    n = n < 1 ? 1 : n > CHUNK_MAX_SLABS ? CHUNK_MAX_SLABS : n;
    chunk = aligned_alloc(SLAB_SIZE, n * SLAB_SIZE);
    if (!chunk) {
        return -ENOMEM;
    }
    atomic_init(&chunk->dead, 0);
    actx__mb_charge(loop);
    loop->req_chunk = chunk;
    loop->req_carve = chunk;
    loop->req_carve_end = (req_slab *)((char *)chunk + n * SLAB_SIZE);
    return 0;
}

static int slab_add(actx__loop *loop)
{
    req_slab *slab, **pp;
    actx_req *reqs;
    long i;

    if (loop->req_carve == loop->req_carve_end && chunk_add(loop) < 0) {
        return -ENOMEM;
    }
    slab = loop->req_carve;
    loop->req_carve = (req_slab *)((char *)slab + SLAB_SIZE);
    reqs = (actx_req *)slab;
    slab->next = NULL;
    slab->chunk = loop->req_chunk;
    for (i = 0; i < SLAB_WORDS; i++) {
        slab->free_bits[i] = ~(uint64_t)0;
    }
    slab->free_bits[0] &= ~(((uint64_t)1 << SLAB_HDR_LINES) - 1);
    for (i = SLAB_HDR_LINES; i < SLAB_LINES; i++) {
        reqs[i].msg.type = ACTX__MSG_REQ;
        reqs[i].mb = loop->mb;
    }
    /* Appended, so that the sweep goes on in address order of creation. */
    for (pp = &loop->req_slabs; *pp; pp = &(*pp)->next) {
    }
    *pp = slab;
    loop->req_cap += SLAB_REQS;
    cursor_set(loop, slab, 0);
    return 0;
}

/*
 * The current bitmap word is empty: move the cursor to the next word with
 * a free line, or to a new slab when too few lines are free.
 *
 * Where to go first.  Lines freed since the cursor last moved are still in
 * this CPU's cache (their completions just ran), while the line after the
 * cursor was freed longest ago.  So the cursor jumps to the first line freed
 * since it last moved (req_hint) and sweeps on from there in address order:
 * a batch of completions that ran in issue order is reused in the same
 * order while it is hot, and a scrambled one is still reused upwards.
 */
static int req_find(actx__loop *loop)
{
    req_slab *slab = loop->req_cur;
    unsigned w = loop->req_word;

    if (loop->req_hint) {
        actx_req *hint = loop->req_hint;

        loop->req_hint = NULL;
        slab = slab_of(hint);
        w = (unsigned)(hint - (actx_req *)slab) / 64;
        if (slab->free_bits[w]) {
            cursor_set(loop, slab, w);
            return 0;
        }
    }
    if (!slab || (loop->req_cap - loop->st.outstanding) * GROW_FRACTION <
                     loop->req_cap) {
        return slab_add(loop);
    }
    for (;;) {
        if (++w == SLAB_WORDS) {
            w = 0;
            slab = slab->next ? slab->next : loop->req_slabs;
        }
        if (slab->free_bits[w]) {
            cursor_set(loop, slab, w);
            return 0;
        }
    }
}

/*
 * Take the lowest free line of the cursor's word (which the caller checked
 * is not empty) for a new request of the current context.
 */
static inline actx_req *req_init(actx__loop *loop, actx_req *req,
                                 actx_done_fn *done, void *opaque)
{
    actx_ctx *c = loop->cur;

    req->done = done;
    req->opaque = opaque;
    req->ret = 0;
    req->ctx = c;
    req->job = NULL;
    req->msg.aux = (uint32_t)c->depth; /* the wake-up filter (mailbox.c) */
    __atomic_store_n(&req->msg.flags, 0, __ATOMIC_RELAXED); /* not completed */
    c->objs++;
    c->nreq++;
    loop->st.outstanding++;
    return req;
}

static inline actx_req *req_take(actx__loop *loop, uint64_t bits,
                                 actx_done_fn *done, void *opaque)
{
    *loop->req_bitsp = bits & (bits - 1);
    return req_init(loop, loop->req_base + __builtin_ctzll(bits), done, opaque);
}

/* The line freed last goes back to the bitmap (see req_free). */
static inline void req_free_bit(actx__loop *loop, actx_req *req)
{
    req_slab *slab = slab_of(req);
    size_t i = (size_t)(req - (actx_req *)slab);

    slab->free_bits[i / 64] |= (uint64_t)1 << (i % 64);
    if (!loop->req_hint) {
        loop->req_hint = req;
    }
}

/* Before anything reads the bitmaps as the set of free lines. */
static void req_last_flush(actx__loop *loop)
{
    if (loop->req_last) {
        req_free_bit(loop, loop->req_last);
        loop->req_last = NULL;
    }
}

/*
 * Owner: the line of req is free again.  It is kept aside as req_last
 * (the previous one goes back to the bitmap): the next allocation takes
 * it first.  A done callback that issues the next request - the common
 * shape of a pipeline - so reuses the line its own completion just ran
 * on, which is in this CPU's cache, instead of a line freed earlier in the
 * batch and since evicted.  The order of a batch's lines is kept (each
 * new request takes the place of the one that completed).
 */
static inline void req_free(actx__loop *loop, actx_req *req)
{
    actx_req *prev = loop->req_last;

    loop->req_last = req;
    loop->st.outstanding--;
    if (prev) {
        req_free_bit(loop, prev);
    }
}

actx_req *actx__req_alloc(actx__loop *loop, actx_done_fn *done, void *opaque)
{
    uint64_t bits = *loop->req_bitsp;

    if (loop->req_last) {
        actx_req *req = loop->req_last;

        loop->req_last = NULL;
        return req_init(loop, req, done, opaque);
    }
    if (ACTX__UNLIKELY(bits == 0)) {
        if (req_find(loop) < 0) {
            errno = ENOMEM;
            return NULL;
        }
        bits = *loop->req_bitsp;
    }
    return req_take(loop, bits, done, opaque);
}

/* actx_req_new off its fast path: no loop yet, closed, or cursor empty. */
static __attribute__((noinline)) actx_req *req_new_slow(actx_done_fn *done,
                                                        void *opaque)
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

actx_req *actx_req_new(actx_done_fn *done, void *opaque)
{
    actx__loop *loop = actx__tls_loop;
    uint64_t bits;

    /* The fast path makes no call, so it saves no registers. */
    if (ACTX__UNLIKELY(!loop || loop->closed)) {
        return req_new_slow(done, opaque);
    }
    if (loop->req_last) {
        actx_req *req = loop->req_last;

        loop->req_last = NULL;
        return req_init(loop, req, done, opaque);
    }
    if (ACTX__UNLIKELY((bits = *loop->req_bitsp) == 0)) {
        return req_new_slow(done, opaque);
    }
    return req_take(loop, bits, done, opaque);
}

/* Owner: the request is finished with; counters and memory go back. */
static inline __attribute__((always_inline)) void req_put(actx__loop *loop,
                                                          actx_req *req)
{
    actx_ctx *live = actx__ctx_resolve(req->ctx);

    live->nreq--;
    actx__obj_put(loop, req->ctx);
    if (ACTX__UNLIKELY(req->job != NULL)) {
        actx__job_free(req->job);
    }
    req_free(loop, req);
}

void actx__req_discard(actx__loop *loop, actx_req *req)
{
    req_put(loop, req);
}

/*
 * Cancel what has not started: a ring operation (aio-uring.c) or queued
 * pool work (pool.c) each know how; a request without work (actx_req_new)
 * cannot be cancelled.
 */
int actx_req_cancel(actx_req *req)
{
    actx__loop *loop = actx__tls_loop;

    if (!req) {
        return -EINVAL;
    }
    if (!loop || loop->mb != req->mb) {
        actx__misuse(__func__, "not called on the owner thread");
        return -EPERM;
    }
    if (ACTX__UNLIKELY(actx__io_is_ring_req(req))) {
        return actx__io_cancel(loop, req);
    }
    return req->job ? actx__job_cancel(req->job) : -EBUSY;
}

/*
 * actx_cancel_context: actx_req_cancel each request of the loop that
 * resolves to c (re-homed children's included).  There is no list of
 * outstanding requests (see the top of this file), so this walks the
 * slabs' bitmaps: a line in use is a request not yet put.  Cost O(slab
 * lines), paid only by a cancel, which is rare and waits anyway; nothing
 * on the submit or completion paths pays for it.  Cancelling neither frees
 * requests nor runs callbacks (completions are queued), so the bitmaps do
 * not change under the walk.
 */
long actx__req_cancel_ctx(actx__loop *loop, actx_ctx *c)
{
    req_slab *slab;
    long n = 0;

    req_last_flush(loop);
    for (slab = loop->req_slabs; slab; slab = slab->next) {
        actx_req *reqs = (actx_req *)slab;
        unsigned w;

        for (w = 0; w < SLAB_WORDS; w++) {
            uint64_t used = ~slab->free_bits[w];

            if (w == 0) {
                used &= ~(((uint64_t)1 << SLAB_HDR_LINES) - 1); /* header */
            }
            while (used) {
                actx_req *req = reqs + w * 64 + __builtin_ctzll(used);

                used &= used - 1;
                if (actx__ctx_resolve(req->ctx) == c &&
                    actx_req_cancel(req) == 0) {
                    n++;
                }
            }
        }
    }
    return n;
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

    if (ACTX__UNLIKELY(done == actx__io_fallback_done)) {
        /* The pool did a ring request's operation (aio-uring.c): that
         * request is refused with this result, and the hook told of it. */
        actx_req *ring_req = opaque;

        ring_req->ret = ret;
        actx__req_refused(ring_req);
        return;
    }

    if (hook) {
        hook(done, opaque, ret);
    }
}

void actx__req_refused(actx_req *req)
{
    actx__mailbox *mb = req->mb;
    req_slab *chunk = slab_of(req)->chunk;
    actx_done_fn *done = req->done;
    void *opaque = req->opaque;
    long ret = req->ret;

    actx__mb_refused(mb);
    if (req->job) {
        actx__job_free(req->job);
    }
    /* acq_rel: see actx__req_loop_shutdown. */
    if (atomic_fetch_sub_explicit(&chunk->dead, 1, memory_order_acq_rel) == 1) {
        free(chunk);
        actx__mb_unref(mb, 1); /* the chunk's reference */
    }
    refused_notify(done, opaque, ret);
}

/* A completion on the owner thread: no atomics, queued directly. */
static __attribute__((noinline)) int req_post_owner(actx__loop *loop,
                                                    actx_req *req, long ret)
{
    if (ACTX__UNLIKELY(loop->closed)) {
        actx_done_fn *done = req->done;
        void *opaque = req->opaque;

        actx__mb_refused(loop->mb);
        req_put(loop, req);
        refused_notify(done, opaque, ret);
        return -EPIPE;
    }
    /* Keep order behind earlier arrivals. */
    actx__drain_if_any(loop);
    actx__dispatch(loop, &req->msg);
    actx__local_post(loop);
    return 0;
}

static __attribute__((noinline)) int req_post_refused(actx_req *req)
{
    actx__req_refused(req);
    return -EPIPE;
}

/*
 * Inline in actx_req_complete: from another thread a completion is one
 * store of ret, one CAS and one load of notify_me, with no call.
 */
static inline int req_post(actx_req *req, long ret)
{
    actx__loop *loop = actx__tls_loop;

    /*
     * Completed (see actx_req_complete).  Relaxed: this only makes a second
     * completion detectable; the post's own ordering publishes the request.
     */
    __atomic_store_n(&req->msg.flags, ACTX__REQ_COMPLETED, __ATOMIC_RELAXED);
    req->ret = ret;
    if (ACTX__UNLIKELY(loop && loop->mb == req->mb)) {
        return req_post_owner(loop, req, ret);
    }
    if (ACTX__UNLIKELY(actx__mb_post_inline(req->mb, &req->msg, ACTX__WAKE_ANY,
                                            (int)req->msg.aux))) {
        return req_post_refused(req);
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

int actx__req_post(actx_req *req, long ret)
{
    return req_post(req, ret);
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
    return req_post(req, ret);
}

/*
 * Run the queue of c (the current context).  Bounded by the length it had
 * on entry so that a callback that keeps completing requests on its own
 * thread cannot keep one call going forever; items are taken one at a time
 * so a nested poll from a callback continues the same queue.  Stops when a
 * callback leaves another context current (actx__pass_ends).
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
        if (actx__pass_ends(loop, c)) {
            break; /* the rest stays queued in c, in order */
        }
    }
    return ran;
}

/*
 * Shutdown (mailbox closed, everything arrived has run): a chunk whose
 * requests are all free goes now; one with requests still in flight goes
 * when the last of them is refused.  Completers may already have been
 * refused and decremented dead below zero; whoever brings it to zero frees.
 * A chunk's slabs are consecutive in the list; nothing of a chunk is read
 * after its count went in (a completer may free it at once).
 */
void actx__req_loop_shutdown(actx__loop *loop)
{
    req_slab *slab;

    req_last_flush(loop);
    slab = loop->req_slabs;
    while (slab) {
        req_slab *chunk = slab->chunk;
        long inflight = 0;

        for (; slab && slab->chunk == chunk; slab = slab->next) {
            long nfree = 0;
            int w;

            for (w = 0; w < SLAB_WORDS; w++) {
                nfree += __builtin_popcountll(slab->free_bits[w]);
            }
            inflight += (long)SLAB_REQS - nfree;
        }
        if (inflight == 0 || atomic_fetch_add_explicit(&chunk->dead, inflight,
                                                       memory_order_acq_rel) +
                                     inflight ==
                                 0) {
            free(chunk);
            loop->mb_budget++; /* the chunk's mailbox reference */
        }
    }
    loop->req_slabs = NULL;
    loop->req_cur = NULL;
    loop->req_hint = NULL;
    loop->req_chunk = NULL;
    loop->req_carve = NULL;
    loop->req_carve_end = NULL;
    loop->req_bitsp = &no_bits;
}
