/*
 * raw-epoll.h - the fd wake-up round trip's pipes and client, and the raw
 * epoll peers: a server thread sleeps in its loop with a read handler on
 * a pipe; the client writes a byte and blocks reading the reply pipe; the
 * handler reads and replies.
 */
#ifndef BENCH_RAW_EPOLL_H
#define BENCH_RAW_EPOLL_H

struct rtt {
    int req[2], rep[2]; /* client -> server, server -> client */
    int left;           /* server side: requests still to serve */
};

/* Server thread.  Read one request, reply; 1 when that was the last. */
int rtt_serve_one(struct rtt *r);

/*
 * Main thread.  Start server(r) on a new thread, make n round trips (the
 * first 100 untimed), join it.  us per round trip.
 */
double rtt_run(void *(*server)(void *r), int n);

/* The raw server: an epoll_wait loop. */
void *rtt_server_raw(void *r);

/*
 * Main thread.  How late a raw epoll_wait timeout (ms resolution, rounded
 * up) returns after a deadline 2 ms away, in us.
 */
double raw_lateness(void);

#endif /* BENCH_RAW_EPOLL_H */
