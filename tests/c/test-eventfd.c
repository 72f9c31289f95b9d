/*
 * Eventfds follow live loops (mailbox.c, "Eventfd lifetime"): a thread's
 * loop that shut down, or whose thread exited, leaves no descriptor
 * behind, though its mailbox memory is kept for reuse.
 */
#include "test.h"

#include <dirent.h>

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    ASSERT_NOT_NULL(d);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory's own */
}

static void *loop_and_exit(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)actx_thread_init();
}

static void *loop_then_shutdown(void *arg)
{
    struct cb_rec r = {0};
    actx_req *req;

    (void)arg;
    req = actx_req_new(rec_done, &r);
    if (!req) {
        return (void *)1;
    }
    /* Completed by another thread: a post that may write the eventfd. */
    if (complete_from_thread(req, 3) != 0 || actx_flush() != 0 || r.ret != 3) {
        return (void *)2;
    }
    actx_thread_shutdown();
    return NULL;
}

ACTX_TEST_TIMEOUT("/eventfd/threads-that-exit-leave-none-open", 60)
{
    enum { THREADS = 300 };
    int before = open_fds();

    for (int i = 0; i < THREADS; i++) {
        pthread_t t[3];

        for (int j = 0; j < 3; j++) {
            t[j] =
                thread_start(j == 2 ? loop_then_shutdown : loop_and_exit, NULL);
        }
        for (int j = 0; j < 3; j++) {
            ASSERT_NULL(thread_join(t[j]));
        }
    }
    ASSERT_EQ(open_fds(), before);
}

ACTX_TEST("/eventfd/shutdown-closes-it")
{
    int before = open_fds();

    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(actx_thread_init(), 0);
        actx_thread_shutdown();
    }
    ASSERT_EQ(open_fds(), before);
}
