/*
 * test-aio.c - file I/O on the pool (actx.h): 64 MiB written and read
 * back through 4 KiB requests at random offsets; a read across the end of
 * file is short, not an error; failures come back as -errno (a closed fd:
 * -EBADF); arguments the kernel would fault on are refused up front; fsync;
 * a completion runs in the submitting context.
 */
#include "test.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static int tmpfile_fd(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/actx-aio-XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    return fd;
}

struct io {
    int runs;
    long ret;
    int ctx_id;
};

static void io_done(void *opaque, long ret)
{
    struct io *io = opaque;

    io->runs++;
    io->ret = ret;
    io->ctx_id = actx_context_id();
}

/* A fixed pseudo-random permutation of 0..n-1. */
static void permute(int *p, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        p[i] = i;
    }
    for (int i = n - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)((seed >> 8) % (unsigned)(i + 1));
        int t = p[i];

        p[i] = p[j];
        p[j] = t;
    }
}

/*
 * Keep at most `window` requests in flight: submit until the window is
 * full, then wait for one to finish.
 */
static void wait_window(const long *inflight, long window)
{
    ASSERT_EQ(ACTX_WAIT_WHILE(*inflight >= window), 0);
}

struct blk {
    long *inflight;
    int runs;
    long ret;
    int ctx_id;
};

static void blk_done(void *opaque, long ret)
{
    struct blk *b = opaque;

    b->runs++;
    b->ret = ret;
    b->ctx_id = actx_context_id();
    (*b->inflight)--;
}

ACTX_TEST_TIMEOUT("/aio/64MiB-random-4KiB-write-then-read-back", 300)
{
    enum { BS = 4096, NB = (64 << 20) / BS, WINDOW = 256 };
    unsigned char *src = malloc((size_t)NB * BS);
    unsigned char *dst = malloc((size_t)NB * BS);
    struct blk *b = calloc(NB, sizeof(*b));
    int *perm = malloc(NB * sizeof(*perm));
    long inflight = 0;
    struct io fs = {0};
    struct stat sb;
    int fd = tmpfile_fd();

    ASSERT_NOT_NULL(src);
    ASSERT_NOT_NULL(dst);
    ASSERT_NOT_NULL(b);
    ASSERT_NOT_NULL(perm);
    for (size_t i = 0; i < (size_t)NB * BS / 8; i++) {
        uint64_t v = i * 0x9e3779b97f4a7c15ull;

        memcpy(src + i * 8, &v, 8);
    }
    memset(dst, 0xa5, (size_t)NB * BS);
    ASSERT_EQ(actx_push(), 1);

    permute(perm, NB, 12345);
    for (int k = 0; k < NB; k++) {
        int i = perm[k];

        b[i].inflight = &inflight;
        wait_window(&inflight, WINDOW);
        ASSERT_NOT_NULL(actx_aio_pwrite(fd, src + (size_t)i * BS, BS,
                                        (off_t)i * BS, blk_done, &b[i]));
        inflight++;
    }
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(inflight, 0);
    for (int i = 0; i < NB; i++) {
        ASSERT_EQ(b[i].runs, 1);
        ASSERT_EQ(b[i].ret, BS);
        ASSERT_EQ(b[i].ctx_id, 1);
    }
    ASSERT_NOT_NULL(actx_aio_fsync(fd, io_done, &fs));
    ASSERT_EQ(ACTX_WAIT_WHILE(fs.runs == 0), 0);
    ASSERT_EQ(fs.ret, 0);
    ASSERT_EQ(fstat(fd, &sb), 0);
    ASSERT_EQ(sb.st_size, (long)NB * BS);

    memset(b, 0, NB * sizeof(*b));
    permute(perm, NB, 777);
    for (int k = 0; k < NB; k++) {
        int i = perm[k];

        b[i].inflight = &inflight;
        wait_window(&inflight, WINDOW);
        ASSERT_NOT_NULL(actx_aio_pread(fd, dst + (size_t)i * BS, BS,
                                       (off_t)i * BS, blk_done, &b[i]));
        inflight++;
    }
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < NB; i++) {
        ASSERT_EQ(b[i].runs, 1);
        ASSERT_EQ(b[i].ret, BS);
    }
    for (int i = 0; i < NB; i++) {
        if (memcmp(src + (size_t)i * BS, dst + (size_t)i * BS, BS) != 0) {
            ASSERT_EQ(i, -1); /* names the first bad block */
        }
    }
    ASSERT_EQ(actx_pop(), 0);
    close(fd);
    free(src);
    free(dst);
    free(b);
    free(perm);
}

