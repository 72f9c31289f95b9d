/*
 * mailbox.pml - the mailbox wake-up protocol of runtime/src/mailbox.c
 * (top comment), as used by actx_poll (runtime/src/poll.c) and the epoll
 * backend (runtime/src/backend-epoll.c).  Run by tests/model/run.sh.
 *
 *   poster:  P1 CAS push msg       owner: O1 if (notified) read efd;
 *            P2 load notify_me                  notified = 0
 *            P3 if (notify_me >= level    O2 store notify_me = level
 *                   && !xchg(notified, 1)) O3 look for work; none: sleep
 *                   write efd                 (epoll; reads efd when it
 *                                             reports it readable, and
 *                                             after a read that got the
 *                                             write, notified = 0)
 *                                         O4 store notify_me = 0; drain
 *
 * Memory model: every access in the protocol is seq_cst in the C code, so
 * Promela's interleaving semantics (sequential consistency) is exact.  Each
 * C atomic operation is one Promela step; the steps the C code does as
 * separate operations (xchg and then write/read of the eventfd, epoll
 * returning and then the read) are separate steps here, so other threads
 * can run between them.
 *
 * Abstractions:
 *   head       number of messages in the mailbox.  The CAS loop of
 *              actx__mb_post is one successful CAS under SC: head++.
 *              actx__drain is one exchange: consumed += head, head = 0.
 *              (CLOSED / -EPIPE is not modelled.)
 *   efd        whether the eventfd counter is non-zero: a write sets it, a
 *              read (actx__mb_ack) clears it (a read of 0 is EAGAIN).
 *              Nothing observes the counter's value, only "readable".
 *   sleep      epoll_wait on the level-triggered eventfd: blocks until
 *              efd; when it reports efd readable the owner then reads it
 *              (a later, separate step).  Up to NSPUR times a sleep may
 *              also end without efd (timeout, EINTR, another fd) and
 *              without reading it.
 *   level      all posts and sleeps use wake level 1 (ACTX__WAKE_ANY);
 *              levels are exercised by bh-idle.pml.
 *   owner      actx_run's loop of actx_poll(true): work_now() -> drain;
 *              else prepare_sleep (O1, O2), work_now() (O3), sleep,
 *              end_sleep (O4), drain_if_any.  Its other work (queues, BHs,
 *              fds, timers) is left out: only the mailbox decides whether
 *              it sleeps.  The embedding path (actx_backend_timeout_ms,
 *              disarm_embedding) is not modelled; disarm_embedding has the
 *              same exchange-then-read as O1 (see below).
 *
 * O1 variants (-DO1=n; run.sh checks the one the code has, CODE_O1):
 *   0  the code as of 31cf08d: if (atomic_exchange(&notified, false))
 *      actx__mb_ack(), i.e. clear, THEN read.  LOSES A WAKE-UP (invalid
 *      end state at depth 66, 3816 states, with or without spurious
 *      wake-ups; NPOST=2 NMSG=2).  The trail, in C terms:
 *        - poster Q pushes q1 (P1) and loads notify_me == 1 (P2) while the
 *          owner sleeps; Q is preempted before P3;
 *        - poster R wakes the owner (R's exchange sets notified); the
 *          owner reads the eventfd, O4, drains q1;
 *        - next iteration, O1: the owner's exchange reads true (R's) and
 *          clears notified; before its read(), Q runs P3: exchange reads
 *          false, Q writes the eventfd;
 *        - the owner's read() consumes Q's write; O2, O3 (empty), sleep;
 *        - Q (or anyone) posts q2: P2 sees notify_me == 1, P3's exchange
 *          reads true (Q's stale flag): no write.  The owner sleeps with
 *          q2 in the mailbox, and every later post also finds notified
 *          set: only a timeout or another fd can ever wake it.
 *      The top comment's proof assumes nothing happens between O1's
 *      exchange and O1's read; the read is a separate syscall.
 *   1  proposed fix: if (atomic_load(&notified)) { actx__mb_ack();
 *      atomic_store(&notified, false); } - read while notified is still
 *      set (no poster writes then: only the one whose exchange set it,
 *      and a write of that one that lands after the read is merely a
 *      spurious wake-up), then clear.  Only the owner clears notified, so
 *      the load/store pair needs no RMW.  No errors (48886 states; 885461
 *      with 3 posters; 1335180 with 3 posters and 2 spurious wake-ups),
 *      no non-progress cycle.  The same change applies to
 *      disarm_embedding (poll.c).
 *   2  QEMU style: clear only, read the eventfd only when epoll reports
 *      it.  Also correct here (819379 states with 3 posters), but an
 *      embedding loop never calls actx__backend_wait, so nothing would
 *      read the eventfd there; 1 keeps the read.
 *
 * Properties:
 *   1. No lost wake-up (safety run, invalid end states): the owner leaves
 *      its loop only when it has consumed all NPOST*NMSG messages; if it
 *      sleeps while a message waits and nobody will write the eventfd, it
 *      blocks forever in `sleep' after the posters ended: an invalid end
 *      state.  The assertions check the counters.
 *   2. No spinning (non-progress cycles, -DNP): the owner never wakes
 *      forever without the eventfd being written again, i.e. a write is
 *      never left readable so that every later sleep ends at once.
 *      Progress = a post or a drain that took messages.
 *
 * Mutations of the fixed protocol (-DO1=1 -DMUT_xxx; run.sh requires
 * each to FAIL; spin 6.5.2, NPOST=2 NMSG=2 NSPUR=1):
 *   MUT_NO_O1_CLEAR     O1 reads but does not clear `notified' (no
 *                       re-arm): invalid end state (depth 76, 780 states):
 *                       after the first wake-up every poster finds
 *                       notified set and writes nothing.
 *   MUT_SWAP_O2_O3      look at the head before storing notify_me:
 *                       invalid end state (depth 54, 375 states): a post
 *                       between O3 and O2 sees notify_me == 0.
 *   MUT_P2_BEFORE_P1    poster loads notify_me before its push: invalid
 *                       end state (depth 54, 160 states), the mirror image.
 *   MUT_O4_BEFORE_WAKE  notify_me = 0 stored before the sleep instead of
 *                       after it: invalid end state (depth 56, 464 states).
 *   MUT_NO_WAKE_READ    the owner does not read the eventfd when epoll
 *                       reports it (only at O1): no lost wake-up (safety
 *                       passes, 41131 states) but a non-progress cycle
 *                       (depth 93, 860 states): a write that lands after
 *                       O1's read stays readable while notified is clear,
 *                       every sleep ends at once, the loop spins.
 *   And O1=0 above is the mutation "read after clearing".
 *
 * Adaptive polling (-DPOLL; actx_set_poll_max_ns, poll_window in
 * runtime/src/poll.c).  Before O1, an owner with nothing to run polls:
 * it looks at the head up to NPOLL times (the window; it may also end
 * after any look), with notify_me still 0.  Work found: it drains and
 * goes round again; an empty window: O1..O4 exactly as without polling.
 * Added property:
 *   3. No eventfd write while the owner polls (safety, assertion): a
 *      poster whose P2 load happened while the owner was polling must not
 *      write the eventfd (`polling' is a ghost flag; the poster records it
 *      at P2).  Property 1 now also covers a post that lands after the
 *      window: it must still wake the sleeper.
 * With fd handlers the window also waits on the epoll set with a zero
 * timeout now and then; when that reports the eventfd (a write left from
 * an earlier sleep) actx__mb_ack reads it, before O1, with `notified'
 * left set: modelled as a look that may read a readable efd.
 * Nested waits (-DDEPTH; "Posts for outer contexts" in mailbox.c).  The
 * owner first waits nested, at depth 1, until it has taken every message
 * of depth 1, then pops and waits at the root for the rest.  O2 publishes
 * the depth with the level (one int in the C code, one step here); P3
 * writes the eventfd only for a message of at least that depth.  Even
 * posters post messages of depth 1, odd ones outer messages (depth 0).
 * Property 1 then says: a nested sleep is never left waiting for a
 * message of its depth, and the sleep at the root after the pop is never
 * left waiting for the outer messages that were not allowed to wake the
 * nested one.  Mutant:
 *   MUT_DEPTH_STALE     the owner publishes the depth only at its first
 *                       sleep (a stale, deeper depth at the root): the
 *                       root sleep misses the outer posts.
 *   MUT_DEPTH_STRICT    a post wakes only for a depth greater than the
 *                       sleep's: the nested sleep misses its own posts.
 * Mutants of the polling phase (run.sh requires each to FAIL):
 *   MUT_POLL_ARMED      notify_me = level stored before polling (arm, then
 *                       spin): a post during the window writes the
 *                       eventfd (assertion violated).
 *   MUT_POLL_TRUST      after an empty window the owner arms (O1, O2) but
 *                       trusts the window's last look instead of the O3
 *                       re-check: a post between that look and O2 is
 *                       never seen, the sleep is never woken (invalid end
 *                       state).
 */

