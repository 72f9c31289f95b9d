/*
 * test-uring.c - file AIO through the loop's io_uring (runtime/src/
 * aio-uring.c): the path a loop uses (stats.io_backend, ACTX_IO=pool, a
 * seccomp policy that forbids io_uring), one io_uring_enter per batch,
 * cancellation before and after entering, shutdown with operations in
 * flight, re-homing at pop, completions kept for a context that is not
 * current, errors, short reads, non-seekable fds, pool threads.
 *
 * Every test starts a fresh loop with ACTX_IO unset (the environment is read
 * at each loop's creation), so these run on the ring whatever the runner's
 * environment says; the pool path runs the /aio/ tests (test-aio.c) with
 * ACTX_IO=pool.  They need a kernel that lets this process use io_uring.
 */
#include "test.h"

#include "actx-internal.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define BS 4096

static int tmpfile_fd(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/actx-uring-XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    return fd;
}

/* A file of nblocks blocks; block i is filled with the byte (i * 7 + 1). */
static int data_file(int nblocks)
{
    int fd = tmpfile_fd();
    char b[BS];

    for (int i = 0; i < nblocks; i++) {
        memset(b, (char)(i * 7 + 1), sizeof(b));
        ASSERT_EQ(pwrite(fd, b, sizeof(b), (off_t)i * BS), BS);
    }
    return fd;
}

static bool block_ok(const char *b, int i)
{
    for (int k = 0; k < BS; k++) {
        if (b[k] != (char)(i * 7 + 1)) {
            return false;
        }
    }
    return true;
}

/* A fresh loop on this thread, on the ring. */
static actx__loop *ring_loop(void)
{
    struct actx_stats st;

    unsetenv("ACTX_IO");
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 1);
    /* These tests count enters and SQEs: every read goes on the ring. */
    actx__tls_loop->io_ring_only = true;
    return actx__tls_loop;
}

struct io {
    int runs;
    long ret;
    int ctx_id;
    long *count;
};

static void io_done(void *opaque, long ret)
{
    struct io *io = opaque;

    io->runs++;
    io->ret = ret;
    io->ctx_id = actx_context_id();
    if (io->count) {
        (*io->count)++;
    }
}

static char *dump_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ASSERT_NOT_NULL(f);
    actx_dump(f);
    fclose(f);
    return text;
}

ACTX_TEST("/uring/backend/default-and-env")
{
    struct actx_stats st;
    char *text;

    ring_loop();
    text = dump_text();
    ASSERT_NOT_NULL(strstr(text, "file I/O: io_uring"));
    free(text);

    /* ACTX_IO=pool is read when a loop is created. */
    setenv("ACTX_IO", "pool", 1);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 1); /* this loop already decided */
    actx_thread_shutdown();
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 0); /* no loop */
    ASSERT_EQ(actx_thread_init(), 0);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 0);
    text = dump_text();
    ASSERT_NOT_NULL(strstr(text, "file I/O: worker pool"));
    free(text);
    unsetenv("ACTX_IO");
}

/* Forbid io_uring_setup with err, as a container's seccomp policy does. */
static void forbid_io_uring(int err)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K,
                 SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};

    ASSERT_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ASSERT_EQ(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

struct backend_probe {
    int backend;
    long ret;
};

static void *thread_backend(void *arg)
{
    struct backend_probe *p = arg;
    struct actx_stats st;
    struct io r = {0};
    char buf[BS];
    int fd = data_file(1);

    actx_stats(&st);
    p->backend = st.io_backend;
    ASSERT_NOT_NULL(actx_aio_pread(fd, buf, BS, 0, io_done, &r));
    ASSERT_EQ(actx_flush(), 0);
    p->ret = r.ret;
    ASSERT_TRUE(block_ok(buf, 0));
    close(fd);
    actx_thread_shutdown();
    return NULL;
}

/* Setup fails at the loop's first AIO or at its creation (the process-wide
 * probe): either way the pool does the work, with the same results. */
static void fallback_case(int err)
{
    struct io r = {0}, w = {0}, s = {0}, past = {0};
    struct backend_probe p = {-1, 0};
    struct actx_stats st;
    char in[BS], out[BS];
    pthread_t t;
    int fd = data_file(2);
    char *text;

    unsetenv("ACTX_IO");
    actx_thread_shutdown();
    forbid_io_uring(err);
    ASSERT_EQ(actx_thread_init(), 0);
    memset(out, 'w', sizeof(out));
    ASSERT_NOT_NULL(actx_aio_pwrite(fd, out, BS, BS, io_done, &w));
    ASSERT_NOT_NULL(actx_aio_fsync(fd, io_done, &s));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, BS, BS, io_done, &r));
    ASSERT_NOT_NULL(actx_aio_pread(fd, in, BS, 1 << 20, io_done, &past));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(w.ret, BS);
    ASSERT_EQ(s.ret, 0);
    ASSERT_EQ(r.ret, BS);
    ASSERT_EQ(past.ret, 0);
    ASSERT_EQ(memcmp(in, out, BS), 0);
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 0);
    ASSERT_EQ(actx__tls_loop->uring, NULL);
    text = dump_text();
    ASSERT_NOT_NULL(strstr(text, "file I/O: worker pool"));
    free(text);
    /* A loop created from now on knows at once. */
    ASSERT_EQ(pthread_create(&t, NULL, thread_backend, &p), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_EQ(p.backend, 0);
    ASSERT_EQ(p.ret, BS);
    close(fd);
}

