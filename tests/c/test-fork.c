/*
 * fork() (actx.h, at actx_thread_init): the child gets fresh loops on
 * first use; what it inherited is dropped without touching the kernel
 * objects the parent still uses, so nothing the child does changes what
 * the parent sees.  Each case runs the child's part, then checks that the
 * parent is still woken by another thread (a hang is the failure, caught
 * by the child's alarm or the runner's timeout).
 */
#include "test.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "actx-internal.h"

/*
 * Children of the churn test start no threads (no pool) under the
 * sanitizers: TSan refuses threads in the child of a threaded process
 * (die_after_fork), and GCC 12's ASan hangs now and then (about once in
 * 6,000 forks, even from a single-threaded parent) in its allocator when
 * a child starts a thread.
 */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CHILD_CAN_START_THREADS 0
#else
#define CHILD_CAN_START_THREADS 1
#endif

/*
 * How children end: memory that only a thread the child does not have
 * pointed to (an object another thread was creating at fork time) is
 * unreachable in the child by nature, so no leak check may run there.
 * LeakSanitizer skips _exit; valgrind checks every process it follows at
 * any exit, but not one that execs: a child that succeeded execs true(1).
 * The coverage build writes the child's counters first.
 */
#ifdef ACTX_COVERAGE
void __gcov_dump(void);
#endif

static __attribute__((noreturn)) void child_exit(int code)
{
#ifdef ACTX_COVERAGE
    __gcov_dump();
#endif
    if (code == 0) {
        execl("/bin/true", "true", (char *)NULL);
    }
    _exit(code);
}

/*
 * A child that hangs dies of SIGALRM: a failure, not a stuck test.  Long
 * enough that a child starved of CPU on a loaded machine (sanitizer
 * builds of the whole suite beside other jobs) is not taken for a hang.
 */
#define CHILD_ALARM_S 60

static int wait_child(pid_t pid)
{
    int status;

    if (waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

/* A request completed by another thread once this one sleeps: n times. */
static void parent_woken_by_others(int n)
{
    for (int i = 0; i < n; i++) {
        struct cb_rec r = {0};
        actx_req *req = actx_req_new(rec_done, &r);
        pthread_t t;

        ASSERT_NOT_NULL(req);
        t = later_complete(req, 40 + i, 0, test_gettid(), NULL);
        ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
        thread_join(t);
        ASSERT_EQ(r.runs, 1);
        ASSERT_EQ(r.ret, 40 + i);
    }
}

static void timer_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* The child's part of several cases: a 1 ms timer, polled until it fires,
 * many times over (each sleep of an inherited loop would eat wake-ups). */
static int child_poll_timers(int rounds)
{
    int fired = 0;
    actx_timer *t = actx_timer_new(timer_cb, &fired);

    if (!t) {
        return 3;
    }
    for (int i = 0; i < rounds; i++) {
        actx_timer_mod(t, actx_now_ns() + 1000 * 1000);
        while (fired == i) {
            actx_poll(true);
        }
    }
    actx_timer_free(t);
    return 0;
}

ACTX_TEST_TIMEOUT("/fork/child-shutdown/parent-still-woken", 20)
{
    pid_t pid;

    ASSERT_EQ(actx_thread_init(), 0);
    parent_woken_by_others(1);
    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        actx_thread_shutdown();
        child_exit(0);
    }
    ASSERT_EQ(wait_child(pid), 0);
    parent_woken_by_others(5);
}

static void on_readable(void *opaque)
{
    int *fds = opaque;
    char c;

    ASSERT_EQ(read(fds[0], &c, 1), 1);
    fds[2]++;
}

ACTX_TEST_TIMEOUT("/fork/child-removes-fd-handler/parent-keeps-it", 20)
{
    int fds[3] = {-1, -1, 0};
    pid_t pid;

    ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);
    ASSERT_EQ(actx_set_fd_handler(fds[0], on_readable, NULL, fds), 0);
    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        /* Not the child's registration: it has a fresh loop. */
        actx_set_fd_handler(fds[0], NULL, NULL, NULL);
        actx_thread_shutdown();
        child_exit(0);
    }
    ASSERT_EQ(wait_child(pid), 0);
    for (int i = 1; i <= 3; i++) {
        ASSERT_EQ(write(fds[1], "x", 1), 1);
        ASSERT_EQ(ACTX_WAIT_WHILE(fds[2] < i), 0);
    }
    ASSERT_EQ(actx_set_fd_handler(fds[0], NULL, NULL, NULL), 0);
    close(fds[0]);
    close(fds[1]);
}

/* The child polls timers while the parent waits for other threads. */
static void child_timers_parent_waits(void)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int rc;

        alarm(CHILD_ALARM_S);
        rc = child_poll_timers(300);
        actx_thread_shutdown();
        child_exit(rc);
    }
    parent_woken_by_others(100);
    ASSERT_EQ(wait_child(pid), 0);
    parent_woken_by_others(3);
}

