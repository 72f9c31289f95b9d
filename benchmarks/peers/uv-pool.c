/* uv-pool.c - libuv's thread pool: null jobs and reads (uv-pool.h). */
#include "uv-pool.h"

#ifdef HAVE_LIBUV
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "harness/harness.h"
#include "raw-pread.h" /* BENCH_BS */

static long u_left, u_done;
static uint64_t u_seed = 1181783497276652981ull;

static void uv_null_work(uv_work_t *w)
{
    (void)w;
}

static void uv_null_after(uv_work_t *w, int status)
{
    (void)status;
    u_done++;
    if (u_left > 0) {
        u_left--;
        uv_queue_work(uv_default_loop(), w, uv_null_work, uv_null_after);
    }
}

double uv_pool_null(int window, long total)
{
    uv_work_t *w = calloc((size_t)window, sizeof(*w));
    uint64_t t0;

    u_left = total - window;
    u_done = 0;
    t0 = bench_now_ns();
    for (int i = 0; i < window; i++) {
        uv_queue_work(uv_default_loop(), &w[i], uv_null_work, uv_null_after);
    }
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    if (u_done != total) {
        abort();
    }
    free(w);
    return total / ((bench_now_ns() - t0) / 1e9);
}

struct uv_io {
    uv_fs_t req;
    uv_buf_t buf;
};

static int io_fd;
static long io_blocks;

static off_t next_off(void)
{
    return (off_t)(bench_rnd(&u_seed) % io_blocks) * BENCH_BS;
}

static void uv_io_cb(uv_fs_t *req)
{
    struct uv_io *io = (struct uv_io *)req;

    if (req->result != BENCH_BS) {
        fprintf(stderr, "uv_fs_read: %zd\n", req->result);
        abort();
    }
    uv_fs_req_cleanup(req);
    u_done++;
    if (u_left > 0) {
        u_left--;
        uv_fs_read(uv_default_loop(), &io->req, io_fd, &io->buf, 1, next_off(),
                   uv_io_cb);
    }
}

double uv_pool_preads(int fd, long blocks, int window, long total)
{
    struct uv_io *io = calloc((size_t)window, sizeof(*io));
    char *bufs = aligned_alloc(4096, (size_t)window * BENCH_BS);
    uint64_t t0;

    io_fd = fd;
    io_blocks = blocks;
    u_left = total - window;
    u_done = 0;
    t0 = bench_now_ns();
    for (int i = 0; i < window; i++) {
        io[i].buf = uv_buf_init(bufs + (size_t)i * BENCH_BS, BENCH_BS);
        uv_fs_read(uv_default_loop(), &io[i].req, fd, &io[i].buf, 1, next_off(),
                   uv_io_cb);
    }
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    if (u_done != total) {
        abort();
    }
    free(io);
    free(bufs);
    return total / ((bench_now_ns() - t0) / 1e9);
}
#endif
