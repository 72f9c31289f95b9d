/*
 * test-noloop.c - a thread whose loop cannot be created (every allocation
 * fails, inject.h): calls that need the loop report the documented error,
 * and calls that cannot fail by contract still give their answer.
 * Found by tests/fault (actx-fault --persist).
 */
#include "test.h"

#include "inject.h"

struct noloop {
    int id_before, push, id_after;
};

static void *noloop_main(void *arg)
{
    struct noloop *r = arg;

    inject_fail(&inject_alloc, INJECT_ALWAYS);
    r->id_before = actx_context_id();
    r->push = actx_push();
    r->id_after = actx_context_id();
    inject_fail(&inject_alloc, 0);
    return NULL;
}

/* It used to return -ENOMEM: the depth of a thread without a loop is 0. */
ACTX_TEST("/thread/no-loop/context-id-is-root")
{
    struct noloop r;

    thread_join(thread_start(noloop_main, &r));
    ASSERT_EQ(r.id_before, 0);
    ASSERT_LT(r.push, 0);
    ASSERT_EQ(r.id_after, 0);
    ASSERT_EQ(actx_context_id(), 0);
}

/* Every call that needs the loop, on a thread whose loop cannot be made. */
struct noloop_calls {
    int poll, poll_timeout, process, flush, cancel, run, backend_fd;
    int timeout_ms, bh_poll, pop, set_fd;
    void *bh, *timer, *cur, *submit, *aio[3];
    int bh_errno, timer_errno, cur_errno, submit_errno, aio_errno[3];
    char *dump;
};

static void nothing(void *opaque)
{
    (void)opaque;
}

static long no_work(void *opaque)
{
    (void)opaque;
    return 0;
}

static void *noloop_calls_main(void *arg)
{
    struct noloop_calls *r = arg;
    size_t len = 0;
    FILE *f = open_memstream(&r->dump, &len);
    char buf[16] = {0};
    int p[2];

    ASSERT_NOT_NULL(f);
    ASSERT_EQ(pipe(p), 0);
    inject_fail(&inject_alloc, INJECT_ALWAYS);
    r->poll = actx_poll(false);
    r->poll_timeout = actx_poll_timeout(0);
    r->process = actx_process_queue();
    r->flush = actx_flush();
    r->cancel = actx_cancel_context();
    r->run = actx_run();
    r->backend_fd = actx_backend_fd();
    r->timeout_ms = actx_backend_timeout_ms();
    r->bh_poll = actx_bh_poll();
    r->pop = actx_pop();
    r->set_fd = actx_set_fd_handler(p[0], nothing, NULL, NULL);
    errno = 0;
    r->bh = actx_bh_new(nothing, NULL);
    r->bh_errno = errno;
    errno = 0;
    r->timer = actx_timer_new(nothing, NULL);
    r->timer_errno = errno;
    errno = 0;
    r->cur = actx_ctx_current();
    r->cur_errno = errno;
    errno = 0;
    r->submit = actx_submit(no_work, NULL, NULL);
    r->submit_errno = errno;
    errno = 0;
    r->aio[0] = actx_aio_pread(p[0], buf, sizeof(buf), 0, NULL, NULL);
    r->aio_errno[0] = errno;
    errno = 0;
    r->aio[1] = actx_aio_pwrite(p[1], buf, sizeof(buf), 0, NULL, NULL);
    r->aio_errno[1] = errno;
    errno = 0;
    r->aio[2] = actx_aio_fsync(p[1], NULL, NULL);
    r->aio_errno[2] = errno;
    inject_fail(&inject_alloc, 0);
    actx_dump(f); /* still no loop: dumping does not make one */
    fclose(f);
    close(p[0]);
    close(p[1]);
    return NULL;
}

ACTX_TEST("/thread/no-loop/every-call-reports-it")
{
    struct noloop_calls r;

    memset(&r, 0, sizeof(r));
    thread_join(thread_start(noloop_calls_main, &r));
    /* Nothing to run: nothing ran. */
    ASSERT_EQ(r.poll, 0);
    ASSERT_EQ(r.process, 0);
    ASSERT_EQ(r.bh_poll, 0);
    /* Calls with an error return: the loop's creation error. */
    ASSERT_EQ(r.poll_timeout, -ENOMEM);
    ASSERT_EQ(r.flush, -ENOMEM);
    ASSERT_EQ(r.cancel, -ENOMEM);
    ASSERT_EQ(r.run, -ENOMEM);
    ASSERT_EQ(r.backend_fd, -ENOMEM);
    ASSERT_EQ(r.pop, -ENOMEM);
    ASSERT_EQ(r.set_fd, -ENOMEM);
    /* No loop, so no timer to wake for. */
    ASSERT_EQ(r.timeout_ms, -1);
    ASSERT_NULL(r.bh);
    ASSERT_EQ(r.bh_errno, ENOMEM);
    ASSERT_NULL(r.timer);
    ASSERT_EQ(r.timer_errno, ENOMEM);
    ASSERT_NULL(r.cur);
    ASSERT_EQ(r.cur_errno, ENOMEM);
    ASSERT_NULL(r.submit);
    ASSERT_EQ(r.submit_errno, ENOMEM);
    for (int i = 0; i < 3; i++) {
        ASSERT_NULL(r.aio[i]);
        ASSERT_EQ(r.aio_errno[i], ENOMEM);
    }
    ASSERT_NOT_NULL(strstr(r.dump, "no loop on this thread"));
    free(r.dump);
}
