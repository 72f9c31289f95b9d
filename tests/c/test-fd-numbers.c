/*
 * fd numbers as issue 19 words them (actx.h, actx_set_fd_handler): a huge
 * number that is not open is -EBADF at once with nothing allocated
 * (memory follows registered fds, not their numbers); a high number that
 * is open works; a number closed and opened again, registered again with
 * the same handlers, is watched again; the loop's io_uring fd is the
 * loop's own, refused, and a refused register/remove leaves the ring
 * waking the loop.
 */
#include "test.h"

#include "actx-internal.h"

#include <fcntl.h>
#include <sys/resource.h>

/* The process's virtual size in KiB (a table sized by fd number would
 * show here even before its pages are touched). */
static long vm_size_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    ASSERT_NOT_NULL(f);
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmSize: %ld", &kib) == 1) {
            break;
        }
    }
    fclose(f);
    ASSERT_GT(kib, 0);
    return kib;
}

static void on_read(void *opaque)
{
    int *r = opaque; /* r[0]: fd to drain, r[1]: runs */
    char b[16];

    ASSERT_GT(read(r[0], b, sizeof(b)), 0);
    r[1]++;
}

ACTX_TEST("/fd/numbers/huge-not-open/ebadf-nothing-allocated")
{
    static const int nums[] = {INT_MAX, 100000000, 1000000000, INT_MAX - 1};
    int r[2] = {-1, 0};
    long before;

    ASSERT_EQ(actx_thread_init(), 0);
    before = vm_size_kib();
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(actx_set_fd_handler(nums[i], on_read, NULL, r), -EBADF);
        ASSERT_EQ(actx_set_fd_handler(nums[i], NULL, on_read, r), -EBADF);
    }
    ASSERT_LT(vm_size_kib() - before, 64 * 1024);
    ASSERT_EQ(actx_poll(false), 0);
}

ACTX_TEST("/fd/numbers/high-open-fd-works-small")
{
    struct rlimit rl;
    int p[2], hi, r[2] = {-1, 0};
    long before;

    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ASSERT_GT(rl.rlim_cur, 100);
    hi = rl.rlim_cur > 1000000 ? 999999 : (int)rl.rlim_cur - 1;
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(dup2(p[0], hi), hi);
    ASSERT_EQ(actx_thread_init(), 0);
    before = vm_size_kib();
    r[0] = hi;
    ASSERT_EQ(actx_set_fd_handler(hi, on_read, NULL, r), 0);
    ASSERT_EQ(write(p[1], "x", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(r[1] == 0), 0);
    ASSERT_LT(vm_size_kib() - before, 64 * 1024);
    ASSERT_EQ(actx_set_fd_handler(hi, NULL, NULL, NULL), 0);
    close(hi);
    close(p[0]);
    close(p[1]);
}

/* Closed while registered, the number opened again (another pipe),
 * registered again with the very same handlers and opaque: watched. */
ACTX_TEST("/fd/reregister/closed-reopened-same-handlers")
{
    int p[2], q[2], r[2] = {-1, 0};

    ASSERT_EQ(pipe(p), 0);
    r[0] = p[0];
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, r), 0);
    ASSERT_EQ(write(p[1], "a", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(r[1] == 0), 0);
    ASSERT_EQ(pipe(q), 0);
    /* The new pipe's read end takes the registered number. */
    ASSERT_EQ(dup2(q[0], p[0]), p[0]);
    close(q[0]);
    close(p[1]);
    ASSERT_EQ(actx_set_fd_handler(p[0], on_read, NULL, r), 0);
    ASSERT_EQ(write(q[1], "b", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(r[1] == 1), 0);
    ASSERT_EQ(r[1], 2);
    ASSERT_EQ(actx_set_fd_handler(p[0], NULL, NULL, NULL), 0);
    close(p[0]);
    close(q[1]);
}

static void io_done(void *opaque, long ret)
{
    long *r = opaque;

    r[0]++;
    r[1] = ret;
}

/* The ring's fd: refused (register and remove), and the ring still
 * wakes the loop for a read that completes later (uncached). */
ACTX_TEST("/fd/own/io-uring-fd-refused-ring-still-wakes")
{
    enum { BS = 4096 };
    static char buf[BS], data[BS * 16];
    long r[2] = {0, 0};
    struct actx_stats st;
    char path[] = "/tmp/actx-ringfd-XXXXXX";
    int fd = mkstemp(path), ring;

    ASSERT_GE(fd, 0);
    unlink(path);
    memset(data, 'q', sizeof(data));
    ASSERT_EQ(write(fd, data, sizeof(data)), (long)sizeof(data));
    unsetenv("ACTX_IO");
    ASSERT_EQ(actx_thread_init(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 1);
    ASSERT_NOT_NULL(actx_aio_pread(fd, buf, BS, 0, io_done, r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r[0] == 0), 0);
    ring = actx__io_ring_fd(actx__tls_loop);
    ASSERT_GE(ring, 0);
    ASSERT_EQ(actx_set_fd_handler(ring, (actx_fn *)abort, NULL, NULL), -EINVAL);
    ASSERT_EQ(actx_set_fd_handler(ring, NULL, NULL, NULL), -EINVAL);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(fdatasync(fd), 0);
        ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
        r[0] = 0;
        ASSERT_NOT_NULL(
            actx_aio_pread(fd, buf, BS, (off_t)(i + 1) * BS, io_done, r));
        ASSERT_EQ(ACTX_WAIT_WHILE(r[0] == 0), 0);
        ASSERT_EQ(r[1], BS);
    }
    close(fd);
}
