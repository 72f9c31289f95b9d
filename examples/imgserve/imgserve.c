/*
 * imgserve - a small disk-image service on actx, the 2009 scenario in full.
 *
 * The image is a file with a two-level table, like qcow2: a header, an L1
 * table (kept in memory) pointing at L2 tables (read from the file on every
 * request) that map each virtual 4 KiB block to a cluster of the file.
 *
 * Service threads each run their own loop.  Client threads post read and
 * write requests to them with actx_ctx_call() and get the replies back the
 * same way.  A service thread handles a request as a block driver would:
 *
 *     actx_push();                                  synchronous metadata
 *     actx_aio_pread(fd, &entry, 8, l2 + i * 8, ...);   lookup: read the
 *     ACTX_WAIT_WHILE(!lookup.done);                L2 entry and wait
 *     actx_pop();
 *     actx_aio_pread/pwrite(fd, buf, 4096, entry, data_done, req);   async
 *
 * Meanwhile completions of other requests' data I/O keep arriving from the
 * pool, and new requests keep arriving from clients.  While the lookup
 * waits they must not run (they would re-enter the handler): they are
 * deferred to the root context and run after the pop.  The program checks
 * that invariant on every callback (a callback that finds a lookup in
 * progress on its thread is a violation), counts the deferred completions,
 * and verifies the data by reading back every block that was written.
 *
 * A lookup may be given a deadline (--lookup-timeout MS): it is pushed with
 * actx_push_deadline(), and a wait that gives up (-ETIMEDOUT) cancels what
 * the lookup context still has (actx_cancel_context(), which also waits
 * for what cannot be cancelled, so the lookup's state may live on the
 * stack), then pops.  A lookup that still completed is used; one that was
 * cancelled is answered -ETIMEDOUT, which the client counts (and retries
 * when verifying).  --slow-lookups N makes every Nth lookup of a service
 * thread a pool job that sleeps twice the timeout first, so that timeouts
 * happen: the run then checks that some were counted.  With
 * --pool-threads 1 slow lookups of different service threads queue behind
 * each other, and the queued ones are cancelled before they start.
 *
 * Usage: imgserve [--threads N] [--clients N] [--requests N]
 *                 [--image-size SIZE[K|M|G]] [--window N]
 *                 [--lookup-timeout MS] [--slow-lookups N]
 *                 [--pool-threads N]
 * Exit status 0 only if every check passed.
 */
#define _GNU_SOURCE
#include <actx.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096
#define L2_ENTRIES (BLK / 8)
#define MAGIC 0x3156474d49585441ull /* "ATXIMGV1" */

/* ------------------------------------------------------------------------ */
/* The image.                                                                */

struct header {
    uint64_t magic;
    uint64_t nblocks;   /* virtual size in blocks */
    uint64_t l1_offset; /* file offset of the L1 table */
    uint64_t l1_entries;
};

static struct {
    char dir[256], path[300];
    int fd;
    uint64_t nblocks;
    uint64_t *l1; /* in memory: L2 table offsets */
    uint64_t l1_entries;
} img = {.fd = -1};

