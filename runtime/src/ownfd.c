/*
 * ownfd.c - the fds the runtime opened for itself (every loop's eventfd,
 * epoll sets and io_uring), process-wide, so that file AIO never treats
 * one of them as the caller's.
 *
 * A caller that closes an fd and then reads "it" again names a number the
 * runtime may since have taken (the lowest free number goes to the next
 * eventfd or ring).  A read on the ring of an eventfd would wait for its
 * next wake-up and take it from the loop; so actx_aio_pread/pwrite/fsync
 * refuse these numbers with EBADF, as for a number that is not open.
 *
 * A bitmap per 65536 numbers, made on first use and never freed, covers
 * fds below OWN_MAX (beyond it nothing is recorded).  Any thread may add,
 * remove or test: each number changes only as its fd is made or closed,
 * by the thread that does it, and a test racing with that reads either
 * value, as a test racing with close() would.
 */
#include "actx-internal.h"

#include <stdlib.h>
#include <unistd.h>

#define OWN_PAGE_FDS 65536
#define OWN_PAGES 256
#define OWN_MAX (OWN_PAGE_FDS * OWN_PAGES)

typedef _Atomic uint64_t own_page[OWN_PAGE_FDS / 64];

static _Atomic(own_page *) own_pages[OWN_PAGES];

/* The page of fd, made if make (NULL: none, or out of memory). */
static own_page *own_page_of(int fd, bool make)
{
    _Atomic(own_page *) *slot = &own_pages[fd / OWN_PAGE_FDS];
    own_page *p = atomic_load_explicit(slot, memory_order_acquire);

    if (!p && make) {
        own_page *fresh = calloc(1, sizeof(*fresh));

        if (fresh &&
            atomic_compare_exchange_strong_explicit(
                slot, &p, fresh, memory_order_acq_rel, memory_order_acquire)) {
            p = fresh;
        } else {
            free(fresh); /* another thread made it: p is that one */
        }
    }
    return p;
}

void actx__own_fd_add(int fd)
{
    own_page *p;

    if (fd < 0 || fd >= OWN_MAX || !(p = own_page_of(fd, true))) {
        return;
    }
    atomic_fetch_or_explicit(&(*p)[(fd % OWN_PAGE_FDS) / 64],
                             (uint64_t)1 << (fd % 64), memory_order_relaxed);
}

void actx__own_fd_del(int fd)
{
    own_page *p;

    if (fd < 0 || fd >= OWN_MAX || !(p = own_page_of(fd, false))) {
        return;
    }
    atomic_fetch_and_explicit(&(*p)[(fd % OWN_PAGE_FDS) / 64],
                              ~((uint64_t)1 << (fd % 64)),
                              memory_order_relaxed);
}

bool actx__own_fd(int fd)
{
    own_page *p;

    if (fd < 0 || fd >= OWN_MAX || !(p = own_page_of(fd, false))) {
        return false;
    }
    return (atomic_load_explicit(&(*p)[(fd % OWN_PAGE_FDS) / 64],
                                 memory_order_relaxed) >>
            (fd % 64)) &
           1;
}

void actx__own_close(int fd)
{
    actx__own_fd_del(fd);
    close(fd);
}

/*
 * A fork child, last in its atfork handler (thread.c): the fds still
 * recorded belong to loops the child dropped without closing (other
 * threads', which were in the middle of anything): close the child's
 * copies (the parent's files stay open) and forget them, so that the
 * numbers the child reuses are its own again.  The child has one thread.
 */
void actx__own_fd_atfork_child(void)
{
    for (int pg = 0; pg < OWN_PAGES; pg++) {
        own_page *p =
            atomic_load_explicit(&own_pages[pg], memory_order_relaxed);

        if (!p) {
            continue;
        }
        for (int w = 0; w < OWN_PAGE_FDS / 64; w++) {
            uint64_t bits =
                atomic_exchange_explicit(&(*p)[w], 0, memory_order_relaxed);

            while (bits) {
                close(pg * OWN_PAGE_FDS + w * 64 + __builtin_ctzll(bits));
                bits &= bits - 1;
            }
        }
    }
}