ACTX_TEST("/uring/backend/seccomp-enosys-falls-back-to-pool")
{
    fallback_case(ENOSYS);
}

ACTX_TEST("/uring/backend/seccomp-eperm-falls-back-to-pool")
{
    fallback_case(EPERM);
}

/* 64 submissions made before a poll go in with one io_uring_enter; done
 * callbacks that refill the pipeline are entered once per iteration. */
struct refill {
    int fd;
    int left;
    long done;
    char (*bufs)[BS];
    int bad;
};

static void refill_done(void *opaque, long ret);

struct refill_slot {
    struct refill *r;
    int i;
    int blk;
};

static void refill_submit(struct refill_slot *s)
{
    s->blk = (s->blk * 17 + 5) % 64;
    ASSERT_NOT_NULL(actx_aio_pread(s->r->fd, s->r->bufs[s->i], BS,
                                   (off_t)s->blk * BS, refill_done, s));
}

static void refill_done(void *opaque, long ret)
{
    struct refill_slot *s = opaque;

    s->r->done++;
    if (ret != BS || !block_ok(s->r->bufs[s->i], s->blk)) {
        s->r->bad++;
    }
    if (s->r->left > 0) {
        s->r->left--;
        refill_submit(s);
    }
}

ACTX_TEST("/uring/batch/one-enter-per-iteration")
{
    actx__loop *loop = ring_loop();
    static char bufs[64][BS];
    struct refill_slot slots[64];
    struct refill r = {data_file(64), 64, 0, bufs, 0};
    unsigned long base;

    ASSERT_NOT_NULL(actx_aio_pread(r.fd, bufs[0], BS, 0, NULL, NULL));
    ASSERT_EQ(actx_flush(), 0); /* the ring exists and the file is cached */
    base = loop->io_submits;
    for (int i = 0; i < 64; i++) {
        slots[i] = (struct refill_slot){&r, i, i};
        refill_submit(&slots[i]);
    }
    ASSERT_EQ(loop->io_submits, base); /* nothing entered yet */
    ASSERT_EQ(loop->io_unsubmitted, 64);
    ASSERT_EQ(actx_poll(false), 0); /* the end of an iteration enters them */
    ASSERT_EQ(loop->io_submits, base + 1);
    ASSERT_EQ(loop->io_unsubmitted, 0);
    /* Their done callbacks submit 64 more: one iteration, one enter. */
    ASSERT_EQ(ACTX_WAIT_WHILE(r.done < 64), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.done, 128);
    ASSERT_EQ(r.bad, 0);
    ASSERT_LE(loop->io_submits, base + 3);
    close(r.fd);
}

ACTX_TEST("/uring/cancel/before-enter")
{
    actx__loop *loop = ring_loop();
    struct io a = {0}, b = {0};
    char ba[BS], bb[BS];
    int fd = data_file(2);
    actx_req *ra, *rb;

    memset(ba, 0x55, sizeof(ba));
    ASSERT_EQ(actx_push(), 1);
    ra = actx_aio_pread(fd, ba, BS, 0, io_done, &a);
    rb = actx_aio_pread(fd, bb, BS, BS, io_done, &b);
    ASSERT_NOT_NULL(ra);
    ASSERT_NOT_NULL(rb);
    ASSERT_EQ(actx_req_cancel(ra), 0);
    ASSERT_EQ(actx_req_cancel(ra), -EBUSY); /* already cancelled */
    ASSERT_EQ(a.runs, 0);                   /* never inline */
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(a.runs, 1);
    ASSERT_EQ(a.ret, -ECANCELED);
    ASSERT_EQ(a.ctx_id, 1);
    ASSERT_EQ(ba[0], 0x55); /* it never ran */
    ASSERT_EQ(b.ret, BS);
    ASSERT_TRUE(block_ok(bb, 1));
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(loop->st.outstanding, 0);
    close(fd);
}