static void die(const char *what)
{
    fprintf(stderr, "imgserve: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void xpwrite(const void *buf, size_t n, off_t off)
{
    if (pwrite(img.fd, buf, n, off) != (ssize_t)n) {
        die("writing the image");
    }
}

/*
 * Create the image: header, L1, L2 tables, then data clusters in a
 * shuffled order (virtual block v lives in cluster perm[v]), so that the
 * mapping is not the identity and a wrong lookup reads the wrong block.
 */
static void image_create(uint64_t size)
{
    const char *tmp = getenv("TMPDIR");
    uint64_t nl2, data_start, *perm, *l2;
    struct header h;
    unsigned seed = 2009;

    snprintf(img.dir, sizeof(img.dir), "%s/imgserve-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(img.dir)) {
        die("mkdtemp");
    }
    snprintf(img.path, sizeof(img.path), "%s/disk.img", img.dir);
    img.fd = open(img.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (img.fd < 0) {
        die("creating the image");
    }

    img.nblocks = size / BLK;
    nl2 = (img.nblocks + L2_ENTRIES - 1) / L2_ENTRIES;
    img.l1_entries = nl2;
    h.magic = MAGIC;
    h.nblocks = img.nblocks;
    h.l1_offset = BLK;
    h.l1_entries = nl2;
    /* Header in cluster 0, L1 from cluster 1, then the L2 tables. */
    {
        uint64_t l1_clusters = (nl2 * 8 + BLK - 1) / BLK;
        uint64_t l2_start = BLK * (1 + l1_clusters);

        data_start = l2_start + nl2 * BLK;
        img.l1 = calloc(nl2, 8);
        for (uint64_t i = 0; i < nl2; i++) {
            img.l1[i] = l2_start + i * BLK;
        }
    }
    perm = malloc(img.nblocks * sizeof(*perm));
    l2 = calloc(L2_ENTRIES, 8);
    if (!img.l1 || !perm || !l2) {
        die("malloc");
    }
    for (uint64_t i = 0; i < img.nblocks; i++) {
        perm[i] = i;
    }
    for (uint64_t i = img.nblocks - 1; i > 0; i--) {
        uint64_t j = ((uint64_t)rand_r(&seed) << 31 ^ rand_r(&seed)) % (i + 1);
        uint64_t t = perm[i];

        perm[i] = perm[j];
        perm[j] = t;
    }
    xpwrite(&h, sizeof(h), 0);
    xpwrite(img.l1, nl2 * 8, BLK);
    for (uint64_t t = 0; t < nl2; t++) {
        memset(l2, 0, BLK);
        for (uint64_t k = 0; k < L2_ENTRIES; k++) {
            uint64_t v = t * L2_ENTRIES + k;

            if (v < img.nblocks) {
                l2[k] = data_start + perm[v] * BLK;
            }
        }
        xpwrite(l2, BLK, (off_t)img.l1[t]);
    }
    /* Data clusters read as zeros until written. */
    if (ftruncate(img.fd, (off_t)(data_start + img.nblocks * BLK)) < 0) {
        die("ftruncate");
    }
    free(perm);
    free(l2);
}

static void image_remove(void)
{
    close(img.fd);
    unlink(img.path);
    rmdir(img.dir);
    free(img.l1);
}

/* Contents of virtual block v at version n (version 0: never written). */
static void fill(unsigned char *buf, uint64_t v, uint64_t n)
{
    if (n == 0) {
        memset(buf, 0, BLK);
        return;
    }
    memcpy(buf, &v, 8);
    memcpy(buf + 8, &n, 8);
    memset(buf + 16, (int)((v * 31 + n * 7) & 0xff), BLK - 16);
}

/* ------------------------------------------------------------------------ */
/* Requests.                                                                 */

struct client;

struct ioreq {
    struct client *cl;
    uint64_t vblock;
    uint64_t version; /* write: the new one; read: the expected one */
    bool write;
    long ret;
    unsigned char *buf; /* BLK bytes */
};

struct service {
    pthread_t thread;
    actx_ctx *ctx; /* where clients post requests */
    pthread_barrier_t *ready;
    /* Results, read by main after the join. */
    unsigned long handled, lookups, violations, deferred, errors;
    unsigned long timeouts, cancelled, recovered;
};

struct client {
    pthread_t thread;
    int id, nclients;
    actx_ctx *ctx; /* where replies come back */
    struct service *svc;
    int nsvc;
    long quota, issued, completed, inflight, window;
    unsigned seed;
    uint64_t *version; /* per virtual block (only this client's) */
    bool *busy;
    struct ioreq *slots;
    struct ioreq **free_slots;
    long nfree;
    bool verifying;
    unsigned long reads_ok, bad_data, io_errors, verified, timed_out;
};

static _Atomic long total_served;

/* --lookup-timeout (0: none) and --slow-lookups (0: none). */
static uint64_t lookup_timeout_ns;
static long slow_every;

/* Per service thread: a lookup is in progress (between push and pop). */
static __thread bool tls_in_lookup;
static __thread struct service *tls_svc;

/* Every callback but the lookup's own calls this first. */
static void check_not_in_lookup(void)
{
    if (tls_in_lookup) {
        tls_svc->violations++;
    }
}

struct lookup {
    bool done;
    long ret;
    /* A slow lookup's work (--slow-lookups): sleep, then read. */
    uint64_t *entry;
    off_t off;
    unsigned delay_us;
};

static long slow_lookup_work(void *opaque)
{
    struct lookup *lk = opaque;
    ssize_t n;

    usleep(lk->delay_us);
    n = pread(img.fd, lk->entry, sizeof(*lk->entry), lk->off);
    return n < 0 ? -errno : n;
}

static void lookup_done(void *opaque, long ret)
{
    struct lookup *lk = opaque;

    /* The one callback allowed to run during the lookup: its own. */
    lk->ret = ret;
    lk->done = true;
}

static void client_reply(void *opaque);

static void data_done(void *opaque, long ret)
{
    struct ioreq *r = opaque;

    check_not_in_lookup();
    r->ret = ret;
    if (actx_ctx_call(r->cl->ctx, client_reply, r) < 0) {
        tls_svc->errors++;
    }
}

/* A request arrives on a service thread (a call in its root context). */
static void svc_handle(void *opaque)
{
    struct ioreq *r = opaque;
    struct service *s = tls_svc;
    uint64_t l1i = r->vblock / L2_ENTRIES, entry = 0;
    off_t off = (off_t)(img.l1[l1i] + (r->vblock % L2_ENTRIES) * 8);
    struct lookup lk = {false, 0, &entry, off, 0};
    actx_req *req;
    int rc;

    check_not_in_lookup();
    s->handled++;

    /*
     * The synchronous metadata lookup, in a context of its own, with a
     * deadline if asked.  lk and entry live on this stack: after a timeout
     * the context's requests are cancelled and waited for before the pop,
     * so no done callback can write to them once this function returns.
     */
    if (lookup_timeout_ns) {
        actx_push_deadline(actx_now_ns() + lookup_timeout_ns);
    } else {
        actx_push();
    }
    tls_in_lookup = true;
    if (slow_every && (s->lookups + 1) % (unsigned long)slow_every == 0) {
        lk.delay_us =
            (unsigned)(2 * (lookup_timeout_ns ? lookup_timeout_ns : 10000000) /
                       1000);
        req = actx_submit(slow_lookup_work, lookup_done, &lk);
    } else {
        req = actx_aio_pread(img.fd, &entry, sizeof(entry), off, lookup_done,
                             &lk);
    }
    rc = req ? ACTX_WAIT_WHILE(!lk.done) : -errno;
    if (rc == -ETIMEDOUT) {
        s->timeouts++;
        s->cancelled += (unsigned long)actx_cancel_context();
        if (lk.done && lk.ret != -ECANCELED) {
            s->recovered++; /* it finished while we waited: use it */
            rc = 0;
        }
    }
    tls_in_lookup = false;
    actx_pop();
    s->lookups++;
    if (rc == -ETIMEDOUT) {
        data_done(r, -ETIMEDOUT); /* answered, not an error */
        return;
    }
    if (rc < 0 || lk.ret != (long)sizeof(entry) || entry == 0) {
        s->errors++;
        data_done(r, rc < 0 ? rc : -EIO);
        return;
    }

    /* The data I/O, asynchronously: data_done runs in the root context. */
    req = r->write
              ? actx_aio_pwrite(img.fd, r->buf, BLK, (off_t)entry, data_done, r)
              : actx_aio_pread(img.fd, r->buf, BLK, (off_t)entry, data_done, r);
    if (!req) {
        s->errors++;
        data_done(r, -errno);
    }
}

static void *service_main(void *arg)
{
    struct service *s = arg;
    struct actx_stats st;

    tls_svc = s;
    if (actx_thread_init() < 0) {
        die("actx_thread_init");
    }
    s->ctx = actx_ctx_current();
    pthread_barrier_wait(s->ready);
    actx_run(); /* until main calls actx_stop */
    actx_stats(&st);
    s->deferred = st.completions_deferred;
    actx_ctx_unref(s->ctx);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Clients.                                                                  */

static bool client_issue(struct client *c, uint64_t v, bool write)
{
    struct ioreq *r;

    if (c->nfree == 0 || c->busy[v]) {
        return false;
    }
    r = c->free_slots[--c->nfree];
    r->vblock = v;
    r->write = write;
    r->version = write ? c->version[v] + 1 : c->version[v];
    if (write) {
        fill(r->buf, v, r->version);
    } else {
        memset(r->buf, 0xee, BLK);
    }
    c->busy[v] = true;
    c->inflight++;
    if (actx_ctx_call(c->svc[v % (uint64_t)c->nsvc].ctx, svc_handle, r) < 0) {
        die("actx_ctx_call");
    }
    return true;
}

/* A block of this client's share: v % nclients == id. */
static uint64_t client_pick(struct client *c)
{
    uint64_t per = img.nblocks / (uint64_t)c->nclients;
    uint64_t k = ((uint64_t)rand_r(&c->seed) << 31 ^ rand_r(&c->seed)) % per;

    return k * (uint64_t)c->nclients + (uint64_t)c->id;
}

static void client_fill_window(struct client *c)
{
    int tries = 0;

    while (c->issued < c->quota && c->inflight < c->window && tries < 64) {
        uint64_t v = client_pick(c);

        if (client_issue(c, v, rand_r(&c->seed) & 1)) {
            c->issued++;
            tries = 0;
        } else {
            tries++;
        }
    }
}

static void client_reply(void *opaque)
{
    struct ioreq *r = opaque;
    struct client *c = r->cl;
    unsigned char want[BLK];

    if (r->ret == -ETIMEDOUT) {
        c->timed_out++; /* the lookup gave up: nothing was read or written */
        if (c->verifying) {
            /* The read-back must see every block: ask again. */
            if (actx_ctx_call(c->svc[r->vblock % (uint64_t)c->nsvc].ctx,
                              svc_handle, r) < 0) {
                die("actx_ctx_call");
            }
            return;
        }
    } else if (r->ret != BLK) {
        c->io_errors++;
    } else if (r->write) {
        c->version[r->vblock] = r->version;
    } else {
        fill(want, r->vblock, r->version);
        if (memcmp(want, r->buf, BLK) != 0) {
            c->bad_data++;
        } else if (c->verifying) {
            c->verified++;
        } else {
            c->reads_ok++;
        }
    }
    c->busy[r->vblock] = false;
    c->inflight--;
    c->completed++;
    c->free_slots[c->nfree++] = r;
    if (!c->verifying) {
        atomic_fetch_add_explicit(&total_served, 1, memory_order_relaxed);
        client_fill_window(c);
    }
}

static void *client_main(void *arg)
{
    struct client *c = arg;

    if (actx_thread_init() < 0) {
        die("actx_thread_init");
    }
    c->ctx = actx_ctx_current();
    client_fill_window(c);
    if (ACTX_WAIT_WHILE(c->completed < c->quota) < 0) {
        die("client wait");
    }
    actx_ctx_unref(c->ctx);
    return NULL;
}

/* After the timed run: read back every block this client ever wrote. */
static void *client_verify_main(void *arg)
{
    struct client *c = arg;

    if (actx_thread_init() < 0) {
        die("actx_thread_init");
    }
    c->ctx = actx_ctx_current();
    c->verifying = true;
    for (uint64_t v = (uint64_t)c->id; v < img.nblocks;
         v += (uint64_t)c->nclients) {
        if (c->version[v] == 0) {
            continue;
        }
        if (ACTX_WAIT_WHILE(c->inflight >= c->window) < 0 ||
            !client_issue(c, v, false)) {
            die("verify issue");
        }
    }
    if (ACTX_WAIT_WHILE(c->inflight > 0) < 0) {
        die("verify wait");
    }
    actx_ctx_unref(c->ctx);
    return NULL;
}

/* ------------------------------------------------------------------------ */

static uint64_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    uint64_t mul = 1;

    switch (*end) {
    case 'k':
    case 'K':
        mul = 1ull << 10;
        break;
    case 'm':
    case 'M':
        mul = 1ull << 20;
        break;
    case 'g':
    case 'G':
        mul = 1ull << 30;
        break;
    case '\0':
        break;
    default:
        fprintf(stderr, "imgserve: bad size %s\n", s);
        exit(2);
    }
    return (uint64_t)(v * (double)mul);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: imgserve [--threads N] [--clients N] "
                    "[--requests N] [--image-size SIZE[K|M|G]] "
                    "[--window N] [--lookup-timeout MS] "
                    "[--slow-lookups N] [--pool-threads N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"threads", required_argument, NULL, 't'},
        {"clients", required_argument, NULL, 'c'},
        {"requests", required_argument, NULL, 'r'},
        {"image-size", required_argument, NULL, 's'},
        {"window", required_argument, NULL, 'w'},
        {"lookup-timeout", required_argument, NULL, 'T'},
        {"slow-lookups", required_argument, NULL, 'S'},
        {"pool-threads", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int nsvc = 4, ncl = 4, window = 32, opt;
    long requests = 100000;
    uint64_t size = 64ull << 20;
    struct service *svc;
    struct client *cl;
    pthread_barrier_t ready;
    unsigned long handled = 0, lookups = 0, violations = 0, deferred = 0;
    unsigned long errors = 0, bad = 0, ioerr = 0, reads_ok = 0;
    unsigned long verified = 0, written = 0, timeouts = 0, cancelled = 0;
    unsigned long recovered = 0, timed_out = 0;
    long timeout_ms = 0;
    int pool_threads = 0;
    double t0, t1;
    bool ok;

    while ((opt = getopt_long(argc, argv, "t:c:r:s:w:T:S:P:h", opts, NULL)) !=
           -1) {
        switch (opt) {
        case 't':
            nsvc = atoi(optarg);
            break;
        case 'c':
            ncl = atoi(optarg);
            break;
        case 'r':
            requests = atol(optarg);
            break;
        case 's':
            size = parse_size(optarg);
            break;
        case 'w':
            window = atoi(optarg);
            break;
        case 'T':
            timeout_ms = atol(optarg);
            break;
        case 'S':
            slow_every = atol(optarg);
            break;
        case 'P':
            pool_threads = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (nsvc < 1 || ncl < 1 || requests < 1 || window < 1 ||
        size < (uint64_t)BLK * 64 * (uint64_t)ncl || timeout_ms < 0 ||
        slow_every < 0) {
        usage();
    }
    lookup_timeout_ns = (uint64_t)timeout_ms * 1000000;
    if (pool_threads && actx_pool_set_size(pool_threads) < 0) {
        usage();
    }

    image_create(size);
    printf("imgserve: %" PRIu64 " MiB image, %" PRIu64
           " blocks of 4 KiB, two-level table (%" PRIu64 " L2 tables), in %s\n",
           size >> 20, img.nblocks, img.l1_entries, img.dir);
    printf("imgserve: %d service threads, %d client threads, %ld requests "
           "(half writes), %d in flight per client\n",
           nsvc, ncl, requests, window);

    svc = calloc((size_t)nsvc, sizeof(*svc));
    cl = calloc((size_t)ncl, sizeof(*cl));
    if (!svc || !cl) {
        die("calloc");
    }
    pthread_barrier_init(&ready, NULL, (unsigned)nsvc + 1);
    for (int i = 0; i < nsvc; i++) {
        svc[i].ready = &ready;
        pthread_create(&svc[i].thread, NULL, service_main, &svc[i]);
    }
    pthread_barrier_wait(&ready);

    for (int i = 0; i < ncl; i++) {
        struct client *c = &cl[i];

        c->id = i;
        c->nclients = ncl;
        c->svc = svc;
        c->nsvc = nsvc;
        c->quota = requests / ncl + (i < requests % ncl);
        c->window = window;
        c->seed = 7919u * (unsigned)(i + 1);
        c->version = calloc(img.nblocks, sizeof(*c->version));
        c->busy = calloc(img.nblocks, sizeof(*c->busy));
        c->slots = calloc((size_t)window, sizeof(*c->slots));
        c->free_slots = calloc((size_t)window, sizeof(*c->free_slots));
        if (!c->version || !c->busy || !c->slots || !c->free_slots) {
            die("calloc");
        }
        for (int k = 0; k < window; k++) {
            c->slots[k].cl = c;
            c->slots[k].buf = aligned_alloc(BLK, BLK);
            if (!c->slots[k].buf) {
                die("aligned_alloc");
            }
            c->free_slots[c->nfree++] = &c->slots[k];
        }
    }

    t0 = now_s();
    for (int i = 0; i < ncl; i++) {
        pthread_create(&cl[i].thread, NULL, client_main, &cl[i]);
    }
    for (int i = 0; i < ncl; i++) {
        pthread_join(cl[i].thread, NULL);
    }
    t1 = now_s();

    /*
     * Read back everything that was written.  Each client's loop died with
     * its thread: a new thread (new loop, new handle) does the reads.
     */
    for (int i = 0; i < ncl; i++) {
        pthread_create(&cl[i].thread, NULL, client_verify_main, &cl[i]);
    }
    for (int i = 0; i < ncl; i++) {
        pthread_join(cl[i].thread, NULL);
    }

    for (int i = 0; i < nsvc; i++) {
        actx_stop(svc[i].ctx);
    }
    for (int i = 0; i < nsvc; i++) {
        pthread_join(svc[i].thread, NULL);
        handled += svc[i].handled;
        lookups += svc[i].lookups;
        violations += svc[i].violations;
        deferred += svc[i].deferred;
        errors += svc[i].errors;
        timeouts += svc[i].timeouts;
        cancelled += svc[i].cancelled;
        recovered += svc[i].recovered;
    }
    for (int i = 0; i < ncl; i++) {
        bad += cl[i].bad_data;
        ioerr += cl[i].io_errors;
        reads_ok += cl[i].reads_ok;
        verified += cl[i].verified;
        timed_out += cl[i].timed_out;
        for (uint64_t v = 0; v < img.nblocks; v++) {
            written += cl[i].version[v] != 0;
        }
    }

    printf("served %ld requests in %.2f s: %.0f requests/s\n",
           atomic_load(&total_served), t1 - t0,
           atomic_load(&total_served) / (t1 - t0));
    printf("synchronous metadata lookups: %lu (one per request, %lu "
           "handled incl. read-back)\n",
           lookups, handled);
    printf("completions deferred during synchronous lookups: %lu\n", deferred);
    printf("foreign callbacks run during a synchronous lookup: %lu "
           "(checked on every callback)\n",
           violations);
    printf("reads checked during the run: %lu; read-back: %lu of %lu "
           "written blocks verified\n",
           reads_ok, verified, written);

    if (lookup_timeout_ns) {
        printf("lookups that timed out (%ld ms): %lu; requests cancelled: "
               "%lu; lookups that finished during the cancel: %lu; "
               "requests answered -ETIMEDOUT: %lu\n",
               timeout_ms, timeouts, cancelled, recovered, timed_out);
    }

    ok = violations == 0 && bad == 0 && ioerr == 0 && errors == 0 &&
         verified == written && lookups == handled &&
         atomic_load(&total_served) == requests &&
         timeouts == recovered + timed_out &&
         (lookup_timeout_ns != 0 || timeouts == 0) &&
         (slow_every == 0 || lookup_timeout_ns == 0 || timeouts > 0);
    if (!ok) {
        printf("FAILED: %lu violations, %lu bad data, %lu I/O errors, "
               "%lu service errors, %lu timeouts (%lu recovered, %lu "
               "answered)\n",
               violations, bad, ioerr, errors, timeouts, recovered, timed_out);
    } else {
        printf("OK: no callback ran inside a synchronous lookup; all data "
               "verified\n");
    }

    for (int i = 0; i < ncl; i++) {
        for (int k = 0; k < cl[i].window; k++) {
            free(cl[i].slots[k].buf);
        }
        free(cl[i].slots);
        free(cl[i].free_slots);
        free(cl[i].version);
        free(cl[i].busy);
    }
    free(cl);
    free(svc);
    pthread_barrier_destroy(&ready);
    image_remove();
    return ok ? 0 : 1;
}
