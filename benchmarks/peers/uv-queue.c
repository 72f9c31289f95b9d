/* uv-queue.c - the libuv completion queue idiom (uv-queue.h). */
#include "uv-queue.h"

#ifdef HAVE_LIBUV
#include <pthread.h>

uv_loop_t uvq_loop;
static uv_async_t uvq_wake;
static pthread_mutex_t uvq_lock = PTHREAD_MUTEX_INITIALIZER;
static bench_node *uvq_head;
static bench_node **uvq_tail = &uvq_head;
static void (*uvq_after_drain)(void);

void uvq_post(bench_node *n)
{
    n->next = NULL;
    pthread_mutex_lock(&uvq_lock);
    *uvq_tail = n;
    uvq_tail = &n->next;
    pthread_mutex_unlock(&uvq_lock);
    uv_async_send(&uvq_wake);
}

static void uvq_drain_cb(uv_async_t *h)
{
    bench_node *l;

    (void)h;
    pthread_mutex_lock(&uvq_lock);
    l = uvq_head;
    uvq_head = NULL;
    uvq_tail = &uvq_head;
    pthread_mutex_unlock(&uvq_lock);
    while (l) {
        bench_node *next = l->next;

        l->done(l->opaque, l->ret);
        bench_node_put(l);
        l = next;
    }
    if (uvq_after_drain) {
        uvq_after_drain();
    }
}

void uvq_init(void)
{
    uv_loop_init(&uvq_loop);
    uv_async_init(&uvq_loop, &uvq_wake, uvq_drain_cb);
}

void uvq_fini(void)
{
    uv_close((uv_handle_t *)&uvq_wake, NULL);
    uv_run(&uvq_loop, UV_RUN_DEFAULT);
    uv_loop_close(&uvq_loop);
}

void uvq_set_after_drain(void (*fn)(void))
{
    uvq_after_drain = fn;
}
#endif