ACTX_TEST("/uring/cancel/after-enter-finished-is-ebusy")
{
    actx__loop *loop = ring_loop();
    struct io a = {0};
    char ba[BS];
    int fd = data_file(1);
    actx_req *ra;
    unsigned long base;

    ra = actx_aio_pread(fd, ba, BS, 0, io_done, &a);
    ASSERT_NOT_NULL(ra);
    base = loop->io_submits;
    actx_poll(false); /* entered; the cached read completed inside */
    ASSERT_EQ(loop->io_submits, base + 1);
    ASSERT_EQ(a.runs, 0);
    ASSERT_EQ(actx_req_cancel(ra), -EBUSY);
    ASSERT_EQ(ACTX_WAIT_WHILE(a.runs == 0), 0);
    ASSERT_EQ(a.ret, BS);
    ASSERT_TRUE(block_ok(ba, 0));
    close(fd);
}

/* Reads that go to the kernel's workers (not cached): whichever way each
 * cancel goes, 0 means done gets -ECANCELED, -EBUSY means the read ran. */
ACTX_TEST_TIMEOUT("/uring/cancel/in-flight-uncached", 120)
{
    enum { N = 256 };
    static char bufs[N][BS];
    struct io io[N];
    actx_req *req[N];
    int rc[N];
    int fd = data_file(N), cancelled = 0;

    ring_loop();
    ASSERT_EQ(fdatasync(fd), 0);
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    memset(io, 0, sizeof(io));
    for (int i = 0; i < N; i++) {
        req[i] =
            actx_aio_pread(fd, bufs[i], BS, (off_t)i * BS, io_done, &io[i]);
        ASSERT_NOT_NULL(req[i]);
    }
    actx_poll(false); /* entered */
    for (int i = N - 1; i >= 0; i--) {
        rc[i] = actx_req_cancel(req[i]);
        ASSERT_TRUE(rc[i] == 0 || rc[i] == -EBUSY);
        cancelled += rc[i] == 0;
    }
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(io[i].runs, 1);
        if (rc[i] == 0) {
            ASSERT_EQ(io[i].ret, -ECANCELED);
        } else {
            ASSERT_EQ(io[i].ret, BS);
            ASSERT_TRUE(block_ok(bufs[i], i));
        }
    }
    printf("  %d of %d entered reads cancelled before they started\n",
           cancelled, N);
    close(fd);
}

/* O_DSYNC writes to one file queue in the kernel one behind the other (its
 * workers serialise buffered writes per inode): the same rule holds. */
ACTX_TEST_TIMEOUT("/uring/cancel/in-flight-dsync-writes", 120)
{
    enum { N = 64 };
    static char bufs[N][BS];
    struct io io[N];
    actx_req *req[N];
    int rc[N];
    char path[] = "/tmp/actx-uring-dsync-XXXXXX", b[BS];
    int fd = mkstemp(path), wfd, cancelled = 0;

    ASSERT_GE(fd, 0);
    wfd = open(path, O_WRONLY | O_DSYNC);
    unlink(path);
    ASSERT_GE(wfd, 0);
    ring_loop();
    memset(io, 0, sizeof(io));
    for (int i = 0; i < N; i++) {
        memset(bufs[i], (char)(i * 7 + 1), BS);
        req[i] =
            actx_aio_pwrite(wfd, bufs[i], BS, (off_t)i * BS, io_done, &io[i]);
        ASSERT_NOT_NULL(req[i]);
    }
    actx_poll(false); /* entered */
    for (int i = N - 1; i >= 0; i--) {
        rc[i] = actx_req_cancel(req[i]);
        ASSERT_TRUE(rc[i] == 0 || rc[i] == -EBUSY);
        cancelled += rc[i] == 0;
    }
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(io[i].runs, 1);
        if (rc[i] == 0) {
            ASSERT_EQ(io[i].ret, -ECANCELED);
        } else {
            ASSERT_EQ(io[i].ret, BS);
            ASSERT_EQ(pread(fd, b, BS, (off_t)i * BS), BS);
            ASSERT_TRUE(block_ok(b, i));
        }
    }
    printf("  %d of %d entered writes cancelled before they started\n",
           cancelled, N);
    close(wfd);
    close(fd);
}