ACTX_TEST_TIMEOUT("/fork/child-polls-timer/parent-keeps-wakeups", 30)
{
    ASSERT_EQ(actx_thread_init(), 0);
    child_timers_parent_waits();
}

static void *loop_and_exit(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)actx_thread_init();
}

/* No loop alive at fork, a recycled mailbox waiting in the free list (a
 * thread that had a loop exited): the loops parent and child make next
 * must not share its eventfd. */
ACTX_TEST_TIMEOUT("/fork/no-loop-at-fork/no-shared-eventfd", 30)
{
    ASSERT_NULL(thread_join(thread_start(loop_and_exit, NULL)));
    ASSERT_NULL(actx__tls_loop);
    child_timers_parent_waits();
}

/* The child's first call makes a loop of its own: root context, no fd
 * handlers, no outstanding requests, nothing queued from the parent. */
ACTX_TEST_TIMEOUT("/fork/child-gets-fresh-loop", 20)
{
    struct cb_rec r = {0};
    actx_req *req;
    pid_t pid;
    int fds[3] = {-1, -1, 0};

    ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);
    ASSERT_EQ(actx_set_fd_handler(fds[0], on_readable, NULL, fds), 0);
    ASSERT_GT(actx_push(), 0);
    req = actx_req_new(rec_done, &r);
    ASSERT_NOT_NULL(req);
    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        struct actx_stats st;

        alarm(CHILD_ALARM_S);
        actx_stats(&st);
        if (st.depth != 0 || st.outstanding != 0) {
            child_exit(2);
        }
        if (actx_context_id() != 0 || actx_pop() != -EINVAL) {
            child_exit(3); /* a new root: nothing to pop */
        }
        actx_stats(&st);
        if (st.outstanding != 0 || actx__tls_loop->nfds != 0) {
            child_exit(4);
        }
        /* The parent's request is not the child's to complete. */
        if (ACTX_WAIT_WHILE(r.runs == 0) != -EDEADLK) {
            child_exit(5);
        }
        actx_thread_shutdown();
        child_exit(0);
    }
    ASSERT_EQ(wait_child(pid), 0);
    ASSERT_EQ(complete_from_thread(req, 9), 0);
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_EQ(r.ret, 9);
    ASSERT_EQ(actx_pop(), 0);
    ASSERT_EQ(write(fds[1], "x", 1), 1);
    ASSERT_EQ(ACTX_WAIT_WHILE(fds[2] == 0), 0);
    ASSERT_EQ(actx_set_fd_handler(fds[0], NULL, NULL, NULL), 0);
    close(fds[0]);
    close(fds[1]);
}

static void never_run(void *opaque)
{
    (void)opaque;
    child_exit(6);
}

/* A handle to a context of the parent's: posts from the child are
 * refused, they never reach the parent's eventfd or run. */
ACTX_TEST_TIMEOUT("/fork/child-posts-to-parent-context-refused", 20)
{
    actx_ctx *h;
    pid_t pid;

    h = actx_ctx_current();
    ASSERT_NOT_NULL(h);
    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        alarm(CHILD_ALARM_S);
        if (actx_ctx_call(h, never_run, NULL) != -EPIPE) {
            child_exit(2);
        }
        child_exit(0);
    }
    ASSERT_EQ(wait_child(pid), 0);
    parent_woken_by_others(3);
    actx_ctx_unref(h);
}

/*
 * fork while other threads create and destroy loops (the mailbox free
 * list), log, and use the pool: every child must be able to make a loop,
 * run a pool job and shut down.  A child stuck on a lock inherited held
 * dies of its alarm.
 */
static atomic_bool churn_stop;

#if defined(__SANITIZE_ADDRESS__)
/*
 * GCC 12's libasan takes no allocator lock around fork(): a child forked
 * while another thread is inside malloc or free can hang in ASan's own
 * allocator (seen here: a pool worker of the child stuck in
 * SizeClassAllocator64::GetFromAllocator).  Under ASan the churn threads
 * are held between two iterations at each fork and use no pool (whose
 * workers would allocate at any time); the runtime's atfork handlers
 * still run at every fork, and the debug and tsan builds test forks that
 * land inside the runtime's locks.
 */