#ifndef NPOST
#define NPOST 2         /* posting threads */
#endif
#ifndef NMSG
#define NMSG 2          /* messages per poster */
#endif
#ifndef O1
#define O1 0            /* O1 variant: 0 code as is, 1 fix, 2 clear only */
#endif
#ifndef NSPUR
#define NSPUR 1         /* sleeps that may end without the eventfd */
#endif
#ifndef NPOLL
#define NPOLL 2         /* looks at the head in one polling window */
#endif
#define TOTAL (NPOST * NMSG)
#define LEVEL 1         /* ACTX__WAKE_ANY */
/* Messages of depth 1: posters 2, 4, ... (poster i posts depth i % 2). */
#define NDEEP ((NPOST / 2) * NMSG)

byte head = 0;          /* messages in the mailbox */
byte head_deep = 0;     /* of which of depth 1 (-DDEPTH) */
byte notify_me = 0;     /* mb->notify_me: the level ... */
byte notify_depth = 0;  /* ... and the depth (one int in the C code) */
byte cur_depth = 0;     /* the depth the owner waits at (-DDEPTH) */
byte consumed_deep = 0; /* depth-1 messages the owner has taken */
bool notified = 0;      /* mb->notified */
bool efd = 0;           /* eventfd counter != 0 (a read resets it) */
byte consumed = 0;      /* messages the owner has taken */
byte posted = 0;        /* messages pushed (for the assertions) */
bool polling = 0;       /* ghost: the owner is in its polling window */