static _Atomic long refused;

static void count_refused(actx_done_fn *done, void *opaque, long ret)
{
    (void)done, (void)opaque, (void)ret;
    refused++;
}

/* Work accepted before shutdown runs to its end (the writes are in the
 * file, the reads filled their buffers) before the ring closes; each
 * request either ran its done or was refused and counted, never both. */
ACTX_TEST_TIMEOUT("/uring/shutdown/with-operations-in-flight", 120)
{
    enum { N = 128 };
    static char rbufs[N][BS], wbufs[N][BS];
    struct io rio[N], wio[N];
    struct actx_stats st;
    long runs = 0;
    int rfd = data_file(N), wfd = tmpfile_fd();
    char b[BS];

    ring_loop();
    ASSERT_EQ(fdatasync(rfd), 0);
    ASSERT_EQ(posix_fadvise(rfd, 0, 0, POSIX_FADV_DONTNEED), 0);
    actx_set_refused_hook(count_refused);
    memset(rio, 0, sizeof(rio));
    memset(wio, 0, sizeof(wio));
    ASSERT_EQ(actx_push(), 1);
    for (int i = 0; i < N; i++) {
        memset(wbufs[i], (char)(i * 7 + 1), BS);
        rio[i].count = &runs;
        wio[i].count = &runs;
        ASSERT_NOT_NULL(
            actx_aio_pread(rfd, rbufs[i], BS, (off_t)i * BS, io_done, &rio[i]));
        ASSERT_NOT_NULL(actx_aio_pwrite(wfd, wbufs[i], BS, (off_t)i * BS,
                                        io_done, &wio[i]));
        if (i == N / 2) {
            actx_poll(false); /* half entered now, half at shutdown */
        }
    }
    actx_thread_shutdown();
    actx_stats(&st);
    ASSERT_EQ(runs + refused, 2 * N);
    ASSERT_EQ((long)st.posts_refused, refused);
    for (int i = 0; i < N; i++) {
        ASSERT_LE(rio[i].runs + wio[i].runs, 2);
        ASSERT_TRUE(block_ok(rbufs[i], i));
        ASSERT_EQ(pread(wfd, b, BS, (off_t)i * BS), BS);
        ASSERT_TRUE(block_ok(b, i));
        if (rio[i].runs) {
            ASSERT_EQ(rio[i].ret, BS);
            ASSERT_EQ(rio[i].ctx_id, 0); /* re-homed to the root at pop */
        }
    }
    actx_set_refused_hook(NULL);
    close(rfd);
    close(wfd);
}

/* A request made in a pushed context and still on the ring at pop belongs
 * to the parent; a completion reaped while another context is current
 * waits for its own. */
ACTX_TEST("/uring/contexts/rehome-at-pop-and-deferred")
{
    actx__loop *loop = ring_loop();
    struct io inner = {0}, outer = {0}, child = {0};
    char b1[BS], b2[BS], b3[BS];
    int fd = data_file(3);

    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_aio_pread(fd, b1, BS, 0, io_done, &inner));
    ASSERT_EQ(actx_pop(), 0); /* not even entered yet */
    ASSERT_EQ(ACTX_WAIT_WHILE(inner.runs == 0), 0);
    ASSERT_EQ(inner.ctx_id, 0);
    ASSERT_EQ(inner.ret, BS);
    ASSERT_TRUE(block_ok(b1, 0));

    ASSERT_NOT_NULL(actx_aio_pread(fd, b2, BS, BS, io_done, &outer));
    ASSERT_EQ(actx_push(), 1);
    ASSERT_NOT_NULL(actx_aio_pread(fd, b3, BS, 2 * BS, io_done, &child));
    ASSERT_EQ(ACTX_WAIT_WHILE(child.runs == 0), 0);
    ASSERT_EQ(child.ctx_id, 1);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(outer.runs, 0); /* reaped with child's, kept for the root */
    ASSERT_GE(loop->st.completions_deferred, 1);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(outer.runs == 0), 0);
    ASSERT_EQ(outer.ctx_id, 0);
    ASSERT_TRUE(block_ok(b2, 1));
    ASSERT_TRUE(block_ok(b3, 2));
    close(fd);
}