ACTX_TEST("/aio/pread/short-at-eof")
{
    char out[6000], in[8192];
    struct io w = {0}, r = {0}, past = {0}, zero = {0};
    int fd = tmpfile_fd();

    memset(out, 'x', sizeof(out));
    ASSERT_EQ(pwrite(fd, out, sizeof(out), 0), (ssize_t)sizeof(out));
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, 4096, 4096, io_done, &r));
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, 4096, 100000, io_done, &past));
    ASSERT_NOT_NULL(actx_aio_pread(fd, NULL, 0, 0, io_done, &zero));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.ret, 6000 - 4096);
    ASSERT_EQ(r.ctx_id, 1);
    ASSERT_EQ(past.ret, 0);
    ASSERT_EQ(zero.ret, 0);
    ASSERT_EQ(memcmp(in, out, 6000 - 4096), 0);
    (void)w;
    ASSERT_EQ(actx_pop(), 0);
    close(fd);
}

/* A length no buffer can have (beyond SSIZE_MAX) gets what pread(2) and
 * pwrite(2) say of it, on either path: never a count the kernel would not
 * give, never -1 (-EPERM) for a failure. */
ACTX_TEST("/aio/huge-length-as-the-system-call")
{
    static char buf[4096];
    volatile size_t huge = SIZE_MAX;
    struct io r = {0}, w = {0};
    long want_r, want_w;
    int fd = tmpfile_fd();

    if (under_valgrind()) {
        /* memcheck reports every system call given a buffer of that
         * length (the point of the test): the other runs (debug, asan,
         * tsan) check it. */
        close(fd);
        return;
    }
    memset(buf, 'x', sizeof(buf));
    ASSERT_EQ(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
    want_r = pread(fd, buf, huge, 0);
    want_r = want_r < 0 ? -errno : want_r;
    want_w = pwrite(fd, buf, huge, 0);
    want_w = want_w < 0 ? -errno : want_w;
    ASSERT_LT(want_r, 0);
    ASSERT_LT(want_w, 0);
    ASSERT_NOT_NULL(actx_aio_pread(fd, buf, huge, 0, io_done, &r));
    ASSERT_NOT_NULL(actx_aio_pwrite(fd, buf, huge, 0, io_done, &w));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, want_r);
    ASSERT_EQ(w.runs, 1);
    ASSERT_EQ(w.ret, want_w);
    close(fd);
}

/* A read the page cache can serve at once is done at submission (pool
 * path) or in the batch's io_uring_enter (io_uring path); its done still
 * runs only at a later poll, in its own context (never inline).  On the
 * pool path the request counts as finished (cancel: -EBUSY); on the ring,
 * not before it was entered (test-uring.c tests its cancellation).  The data is the file's;
 * a read across the end of file still comes back short. */
ACTX_TEST("/aio/pread/cached-done-at-next-poll")
{
    char out[8192], in[8192], tail[100];
    struct io r = {0}, t = {0};
    struct actx_stats st;
    int fd = tmpfile_fd();
    actx_req *req;

    for (size_t i = 0; i < sizeof(out); i++) {
        out[i] = (char)(i * 7 + 3);
    }
    ASSERT_EQ(pwrite(fd, out, sizeof(out), 0), (long)sizeof(out));
    ASSERT_EQ(actx_push(), 1);
    req = actx_aio_pread(fd, in, 4096, 4096, io_done, &r);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(r.runs, 0); /* never inline */
    actx_stats(&st);
    if (st.io_backend == 0) {
        /* The pool path read it at submission: finished. */
        ASSERT_EQ(actx_req_cancel(req), -EBUSY);
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, 4096);
    ASSERT_EQ(r.ctx_id, 1);
    ASSERT_EQ(memcmp(in, out + 4096, 4096), 0);
    ASSERT_NOT_NULL(
        actx_aio_pread(fd, tail, sizeof(tail), sizeof(out) - 40, io_done, &t));
    ASSERT_EQ(ACTX_WAIT_WHILE(t.runs == 0), 0);
    ASSERT_EQ(t.ret, 40);
    ASSERT_EQ(memcmp(tail, out + sizeof(out) - 40, 40), 0);
    ASSERT_EQ(actx_pop(), 0);
    close(fd);
}

ACTX_TEST("/aio/errors/closed-fd-ebadf")
{
    char buf[64] = {0};
    struct io r = {0}, w = {0}, s = {0};
    int fd = tmpfile_fd();
    /*
     * A valid number that is not open.  Not a just-closed one: pool
     * threads create their loops' fds lazily and would take it.
     */
    int dead = 1000;

    while (fcntl(dead, F_GETFD) != -1) {
        dead++;
    }
    ASSERT_NOT_NULL(actx_aio_pread(dead, buf, sizeof(buf), 0, io_done, &r));
    ASSERT_NOT_NULL(actx_aio_pwrite(dead, buf, sizeof(buf), 0, io_done, &w));
    ASSERT_NOT_NULL(actx_aio_fsync(dead, io_done, &s));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.ret, -EBADF);
    ASSERT_EQ(w.ret, -EBADF);
    ASSERT_EQ(s.ret, -EBADF);
    close(fd);
}

