/*
 * test-req-slab.c - where requests live (runtime/src/req.c, "Where slabs
 * come from"): consecutive requests are consecutive cache lines, across
 * slab boundaries too, whatever the process's allocator did before, so that
 * a batch of completions walks memory upwards; and the memory of requests
 * still in flight when their owner shuts down is freed by the threads that
 * are refused, however many slabs they span (ASan and valgrind report a
 * leak otherwise).
 */
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#define SLAB_BYTES (64 * 1024)
#define NREQ 40000 /* about 40 slabs */

static void nop_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
}

/*
 * Steps between consecutive allocations that do not go upwards within a
 * slab's length: the next line, or at a slab boundary past the next
 * slab's header (and past the lines a slab leaves for later when it grows,
 * see GROW_FRACTION), but never down nor over a hole.
 */
static long gaps(actx_req **r, long n)
{
    long g = 0;

    for (long i = 1; i < n; i++) {
        intptr_t d = (intptr_t)r[i] - (intptr_t)r[i - 1];

        if (d <= 0 || d > SLAB_BYTES) {
            g++;
        }
    }
    return g;
}

/*
 * Slabs come in chunks of 1, 1, 2, 4, 8, 16, 32, 32... slabs: NREQ requests
 * on a fresh loop span at most 7 chunks, so at most 6 steps jump.  One
 * aligned allocation per slab put a jump at every slab boundary (about 40).
 */
static void consecutive_lines(void)
{
    actx_req **r = calloc(NREQ, sizeof(*r));

    ASSERT_NOT_NULL(r);
    for (long i = 0; i < NREQ; i++) {
        r[i] = actx_req_new(nop_done, NULL);
        ASSERT_NOT_NULL(r[i]);
    }
    ASSERT_LE(gaps(r, NREQ), 6);
    for (long i = 0; i < NREQ; i++) {
        ASSERT_EQ(actx_req_complete(r[i], 0), 0);
    }
    ASSERT_EQ(actx_flush(), 0);
    free(r);
}

static void *fresh_loop_main(void *p)
{
    (void)p;
    consecutive_lines();
    actx_thread_shutdown();
    return NULL;
}

ACTX_TEST("/req/slab/consecutive-lines-fresh-loop")
{
    thread_join(thread_start(fresh_loop_main, NULL));
}

/*
 * The same after the process freed large blocks (which moves glibc's
 * threshold between mmap and heap allocations) and with other allocations
 * between the slabs' growth.
 */
static void *churned_loop_main(void *p)
{
    void *small[64];

    (void)p;
    for (int i = 0; i < 4; i++) {
        void *big = malloc((size_t)(4 + i) << 20);

        ASSERT_NOT_NULL(big);
        free(big);
    }
    for (int i = 0; i < 64; i++) {
        small[i] = malloc(100 + (size_t)i * 1000);
    }
    consecutive_lines();
    for (int i = 0; i < 64; i++) {
        free(small[i]);
    }
    actx_thread_shutdown();
    return NULL;
}

ACTX_TEST("/req/slab/consecutive-lines-after-big-frees")
{
    thread_join(thread_start(churned_loop_main, NULL));
}

/* --- in flight at shutdown, across many slabs ---------------------------- */

static actx_req **inflight;
static atomic_long inflight_refused;

static void never_done(void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    actx_test_fail(__FILE__, __LINE__, "done ran for a refused request");
}

static void count_refused(actx_done_fn *done, void *opaque, long ret)
{
    (void)opaque;
    (void)ret;
    if (done == never_done) {
        atomic_fetch_add(&inflight_refused, 1);
    }
}

/*
 * The owner makes NREQ requests, completes and runs every third one (some
 * slabs keep requests in flight, none is empty), and exits.
 */
static void *inflight_owner_main(void *p)
{
    (void)p;
    for (long i = 0; i < NREQ; i++) {
        inflight[i] = actx_req_new(i % 3 ? never_done : nop_done, NULL);
        ASSERT_NOT_NULL(inflight[i]);
    }
    for (long i = 0; i < NREQ; i += 3) {
        ASSERT_EQ(actx_req_complete(inflight[i], 0), 0);
        inflight[i] = NULL;
    }
    ASSERT_EQ(actx_process_queue(), 1);
    return NULL; /* exits with the others outstanding */
}

static void *inflight_completer_main(void *p)
{
    long k = (long)(intptr_t)p;

    for (long i = k; i < NREQ; i += 2) {
        if (inflight[i]) {
            ASSERT_EQ(actx_req_complete(inflight[i], 0), -EPIPE);
        }
    }
    return NULL;
}

ACTX_TEST("/req/slab/inflight-at-exit-freed-by-refused-completers")
{
    long expect = NREQ - (NREQ + 2) / 3;
    pthread_t t[2];

    inflight = calloc(NREQ, sizeof(*inflight));
    ASSERT_NOT_NULL(inflight);
    atomic_store(&inflight_refused, 0);
    ASSERT_PTR_EQ(actx_set_refused_hook(count_refused), NULL);
    thread_join(thread_start(inflight_owner_main, NULL));
    /* Two refused completers race to drop the last line of each chunk. */
    for (long k = 0; k < 2; k++) {
        t[k] = thread_start(inflight_completer_main, (void *)(intptr_t)k);
    }
    for (long k = 0; k < 2; k++) {
        thread_join(t[k]);
    }
    ASSERT_EQ(atomic_load(&inflight_refused), expect);
    ASSERT_PTR_EQ(actx_set_refused_hook(NULL), count_refused);
    free(inflight);
}