/* actx__drain (one exchange of the head). */
inline take()
{
    d_step {
        consumed = consumed + head;
        consumed_deep = consumed_deep + head_deep;
        head = 0;
        head_deep = 0;
        assert(consumed <= posted)
    }
}

/* The owner's O2: the level, with the depth it sleeps at. */
inline arm()
{
#ifdef DEPTH
#ifdef MUT_DEPTH_STALE
    d_step {
        notify_me = LEVEL;
        if
        :: notify_depth == 0 -> notify_depth = cur_depth
        :: else
        fi
    }
#else
    d_step { notify_me = LEVEL; notify_depth = cur_depth }
#endif
#else
    notify_me = LEVEL
#endif
}

proctype poster(byte mydepth)
{
    byte i = 0;
    byte nm, nd;
    bool old;
    bool pl = 0;                              /* owner polled at our P2 */

    do
    :: i < NMSG ->
#ifdef MUT_P2_BEFORE_P1
        d_step { nm = notify_me; nd = notify_depth };
        d_step { head++; posted++ };
#else
        d_step {                              /* P1 */
            head++;
            posted++;
            if
            :: mydepth -> head_deep++
            :: else
            fi
        };
progress_post:
        d_step { nm = notify_me; nd = notify_depth; pl = polling }   /* P2 */
#endif
        if
#ifdef MUT_DEPTH_STRICT
        :: nm >= LEVEL && mydepth > nd ->
#else
        :: nm >= LEVEL && mydepth >= nd ->
#endif
            atomic { old = notified; notified = 1 };   /* P3 xchg */
            if
            :: !old ->
                assert(!pl);                  /* property 3 */
                efd = 1                       /* write(efd): separate step */
            :: else
            fi;
            old = 0
        :: else
        fi;
        d_step { nm = 0; nd = 0; pl = 0; i++ }
    :: else -> break
    od
}

