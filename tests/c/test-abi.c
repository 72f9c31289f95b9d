/*
 * test-abi.c - what binaries built against another version rely on: the
 * version queries, and struct actx_stats growing without breaking a caller
 * built with a smaller struct (see docs/abi.md).
 */
#include "test.h"

#include <stddef.h>

ACTX_TEST("/abi/version")
{
    char buf[32];

    ASSERT_EQ(actx_version(),
              (unsigned)((ACTX_VERSION_MAJOR << 16) |
                         (ACTX_VERSION_MINOR << 8) | ACTX_VERSION_PATCH));
    snprintf(buf, sizeof(buf), "%d.%d.%d", ACTX_VERSION_MAJOR,
             ACTX_VERSION_MINOR, ACTX_VERSION_PATCH);
    ASSERT_EQ(strcmp(actx_version_string(), buf), 0);
}

/* struct actx_stats as version 1.0 declared it (its first ten fields). */
struct stats_1_0 {
    int depth;
    long live_bhs;
    unsigned long bh_runs;
    unsigned long completions_run;
    unsigned long completions_deferred;
    unsigned long calls_run;
    unsigned long mailbox_msgs;
    unsigned long wakeups;
    unsigned long sleeps;
    unsigned long posts_refused;
};

static void noop(void *opaque)
{
    (void)opaque;
}

/* Some counters that are not zero. */
static void make_activity(void)
{
    actx_bh *bh = actx_bh_new(noop, NULL);

    for (int i = 0; i < 3; i++) {
        actx_bh_schedule(bh);
        actx_poll(false);
    }
    ASSERT_EQ(actx_push(), 1);
}

ACTX_TEST("/abi/stats/smaller-struct-caller")
{
    struct {
        struct stats_1_0 s;
        unsigned char guard[64];
    } old;
    struct actx_stats full;

    make_activity();
    memset(&old, 0xa5, sizeof(old));
    ASSERT_EQ(actx_stats_size((struct actx_stats *)&old.s, sizeof(old.s)),
              sizeof(old.s));
    actx_stats(&full);
    for (size_t i = 0; i < sizeof(old.guard); i++) {
        ASSERT_EQ(old.guard[i], 0xa5); /* nothing written past its struct */
    }
    ASSERT_EQ(old.s.depth, 1);
    ASSERT_EQ(old.s.depth, full.depth);
    ASSERT_EQ(old.s.live_bhs, full.live_bhs);
    ASSERT_GE(old.s.bh_runs, 3);
    ASSERT_EQ(old.s.bh_runs, full.bh_runs);
    ASSERT_EQ(memcmp(&old.s, &full,
                     offsetof(struct stats_1_0, posts_refused) +
                         sizeof(old.s.posts_refused)),
              0);
    ASSERT_EQ(actx_pop(), 0);
}

/* The exported function, which binaries built against 1.0 call, writes the
 * 1.0 struct and not one byte more, however the struct grows. */
ACTX_TEST("/abi/stats/exported-function-writes-1.0-fields")
{
    size_t v10 = offsetof(struct actx_stats, timers_fired) +
                 sizeof(((struct actx_stats *)0)->timers_fired);
    unsigned char buf[sizeof(struct actx_stats) + 64];
    struct actx_stats full;

    make_activity();
    memset(buf, 0xa5, sizeof(buf));
    (actx_stats)((struct actx_stats *)buf);
    for (size_t i = v10; i < sizeof(buf); i++) {
        ASSERT_EQ(buf[i], 0xa5);
    }
    actx_stats(&full);
    ASSERT_EQ(((struct actx_stats *)buf)->bh_runs, full.bh_runs);
    ASSERT_EQ(((struct actx_stats *)buf)->depth, 1);
    ASSERT_EQ(actx_pop(), 0);
}

/* A caller built against a newer header (a bigger struct): the fields this
 * library does not know read 0. */
ACTX_TEST("/abi/stats/bigger-struct-caller")
{
    struct {
        struct actx_stats s;
        unsigned long future[4];
    } big;

    make_activity();
    memset(&big, 0xa5, sizeof(big));
    ASSERT_EQ(actx_stats_size(&big.s, sizeof(big)), sizeof(big.s));
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(big.future[i], 0);
    }
    ASSERT_EQ(big.s.depth, 1);
    ASSERT_EQ(actx_stats_size(NULL, sizeof(big)), 0);
    ASSERT_EQ(actx_stats_size(&big.s, 0), 0);
    ASSERT_EQ(actx_pop(), 0);
}