ACTX_TEST("/aio/errors/refused-up-front")
{
    char buf[64];
    struct io r = {0};
    int fd = tmpfile_fd();

    errno = 0;
    ASSERT_NULL(actx_aio_pread(-1, buf, sizeof(buf), 0, io_done, &r));
    ASSERT_EQ(errno, EBADF);
    errno = 0;
    ASSERT_NULL(actx_aio_pwrite(-7, buf, sizeof(buf), 0, io_done, &r));
    ASSERT_EQ(errno, EBADF);
    errno = 0;
    ASSERT_NULL(actx_aio_fsync(-1, io_done, &r));
    ASSERT_EQ(errno, EBADF);
    /* NULL buffer: EINVAL here, never EFAULT from the kernel. */
    errno = 0;
    ASSERT_NULL(actx_aio_pread(fd, NULL, 16, 0, io_done, &r));
    ASSERT_EQ(errno, EINVAL);
    errno = 0;
    ASSERT_NULL(actx_aio_pwrite(fd, NULL, 16, 0, io_done, &r));
    ASSERT_EQ(errno, EINVAL);
    errno = 0;
    ASSERT_NULL(actx_aio_pread(fd, buf, sizeof(buf), -1, io_done, &r));
    ASSERT_EQ(errno, EINVAL);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 0);
    close(fd);
}

ACTX_TEST("/aio/errors/other-errno")
{
    char buf[64] = {0}; /* pwrite's bytes must be defined (valgrind) */
    struct io r = {0}, w = {0};
    int p[2];
    int ro;
    char path[] = "/tmp/actx-aio-ro-XXXXXX";

    /* A pipe cannot be read at an offset: -ESPIPE. */
    ASSERT_EQ(pipe(p), 0);
    ASSERT_NOT_NULL(actx_aio_pread(p[0], buf, sizeof(buf), 0, io_done, &r));
    /* A read-only fd cannot be written: -EBADF. */
    ro = mkstemp(path);
    ASSERT_GE(ro, 0);
    close(ro);
    ro = open(path, O_RDONLY);
    unlink(path);
    ASSERT_GE(ro, 0);
    ASSERT_NOT_NULL(actx_aio_pwrite(ro, buf, sizeof(buf), 0, io_done, &w));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.ret, -ESPIPE);
    ASSERT_EQ(w.ret, -EBADF);
    close(p[0]);
    close(p[1]);
    close(ro);
}

ACTX_TEST("/aio/fsync/after-writes")
{
    char out[4096];
    struct io w = {0}, f = {0}, r = {0};
    char in[4096];
    int fd = tmpfile_fd();

    memset(out, 'q', sizeof(out));
    ASSERT_NOT_NULL(actx_aio_pwrite(fd, out, sizeof(out), 8192, io_done, &w));
    ASSERT_EQ(ACTX_WAIT_WHILE(w.runs == 0), 0);
    ASSERT_EQ(w.ret, 4096);
    ASSERT_NOT_NULL(actx_aio_fsync(fd, io_done, &f));
    ASSERT_EQ(ACTX_WAIT_WHILE(f.runs == 0), 0);
    ASSERT_EQ(f.ret, 0);
    ASSERT_EQ(f.ctx_id, 0);
    /* The hole before it reads as zeros; the file is 12 KiB long. */
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, sizeof(in), 0, io_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.ret, 4096);
    for (size_t i = 0; i < sizeof(in); i++) {
        ASSERT_EQ(in[i], 0);
    }
    close(fd);
}

/* A synchronous metadata-style read inside a pushed context, as qcow2. */
ACTX_TEST("/aio/sync-read-in-pushed-context")
{
    char out[512], in[512];
    struct io outer = {0}, inner = {0};
    char big[65536];
    int fd = tmpfile_fd();

    memset(out, 'm', sizeof(out));
    ASSERT_EQ(pwrite(fd, out, sizeof(out), 0), (ssize_t)sizeof(out));
    ASSERT_NOT_NULL(actx_aio_pread(fd, big, sizeof(big), 0, io_done, &outer));
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, sizeof(in), 0, io_done, &inner));
    ASSERT_EQ(ACTX_WAIT_WHILE(inner.runs == 0), 0);
    ASSERT_EQ(inner.ret, 512);
    ASSERT_EQ(inner.ctx_id, 1);
    ASSERT_EQ(outer.runs, 0);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(outer.runs == 0), 0);
    ASSERT_EQ(outer.ret, 512);
    ASSERT_EQ(outer.ctx_id, 0);
    ASSERT_EQ(memcmp(in, out, sizeof(in)), 0);
    close(fd);
}