ACTX_TEST("/uring/errors/ebadf-espipe-short-read")
{
    actx__loop *loop = ring_loop();
    struct io bad = {0}, badw = {0}, bads = {0}, pr = {0}, pw = {0}, eof = {0},
              past = {0};
    char buf[BS] = {0};
    int fd = data_file(1), p[2], dead = 1000;
    unsigned long base;

    while (fcntl(dead, F_GETFD) != -1) {
        dead++;
    }
    base = loop->io_submits;
    ASSERT_NOT_NULL(actx_aio_pread(dead, buf, BS, 0, io_done, &bad));
    ASSERT_NOT_NULL(actx_aio_pwrite(dead, buf, BS, 0, io_done, &badw));
    ASSERT_NOT_NULL(actx_aio_fsync(dead, io_done, &bads));
    ASSERT_NOT_NULL(actx_aio_pread(fd, buf, BS, BS - 100, io_done, &eof));
    ASSERT_NOT_NULL(actx_aio_pread(fd, buf, BS, 10 * BS, io_done, &past));
    /* A number that is not open goes to the pool, whose call says EBADF
     * even if the runtime takes the number meanwhile (ownfd.c). */
    ASSERT_EQ(loop->io_unsubmitted, 2);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(loop->io_submits, base + 1); /* both reads on the ring */
    ASSERT_EQ(bad.ret, -EBADF);
    ASSERT_EQ(badw.ret, -EBADF);
    ASSERT_EQ(bads.ret, -EBADF);
    ASSERT_EQ(eof.ret, 100);
    ASSERT_EQ(past.ret, 0);
    /* A pipe has no offsets: -ESPIPE, as pread(2) says (not a stream read). */
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(write(p[1], "abc", 3), 3);
    ASSERT_NOT_NULL(actx_aio_pread(p[0], buf, BS, 0, io_done, &pr));
    ASSERT_NOT_NULL(actx_aio_pwrite(p[1], buf, 3, 0, io_done, &pw));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(pr.ret, -ESPIPE);
    ASSERT_EQ(pw.ret, -ESPIPE);
    close(p[0]);
    close(p[1]);
    close(fd);
}

struct pool_io {
    int fd;
    int backend;
    long ret;
    bool ok;
};