static pthread_rwlock_t churn_gate;
static void churn_gate_init(void)
{
    pthread_rwlockattr_t a;

    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&churn_gate, &a);
    pthread_rwlockattr_destroy(&a);
}
#define CHURN_IN() pthread_rwlock_rdlock(&churn_gate)
#define CHURN_OUT() pthread_rwlock_unlock(&churn_gate)
#define FORK_HOLD() pthread_rwlock_wrlock(&churn_gate)
#define FORK_RELEASE() pthread_rwlock_unlock(&churn_gate)
#define CHURN_USES_POOL 0
#else
static void churn_gate_init(void)
{
}
#define CHURN_IN() ((void)0)
#define CHURN_OUT() ((void)0)
#define FORK_HOLD() ((void)0)
#define FORK_RELEASE() ((void)0)
#define CHURN_USES_POOL 1
#endif

static void quiet_log(int level, const char *msg, void *opaque)
{
    (void)level, (void)msg, (void)opaque;
}

static long job_work(void *opaque)
{
    return (long)(intptr_t)opaque;
}

static void *churn(void *arg)
{
    long n = 0;

    (void)arg;
    while (!atomic_load(&churn_stop)) {
        struct cb_rec r = {0};

        CHURN_IN();
        if (actx_thread_init() != 0) {
            return (void *)1;
        }
        n++;
        if (CHURN_USES_POOL && (n & 7) == 0 &&
            actx_submit(job_work, rec_done, &r)) {
            actx_flush();
        }
        if ((n & 15) == 0) {
            actx_set_log_handler(quiet_log, NULL);
            actx__log(ACTX_LOG_DEBUG, "churn %ld", n);
            actx_set_log_handler(NULL, NULL);
        }
        actx_thread_shutdown();
        CHURN_OUT();
    }
    return NULL;
}

ACTX_TEST_TIMEOUT("/fork/while-threads-create-loops/no-deadlock", 240)
{
    enum { THREADS = 3 };
    int forks = (int)test_env_double("ACTX_TEST_FORKS", 300);
    pthread_t th[THREADS];

    atomic_store(&churn_stop, false);
    churn_gate_init();
    for (int i = 0; i < THREADS; i++) {
        th[i] = thread_start(churn, NULL);
    }
    for (int i = 0; i < forks; i++) {
        pid_t pid;

        fflush(NULL);
        FORK_HOLD();
        pid = fork();
        FORK_RELEASE();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            struct cb_rec r = {0};

            alarm(CHILD_ALARM_S);
            if (actx_thread_init() != 0) {
                child_exit(2);
            }
            if (CHILD_CAN_START_THREADS &&
                (!actx_submit(job_work, rec_done, (void *)&r) ||
                 actx_flush() != 0 || r.runs != 1)) {
                child_exit(3);
            }
            actx__log(ACTX_LOG_DEBUG, "child %d", i);
            actx_thread_shutdown();
            child_exit(0);
        }
        ASSERT_EQ(wait_child(pid), 0);
    }
    atomic_store(&churn_stop, true);
    for (int i = 0; i < THREADS; i++) {
        ASSERT_NULL(thread_join(th[i]));
    }
}

static bool fd_readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* The embedding fd is the thread's: the child makes its own and leaves
 * the parent's set alone; the parent's still turns readable for a post. */
ACTX_TEST_TIMEOUT("/fork/child-embeds/parent-backend-fd-intact", 20)
{
    int fd = actx_backend_fd(), runs = 0;
    actx_ctx *h;
    pid_t pid;

    ASSERT_GE(fd, 0);
    h = actx_ctx_current();
    ASSERT_NOT_NULL(h);
    ASSERT_EQ(actx_backend_timeout_ms(), -1);
    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int cfd;

        alarm(CHILD_ALARM_S);
        cfd = actx_backend_fd();
        if (cfd < 0 || actx_backend_timeout_ms() != -1) {
            child_exit(2);
        }
        actx_thread_shutdown();
        child_exit(0);
    }
    ASSERT_EQ(wait_child(pid), 0);
    ASSERT_FALSE(fd_readable(fd));
    ASSERT_EQ(call_from_thread(h, timer_cb, &runs), 0);
    ASSERT_TRUE(fd_readable(fd));
    actx_poll(false);
    ASSERT_EQ(runs, 1);
    actx_ctx_unref(h);
}

/*
 * A pool worker that spins for the next job (pool.c, "Spinning before the
 * sleep") at fork time: the child's pool starts empty all the same, and a
 * job submitted in the child runs.  A thread keeps one job in flight, so
 * that a worker is spinning or running nearly all the time.
 */
static atomic_bool spin_stop;

static void *one_in_flight(void *arg)
{
    (void)arg;
    if (actx_thread_init() != 0) {
        return (void *)1;
    }
    while (!atomic_load(&spin_stop)) {
        struct cb_rec r = {0};

        if (!actx_submit(job_work, rec_done, &r) ||
            ACTX_WAIT_WHILE(r.runs == 0) != 0) {
            return (void *)2;
        }
    }
    actx_thread_shutdown();
    return NULL;
}

