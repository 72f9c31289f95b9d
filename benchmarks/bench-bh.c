/*
 * bench-bh.c - bottom halves and the context stack, single thread: actx
 * beside a raw run queue, libuv, libevent and GLib.  One scenario per
 * file (bh.h):
 *   bh-burst.c    burst     bh burst x1024
 *   bh-chain.c    chain     bh chain (poll per BH)
 *   bh-pushpop.c  pushpop   push+pop, and the allocation figures
 * This file: main, and the allocation counter the mallocs figures use
 * (malloc/calloc/realloc/memalign calls, counted by wrappers defined here
 * that forward to glibc's __libc_* allocator).
 *
 * ./bench-bh --syscall-check does 1e6 push+pop pairs (and 1e6 BH bursts of
 * one BH) between two getppid() markers and nothing else, so that
 *     strace -f ./bench-bh --syscall-check 2>&1 |
 *         sed -n '/getppid/,/getppid/p'
 * shows every syscall made by the steady state (expected: only the two
 * markers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bh.h"

/* ---------------------------------------------------------------------- */
/* Allocation counting.                                                     */

/*
 * Defining malloc and friends in the executable interposes them for every
 * shared object in the process (libactx included).  They forward to glibc's
 * own allocator, so memory from either side may be freed by the other.
 * Sanitizer builds keep their own allocator: counting is off there.
 */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define BENCH_COUNT_MALLOC 1

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static __thread unsigned long n_allocs
    __attribute__((tls_model("initial-exec")));

void *malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    n_allocs++;
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    n_allocs++;
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    n_allocs++;
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    void *p;

    if (align < sizeof(void *) || (align & (align - 1)) != 0) {
        return EINVAL;
    }
    n_allocs++;
    p = __libc_memalign(align, n);
    if (!p) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}

void *valloc(size_t n)
{
    n_allocs++;
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

unsigned long allocs_now(void)
{
    return n_allocs;
}

const bool bench_count_malloc = true;
#else
unsigned long allocs_now(void)
{
    return 0;
}

const bool bench_count_malloc = false;
#endif

static void nop_cb(void *opaque)
{
    (void)opaque;
}

static int syscall_check(void)
{
    actx_bh *bh;
    unsigned long a0;

    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        return 1;
    }
    bh = actx_bh_new(nop_cb, NULL);
    for (int i = 0; i < 1000; i++) { /* warm-up: fill the free lists */
        actx_push();
        actx_pop();
        actx_bh_schedule(bh);
        actx_bh_poll();
    }
    a0 = allocs_now();
    syscall(SYS_getppid); /* marker: steady state begins */
    for (int i = 0; i < 1000000; i++) {
        actx_push();
        actx_pop();
    }
    for (int i = 0; i < 1000000; i++) {
        actx_bh_schedule(bh);
        actx_bh_poll();
    }
    syscall(SYS_getppid); /* marker: steady state ends */
    a0 = allocs_now() - a0;
    printf("syscall-check: 1e6 push+pop pairs and 1e6 BH schedule+poll "
           "between the two markers; mallocs: %lu\n",
           a0);
    actx_bh_delete(bh);
    return 0;
}

int main(int argc, char **argv)
{
    static bool syscall_check_flag;
    static const bench_option extra[] = {
        {"--syscall-check", NULL,
         "only do 1e6 push+pop and 1e6 BH schedule+poll between two "
         "getppid() markers (run it under strace -f)",
         NULL, &syscall_check_flag},
        {NULL, NULL, NULL, NULL, NULL},
    };
    static const bench_spec spec = {
        .prog = "bench-bh",
        .what = "bottom halves and the context stack on one thread: BH "
                "bursts, a BH chain polled\nper BH, push+pop, mallocs per "
                "operation; beside a raw run queue, libuv,\nlibevent and "
                "GLib.",
        .reps = 5,
        .extra = extra,
        .figures = "burst,chain,pushpop",
        .impls = "actx,raw,uv,libevent,glib",
    };
    bench_opts o;
    bh_sizes z;

    bench_init(&o, &spec, argc, argv);
    if (syscall_check_flag) {
        return syscall_check();
    }
    z.burst_rounds = (long)(2000 * o.scale);
    z.chain_n = (long)(4000000 * o.scale);
    z.pushpop_n = (long)(4000000 * o.scale);
    if (actx_thread_init() < 0) {
        fprintf(stderr, "actx_thread_init failed\n");
        return 1;
    }
#ifdef HAVE_LIBUV
    uv_idle_peer_init();
#endif
#ifdef HAVE_LIBEVENT
    ev_active_peer_init();
#endif
#ifdef HAVE_GLIB
    glib_context_peer_init();
#endif

    printf("bench-bh: %d runs each, interleaved, after one warm-up run; %d "
           "BHs per burst x %ld rounds, chain of %ld, %ld push+pop pairs\n",
           o.reps, BENCH_BH_BURST, z.burst_rounds, z.chain_n, z.pushpop_n);
    bench_group("bh", "bottom halves and contexts (single thread)");
    bh_burst(&z);
    bh_chain(&z);
    bh_pushpop(&z);
    bh_mallocs_per_bh(&z, o.reps);
    printf("\nSyscalls in the steady state: strace -f ./bench-bh "
           "--syscall-check 2>&1 | sed -n '/getppid/,/getppid/p'\n"
           "(expected: the two getppid() markers and nothing between "
           "them)\n");

#ifdef HAVE_LIBUV
    uv_idle_peer_fini();
#endif
#ifdef HAVE_LIBEVENT
    ev_active_peer_fini();
#endif
#ifdef HAVE_GLIB
    glib_context_peer_fini();
#endif
    return bench_finish();
}