static long pool_reader(void *opaque)
{
    struct pool_io *a = opaque;
    struct actx_stats st;
    struct io r = {0};
    char buf[BS];

    actx_stats(&st);
    a->backend = st.io_backend;
    ASSERT_NOT_NULL(actx_aio_pread(a->fd, buf, BS, 0, io_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    a->ret = r.ret;
    a->ok = block_ok(buf, 0);
    return 7;
}

/* A work function's thread has a loop of its own, on its own ring. */
ACTX_TEST("/uring/pool-thread-waits-on-its-own-ring")
{
    struct pool_io a = {data_file(1), -1, 0, false};

    ring_loop();
    ASSERT_NOT_NULL(actx_submit(pool_reader, NULL, &a));
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(a.backend, 1);
    ASSERT_EQ(a.ret, BS);
    ASSERT_TRUE(a.ok);
    close(a.fd);
}

/* fork with ring operations in flight: the child leaves the parent's ring
 * alone (its memory is shared) and does its own file AIO on the pool; the
 * parent's operations complete in the parent. */
ACTX_TEST("/uring/fork/child-uses-the-pool")
{
    enum { N = 32 };
    static char bufs[N][BS];
    struct io io[N];
    int fd = data_file(N), status;
    pid_t pid;

    ring_loop();
    memset(io, 0, sizeof(io));
    for (int i = 0; i < N; i++) {
        ASSERT_NOT_NULL(
            actx_aio_pread(fd, bufs[i], BS, (off_t)i * BS, io_done, &io[i]));
        if (i == N / 2) {
            actx_poll(false); /* half entered, half still queued */
        }
    }
    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        struct actx_stats st;
        struct io r = {0};
        char b[BS];

        actx_stats(&st);
        if (st.io_backend != 0) {
            _exit(2);
        }
        if (!actx_aio_pread(fd, b, BS, 3 * BS, io_done, &r)) {
            _exit(3);
        }
        if (ACTX_WAIT_WHILE(r.runs == 0) != 0 || r.ret != BS ||
            !block_ok(b, 3)) {
            _exit(4);
        }
        actx_thread_shutdown();
        _exit(0);
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_EQ(actx_flush(), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(io[i].runs, 1);
        ASSERT_EQ(io[i].ret, BS);
        ASSERT_TRUE(block_ok(bufs[i], i));
    }
    close(fd);
}

/* Far more operations in flight than the CQ has entries: the kernel keeps
 * the overflow, and the loop must still see every completion. */
ACTX_TEST_TIMEOUT("/uring/batch/more-in-flight-than-the-cq-holds", 120)
{
    enum { N = 4096 };
    static char bufs[N][BS];
    static struct io io[N];
    int fd = data_file(N);

    ring_loop();
    /* Cached: they complete inside the enters; then uncached: they
     * complete later, all at once, while nobody polls. */
    for (int round = 0; round < 2; round++) {
        memset(io, 0, sizeof(io));
        memset(bufs, 0, sizeof(bufs));
        if (round == 1) {
            ASSERT_EQ(fdatasync(fd), 0);
            ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
        }
        for (int i = 0; i < N; i++) {
            ASSERT_NOT_NULL(actx_aio_pread(fd, bufs[i], BS, (off_t)i * BS,
                                           io_done, &io[i]));
        }
        actx_poll(false); /* enter the last ones */
        if (round == 1) {
            usleep(200 * 1000);
        }
        ASSERT_EQ(actx_flush(), 0);
        for (int i = 0; i < N; i++) {
            ASSERT_EQ(io[i].runs, 1);
            ASSERT_EQ(io[i].ret, BS);
            ASSERT_TRUE(block_ok(bufs[i], i));
        }
    }
    close(fd);
}

/* A ring request is completed by the ring: completing it by hand is
 * refused (before and after), and its done runs once. */
ACTX_TEST("/uring/complete-by-hand-refused")
{
    struct io r = {0};
    char b[BS];
    int fd = data_file(1);
    actx_req *req;

    ring_loop();
    req = actx_aio_pread(fd, b, BS, 0, io_done, &r);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_complete(req, 5), -EINVAL);
    /* Entered at the end of the iteration; the cached read completed in
     * the enter and was reaped into the queue: completed, done not run. */
    actx_poll(false);
    ASSERT_EQ(r.runs, 0);
    ASSERT_EQ(actx_req_complete(req, 5), -EALREADY);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(r.runs, 1);
    ASSERT_EQ(r.ret, BS);
    close(fd);
}

/*
 * Buffered reads done inline at flush time (aio-uring.c, "Buffered reads:
 * inline or on the ring?").  A loop that has measured nothing yet tries
 * inline first, so the first flush of a page-cached read reads inline.
 */
static actx__loop *inline_loop(void)
{
    actx__loop *loop = ring_loop();

    loop->io_ring_only = false;
    return loop;
}

/* Done inline: no enter; done runs at the next poll, in the context the
 * read was made in, not in the one current at the flush. */
ACTX_TEST("/uring/inline/cached-read-completes-in-its-context")
{
    actx__loop *loop = inline_loop();
    int fd = data_file(4), outer;
    struct io io = {0};
    char b[BS];
    unsigned long base;

    ASSERT_GT(actx_push(), 0);
    outer = actx_context_id();
    ASSERT_NOT_NULL(actx_aio_pread(fd, b, BS, 2 * BS, io_done, &io));
    base = loop->io_submits;
    ASSERT_GT(actx_push(), 0);
    actx_poll(false); /* its end flushes: the read is done inline */
    ASSERT_EQ(loop->io_submits, base);
    ASSERT_EQ(loop->io_unsubmitted, 0);
    ASSERT_EQ(loop->io_inflight, 0);
    actx_poll(false);
    ASSERT_EQ(io.runs, 0); /* queued for the outer context */
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(actx_poll(false), 1);
    ASSERT_EQ(io.runs, 1);
    ASSERT_EQ(io.ret, BS);
    ASSERT_EQ(io.ctx_id, outer);
    ASSERT_TRUE(block_ok(b, 2));
    ASSERT_EQ(actx_pop(), 0);
    close(fd);
}

/* A read past the end is as final inline as on the ring: 0. */
ACTX_TEST("/uring/inline/read-at-end-of-file-is-zero")
{
    int fd = data_file(1);
    struct io io = {0};
    char b[BS];

    inline_loop();
    ASSERT_NOT_NULL(actx_aio_pread(fd, b, BS, 5 * BS, io_done, &io));
    ASSERT_EQ(ACTX_WAIT_WHILE(io.runs == 0), 0);
    ASSERT_EQ(io.ret, 0);
    close(fd);
}

/* Not in the page cache: the inline try fails (EAGAIN) and the ring reads
 * it; the data is right either way. */
ACTX_TEST("/uring/inline/uncached-read-goes-to-the-ring")
{
    actx__loop *loop = inline_loop();
    int fd = data_file(64);
    struct io io = {0};
    char b[BS];
    unsigned long base;

    ASSERT_EQ(fdatasync(fd), 0);
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    base = loop->io_submits;
    ASSERT_NOT_NULL(actx_aio_pread(fd, b, BS, 40 * BS, io_done, &io));
    ASSERT_EQ(ACTX_WAIT_WHILE(io.runs == 0), 0);
    ASSERT_EQ(io.ret, BS);
    ASSERT_TRUE(block_ok(b, 40));
    ASSERT_GT(loop->io_submits, base);
    close(fd);
}

/* O_DIRECT reads are never done inline (RWF_NOWAIT would not keep them
 * from waiting for the device): each flush enters the ring. */
ACTX_TEST("/uring/inline/o-direct-always-on-the-ring")
{
    actx__loop *loop = inline_loop();
    int fd = data_file(16), dfd;
    char path[64];
    void *b;
    unsigned long base;

    ASSERT_EQ(fsync(fd), 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    dfd = open(path, O_RDONLY | O_DIRECT);
    if (dfd < 0) {
        /* tmpfs and some others refuse O_DIRECT: then try the cwd. */
        ASSERT_EQ(errno, EINVAL);
        close(fd);
        fd = -1;
        dfd = open(".", O_TMPFILE | O_RDWR | O_DIRECT, 0600);
        ASSERT_GE(dfd, 0);
        ASSERT_EQ(posix_memalign(&b, BS, BS), 0);
        for (int i = 0; i < 16; i++) {
            memset(b, (char)(i * 7 + 1), BS);
            ASSERT_EQ(pwrite(dfd, b, BS, (off_t)i * BS), BS);
        }
        free(b);
    }
    ASSERT_EQ(posix_memalign(&b, BS, BS), 0);
    for (int i = 0; i < 8; i++) {
        struct io io = {0};

        base = loop->io_submits;
        ASSERT_NOT_NULL(
            actx_aio_pread(dfd, b, BS, (off_t)(i + 3) * BS, io_done, &io));
        ASSERT_EQ(ACTX_WAIT_WHILE(io.runs == 0), 0);
        ASSERT_EQ(io.ret, BS);
        ASSERT_TRUE(block_ok(b, i + 3));
        ASSERT_EQ(loop->io_submits, base + 1);
    }
    free(b);
    close(dfd);
    if (fd >= 0) {
        close(fd);
    }
}

/* A read cancelled before the flush is not read inline: -ECANCELED, and
 * its buffer is left alone. */
ACTX_TEST("/uring/inline/cancelled-before-flush-is-not-read")
{
    int fd = data_file(2);
    struct io io = {0};
    char b[BS];
    actx_req *req;

    inline_loop();
    memset(b, 0x5a, sizeof(b));
    req = actx_aio_pread(fd, b, BS, BS, io_done, &io);
    ASSERT_NOT_NULL(req);
    ASSERT_EQ(actx_req_cancel(req), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(io.runs == 0), 0);
    ASSERT_EQ(io.ret, -ECANCELED);
    for (int k = 0; k < BS; k++) {
        ASSERT_EQ(b[k], 0x5a);
    }
    close(fd);
}

/* Many batches of every size, mixed with writes: whichever path each
 * batch takes, every read gets its own block and every write lands. */
ACTX_TEST("/uring/inline/mixed-batches-all-complete")
{
    enum { N = 300 };
    static char bufs[N][BS];
    static char wbuf[BS];
    int fd = data_file(64);
    long done = 0;
    struct io *io = calloc(N, sizeof(*io));

    ASSERT_NOT_NULL(io);
    inline_loop();
    memset(wbuf, 0x11, sizeof(wbuf));
    for (int i = 0, batch = 1; i < N; batch = batch * 2 % 127 + 1) {
        for (int k = 0; k < batch && i < N; k++, i++) {
            io[i].count = &done;
            if (i % 10 == 9) {
                ASSERT_NOT_NULL(actx_aio_pwrite(fd, wbuf, BS, (off_t)70 * BS,
                                                io_done, &io[i]));
            } else {
                ASSERT_NOT_NULL(actx_aio_pread(
                    fd, bufs[i], BS, (off_t)(i % 64) * BS, io_done, &io[i]));
            }
        }
        actx_poll(false);
    }
    ASSERT_EQ(ACTX_WAIT_WHILE(done < N), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(io[i].runs, 1);
        ASSERT_EQ(io[i].ret, BS);
        if (i % 10 != 9) {
            ASSERT_TRUE(block_ok(bufs[i], i % 64));
        }
    }
    free(io);
    close(fd);
}

/* The pool path (ACTX_IO=pool) reads a page-cached block inline too, but
 * never an O_DIRECT one, which would keep the loop waiting for the device:
 * that one goes to the pool (whose size is 0 until its first use). */
static void pool_loop(void)
{
    struct actx_stats st;

    setenv("ACTX_IO", "pool", 1);
    actx_thread_shutdown();
    ASSERT_EQ(actx_thread_init(), 0);
    unsetenv("ACTX_IO");
    actx_stats(&st);
    ASSERT_EQ(st.io_backend, 0);
}

static int pool_size_now(void)
{
    struct actx_pool_stats ps;

    memset(&ps, 0, sizeof(ps));
    actx_pool_stats(&ps);
    return ps.size;
}

ACTX_TEST("/aio/pool-path/cached-read-inline-o-direct-to-the-pool")
{
    int fd = data_file(8), dfd;
    char path[64];
    struct io io = {0};
    char b[BS];
    void *db;

    pool_loop();
    ASSERT_EQ(pool_size_now(), 0);
    ASSERT_NOT_NULL(actx_aio_pread(fd, b, BS, 3 * BS, io_done, &io));
    ASSERT_EQ(ACTX_WAIT_WHILE(io.runs == 0), 0);
    ASSERT_EQ(io.ret, BS);
    ASSERT_TRUE(block_ok(b, 3));
    ASSERT_EQ(pool_size_now(), 0); /* read inline: the pool never started */

    ASSERT_EQ(fsync(fd), 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    dfd = open(path, O_RDONLY | O_DIRECT);
    ASSERT_GE(dfd, 0);
    ASSERT_EQ(posix_memalign(&db, BS, BS), 0);
    memset(&io, 0, sizeof(io));
    ASSERT_NOT_NULL(actx_aio_pread(dfd, db, BS, 5 * BS, io_done, &io));
    ASSERT_EQ(ACTX_WAIT_WHILE(io.runs == 0), 0);
    ASSERT_EQ(io.ret, BS);
    ASSERT_TRUE(block_ok(db, 5));
    ASSERT_GT(pool_size_now(), 0); /* the pool read it */
    free(db);
    close(dfd);
    close(fd);
}

/* Cancelling a request queued behind others takes only that one. */
ACTX_TEST("/uring/cancel/before-enter-behind-others")
{
    struct io a = {0}, b = {0}, c = {0};
    char ba[BS], bb[BS], bc[BS];
    int fd = data_file(3);
    actx_req *rb;

    ring_loop();
    memset(bb, 0x55, sizeof(bb));
    ASSERT_NOT_NULL(actx_aio_pread(fd, ba, BS, 0, io_done, &a));
    rb = actx_aio_pread(fd, bb, BS, BS, io_done, &b);
    ASSERT_NOT_NULL(rb);
    ASSERT_NOT_NULL(actx_aio_pread(fd, bc, BS, 2 * BS, io_done, &c));
    ASSERT_EQ(actx_req_cancel(rb), 0);
    ASSERT_EQ(actx_flush(), 0);
    ASSERT_EQ(a.runs, 1);
    ASSERT_EQ(a.ret, BS);
    ASSERT_TRUE(block_ok(ba, 0));
    ASSERT_EQ(b.runs, 1);
    ASSERT_EQ(b.ret, -ECANCELED);
    ASSERT_EQ(bb[0], 0x55);
    ASSERT_EQ(c.runs, 1);
    ASSERT_EQ(c.ret, BS);
    ASSERT_TRUE(block_ok(bc, 2));
    close(fd);
}