ACTX_TEST_TIMEOUT("/fork/pool-worker-spinning/child-pool-runs-jobs", 240)
{
    pthread_t th;

    atomic_store(&spin_stop, false);
    th = thread_start(one_in_flight, NULL);
    usleep(20 * 1000); /* round trips: the worker's window grows */
    for (int i = 0; i < 20; i++) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            struct cb_rec r = {0};

            alarm(CHILD_ALARM_S);
            if (actx_thread_init() != 0) {
                child_exit(2);
            }
            if (CHILD_CAN_START_THREADS &&
                (!actx_submit(job_work, rec_done, (void *)&r) ||
                 actx_flush() != 0 || r.runs != 1)) {
                child_exit(3);
            }
            actx_thread_shutdown();
            child_exit(0);
        }
        ASSERT_EQ(wait_child(pid), 0);
        usleep(1000);
    }
    atomic_store(&spin_stop, true);
    ASSERT_NULL(thread_join(th));
}

/*
 * Another thread's loop, alive at fork: its eventfd, epoll sets (the
 * root's, a pushed context's for its fd handler, the embed set) and ring.
 * The child drops it without walking it, and closes its copies of those
 * descriptors (from the runtime's record of its own fds): none is left
 * open in the child, and a file the child opens on one of those numbers
 * is the child's (file AIO reads it; it is not refused as the runtime's).
 */
struct other_loop {
    int fds[64]; /* the runtime's fds this loop made */
    int nfds;
    int pipe[2];
    int file;
    _Atomic int ready, stop;
};

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static void ignore_readable(void *opaque)
{
    (void)opaque; /* nobody writes the pipe */
}

static void *other_loop_main(void *arg)
{
    struct other_loop *o = arg;
    struct cb_rec r = {0};
    bool before[1024];
    int n = 0;

    for (int fd = 0; fd < 1024; fd++) {
        before[fd] = fd_open(fd);
    }
    ASSERT_EQ(actx_thread_init(), 0);
    ASSERT_GE(actx_backend_fd(), 0);
    ASSERT_NOT_NULL(actx_aio_fsync(o->file, rec_done, &r));
    ASSERT_EQ(ACTX_WAIT_WHILE(r.runs == 0), 0);
    ASSERT_GT(actx_push(), 0);
    ASSERT_EQ(actx_set_fd_handler(o->pipe[0], ignore_readable, NULL, NULL), 0);
    for (int fd = 0; fd < 1024 && n < 64; fd++) {
        if (!before[fd] && fd_open(fd) && actx__own_fd(fd)) {
            o->fds[n++] = fd;
        }
    }
    o->nfds = n;
    atomic_store(&o->ready, 1);
    while (!atomic_load(&o->stop)) {
        actx_poll_timeout(1000000);
    }
    ASSERT_EQ(actx_set_fd_handler(o->pipe[0], NULL, NULL, NULL), 0);
    ASSERT_EQ(actx_pop(), 0);
    actx_thread_shutdown();
    return NULL;
}

ACTX_TEST_TIMEOUT("/fork/child-closes-other-loops-fds", 30)
{
    struct other_loop o = {.file = test_temp_file(4096, 'f')};
    pthread_t t;
    pid_t pid;

    ASSERT_EQ(pipe2(o.pipe, O_NONBLOCK | O_CLOEXEC), 0);
    t = thread_start(other_loop_main, &o);
    while (!atomic_load(&o.ready)) {
        usleep(1000);
    }
    ASSERT_GE(o.nfds, 3); /* eventfd, epoll sets, ring at least */
    fflush(NULL);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int reused = 0;

        alarm(CHILD_ALARM_S);
        for (int i = 0; i < o.nfds; i++) {
            if (fd_open(o.fds[i]) || actx__own_fd(o.fds[i])) {
                child_exit(2);
            }
        }
        /* The child's own files on those numbers: read, not refused. */
        for (int i = 0; i < o.nfds; i++) {
            char buf[16];
            struct cb_rec r = {0};
            int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);

            if (fd < 0) {
                child_exit(3);
            }
            if (!actx_aio_pread(fd, buf, sizeof(buf), 0, rec_done, &r) ||
                ACTX_WAIT_WHILE(r.runs == 0) != 0 || r.ret != 16) {
                child_exit(4);
            }
            for (int j = 0; j < o.nfds; j++) {
                reused += fd == o.fds[j];
            }
        }
        if (reused == 0) {
            child_exit(5); /* the check above proved nothing */
        }
        actx_thread_shutdown();
        child_exit(0);
    }
    ASSERT_EQ(wait_child(pid), 0);
    atomic_store(&o.stop, 1);
    ASSERT_NULL(thread_join(t));
    close(o.pipe[0]);
    close(o.pipe[1]);
    close(o.file);
}
