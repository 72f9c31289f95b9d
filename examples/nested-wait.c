/*
 * nested-wait.c - why contexts exist, in one screen.
 *
 * A "driver" thread completes requests at random moments, like a disk would.
 * The main thread handles each completion; some handlers need a synchronous
 * read in the middle (think qcow2 reading a metadata table), emulated by an
 * asynchronous request plus a wait.
 *
 * Run once waiting in the same context (the bug the 2009 patch fixed):
 * other requests' completions run inside the handler's wait and re-enter
 * it.  Run again with actx_push()/actx_pop() around the wait: they are held
 * back and run after the pop, in their arrival order.  The program checks
 * both outcomes and exits non-zero if the second run ever re-entered.
 */
#include <actx.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NREQ 2000

/* A tiny lock-protected handoff from the main thread to the driver. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static actx_req *handoff[NREQ * 2];
static int nhand, ntaken;
static bool driver_stop;

static void submit(actx_req *req)
{
    pthread_mutex_lock(&lock);
    handoff[nhand++ % (NREQ * 2)] = req;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

static void *driver(void *arg)
{
    unsigned seed = 42;

    (void)arg;
    for (;;) {
        actx_req *req;

        pthread_mutex_lock(&lock);
        while (ntaken == nhand && !driver_stop) {
            pthread_cond_wait(&cond, &lock);
        }
        if (ntaken == nhand) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        req = handoff[ntaken++ % (NREQ * 2)];
        pthread_mutex_unlock(&lock);
        if (rand_r(&seed) % 4 == 0) {
            usleep(rand_r(&seed) % 50); /* the "disk" is not instant */
        }
        actx_req_complete(req, 0);
    }
}

struct run {
    bool use_context;
    int in_handler; /* > 0 while a handler is running */
    long reentered; /* completions that ran inside another handler */
    long handled;
    long sync_reads;
    long order_errors;
    long last_seq;
};

static struct run *R;

static void meta_done(void *opaque, long ret)
{
    (void)ret;
    *(bool *)opaque = true;
}

static void handle(void *opaque, long ret)
{
    long seq = (long)opaque;

    (void)ret;
    if (R->in_handler) {
        R->reentered++; /* a foreign callback ran during a synchronous read */
    }
    /* Outside re-entrancy, completions arrive in submission order. */
    if (!R->in_handler && seq < R->last_seq) {
        R->order_errors++;
    }
    R->last_seq = seq;
    R->in_handler++;
    if (seq % 10 == 0) {
        /* The synchronous metadata read. */
        bool meta = false;

        if (R->use_context) {
            actx_push();
        }
        submit(actx_req_new(meta_done, &meta));
        if (ACTX_WAIT_WHILE(!meta) != 0) {
            fprintf(stderr, "nested-wait: wait cannot make progress\n");
            exit(1);
        }
        if (R->use_context) {
            actx_pop();
        }
        R->sync_reads++;
    }
    R->in_handler--;
    R->handled++;
}

static void run(struct run *r)
{
    struct actx_stats before, after;
    long i;

    R = r;
    actx_stats(&before);
    for (i = 0; i < NREQ; i++) {
        submit(actx_req_new(handle, (void *)i));
        if (i % 64 == 63) {
            actx_poll(false);
        }
    }
    while (r->handled < NREQ) {
        actx_poll(true);
    }
    actx_stats(&after);
    printf("%-26s %8ld %10ld %12ld %10lu\n",
           r->use_context ? "with actx_push/actx_pop"
                          : "same context (no push)",
           r->handled, r->sync_reads, r->reentered,
           after.completions_deferred - before.completions_deferred);
}

int main(void)
{
    struct run naive = {.use_context = false};
    struct run ctx = {.use_context = true};
    pthread_t t;

    pthread_create(&t, NULL, driver, NULL);
    printf("%d requests; every 10th handler does a synchronous read "
           "(submit + ACTX_WAIT_WHILE).\n\n",
           NREQ);
    printf("%-26s %8s %10s %12s %10s\n", "wait done in", "handled",
           "sync reads", "re-entered", "deferred");
    run(&naive);
    run(&ctx);

    pthread_mutex_lock(&lock);
    driver_stop = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(t, NULL);

    printf("\n");
    printf("re-entered: completions of other requests that ran inside a "
           "handler's synchronous read.\n");
    printf("deferred:   completions that arrived while the handler's "
           "private context was current and\n"
           "            were held for the parent, then run after the pop.\n");
    if (ctx.reentered != 0 || ctx.order_errors != 0 || ctx.handled != NREQ) {
        printf("\nFAIL: with a context, a foreign callback ran during a "
               "synchronous read.\n");
        return 1;
    }
    printf("\nOK: with a pushed context no foreign callback ran during any "
           "of %ld synchronous reads,\n    and every completion ran exactly "
           "once, in order.\n",
           ctx.sync_reads);
    if (naive.reentered == 0) {
        printf("(this run's timing happened to give the naive version no "
               "re-entry either)\n");
    }
    actx_thread_shutdown();
    return 0;
}