active proctype owner()
{
    bool t;
    byte spur = NSPUR;
    bool found = 0;
    byte np = 0;

#ifdef DEPTH
    cur_depth = 1;                            /* actx_push */
#endif
    do
    :: consumed == TOTAL -> break
#ifdef DEPTH
    :: cur_depth == 1 && consumed_deep == NDEEP ->
        cur_depth = 0                         /* actx_pop */
#endif
    :: else ->
        if
        :: head > 0 ->                        /* work_now: drain, run */
progress_drain:
            take()
        :: else ->
#ifdef POLL
            /* poll_window: look at the head up to NPOLL times. */
#ifdef MUT_POLL_ARMED
            notify_me = LEVEL;
#endif
            polling = 1;
            np = 0;
            do
            :: head > 0 -> found = 1; break  /* work_now: found */
            :: else ->
                if
                :: np < NPOLL - 1 -> np++    /* look again */
                :: np < NPOLL - 1 && efd > 0 ->
                    /* the window's zero-timeout wait for fd handlers
                       reported the eventfd: actx__mb_ack reads it,
                       then clears notified (the read succeeded) */
                    np++;
                    efd = 0;
                    notified = 0
                :: true -> break             /* the window is over */
                fi
            od;
            polling = 0;                      /* (after a break: no d_step) */
            np = 0;
#ifdef MUT_POLL_ARMED
            notify_me = 0;
#endif
            if
            :: found ->
                found = 0;
progress_drain3:
                take();
                goto next
            :: else
            fi;
#endif
            /* O1: actx__mb_prepare_sleep */
#if O1 == 0
            /* mailbox.c at 31cf08d: exchange, then read (two steps) */
            atomic { t = notified; notified = 0 };
            if
            :: t -> d_step { efd = 0; t = 0 } /* actx__mb_ack */
            :: else
            fi;
#elif O1 == 1
            /* proposed fix: read while notified is still set, then clear */
            t = notified;
            if
            :: t ->
                efd = 0;                      /* actx__mb_ack */
#ifndef MUT_NO_O1_CLEAR
                d_step { notified = 0; t = 0 }
#else
                t = 0
#endif
            :: else
            fi;
#else
            /* QEMU style: clear only, read the eventfd only on a wake */
            notified = 0;
#endif
#ifdef MUT_SWAP_O2_O3
            t = (head > 0);                   /* O3 first ... */
            arm();                            /* ... then O2 */
#elif defined(MUT_POLL_TRUST)
            arm();                            /* O2, then no O3: the */
            t = 0;                            /* window saw nothing */
#else
            arm();                            /* O2 */
            t = (head > 0);                   /* O3: work_now's load of head */
#endif
#ifdef MUT_O4_BEFORE_WAKE
            notify_me = 0;
#endif
            if
            :: t -> t = 0
            :: else ->
sleep:          if
                :: efd > 0 ->                 /* epoll: efd readable ... */
#ifndef MUT_NO_WAKE_READ
                    efd = 0;                  /* ... actx__mb_ack reads it */
                    notified = 0              /* ... then clears notified */
#else
                    skip
#endif
                :: spur > 0 -> spur--         /* timeout/EINTR/other fd */
                fi
            fi;
            notify_me = 0;                    /* O4: actx__mb_end_sleep */
            if                                /* actx__drain_if_any */
            :: head > 0 ->
progress_drain2:
                take()
            :: else
            fi
        fi;
next:   skip
    od;
    assert(consumed == TOTAL && head == 0)
}

init
{
    byte i;

    atomic {
        for (i : 1 .. NPOST) {
#ifdef DEPTH
            run poster(i % 2 == 0)
#else
            run poster(0)
#endif
        }
    }
}
