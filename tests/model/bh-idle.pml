/*
 * bh-idle.pml - scheduling one BH from other threads (schedule_remote and
 * actx_bh_cancel in runtime/src/bh.c) against an owner that sleeps bounded
 * (wake level 1, ACTX__WAKE_ANY: it times out and re-checks) or unbounded
 * (wake level 2, ACTX__WAKE_UNBOUNDED).  The wake-up protocol is the one of
 * mailbox.pml (see there for P1-P3, O1-O4 and the eventfd); run by
 * tests/model/run.sh.  Sequential consistency as in mailbox.pml: every
 * access modelled here is seq_cst or an atomic RMW in the C code, except
 * the relaxed loads that only start a CAS loop or gate a fetch_and (their
 * outcome is re-decided by the RMW, so one SC step is exact).
 *
 * The BH (one; the mailbox holds nothing else):
 *   rflags   R_SCHED | R_MAILED | R_IDLE, changed by CAS / fetch_and.
 *   inmb     the BH's mailbox link (R_MAILED makes it unique).
 *   in_list  the BH is in the owner's BH list.
 *   lstate (owner-thread schedules) and cgen are not modelled: a remote
 *   schedule that finds a valid local schedule sets R_SCHED as any other
 *   (idle as the local one: one of the modelled choices), and an owner
 *   that has one does not sleep (actx__bh_has_nonidle reads lstate).  A
 *   schedule that finds R_SCHED writes rflags unchanged (bh.c: so that the
 *   run covering it is ordered after it), the same step as a read here.
 *
 * Other threads: NTHR threads, each doing NOPS operations chosen
 * nondeterministically among actx_bh_schedule, actx_bh_schedule_idle and
 * actx_bh_cancel.  This includes the race a notifier must survive (it is
 * why a schedule re-reads rflags after its push, runtime/src/bh.c): A
 * schedules the BH idle and wins R_MAILED; before A's push is
 * visible, B cancels it and schedules it normally, sees R_MAILED and
 * notifies at level 1 (too early); A then pushes, notifies at level 2 and
 * re-reads rflags.
 *
 * The owner: actx_poll(true) in actx_run's loop.  work_now (mailbox head,
 * then the list's rflags); drain (exchange the head, then actx__bh_arrived:
 * fetch_and ~R_MAILED, list the BH if R_SCHED); run_pass (bh_poll_ctx:
 * unlist, test-and-clear R_SCHED, run).  Sleep level: 1 when the BH is
 * listed (bh_head != NULL: timeout 10 ms), else 1 or 2 nondeterministically
 * (other idle BHs or a timer may bound the sleep, or nothing does).
 * A sleep ends when efd > 0 (then the owner reads it), or
 *   - at level 1 by its timeout, allowed only while no non-idle schedule
 *     is pending (R_SCHED && !R_IDLE): a non-idle BH must never wait for
 *     the timeout (define LOOSE to allow every level-1 timeout: then only
 *     unbounded sleeps are checked);
 *   - by leaving the model when all threads are done and nothing is
 *     scheduled or mailed (the owner would sleep on, legitimately).
 * Property (invalid end states): the owner never blocks for good in a
 * sleep while the BH is scheduled (idle: only level-2 sleeps must be woken;
 * non-idle: every sleep must be woken).
 *
 * Results (spin 6.5.2, NTHR=2 NOPS=2): with O1=0 (the code as of 31cf08d)
 * the mailbox's lost wake-up of mailbox.pml shows here too (invalid end
 * state at depth 154).  With the proposed O1=1: no errors, 2636923 states
 * (NTHR=3 NOPS=1: 9315200 states; O1=2: 2520150 states).
 *
 * Mutations (-DO1=1 -DMUT_xxx; run.sh requires each to FAIL):
 *   MUT_NO_REREAD         drop schedule_remote's re-read of rflags after an
 *                         idle post: invalid end state (depth 95, 182043
 *                         states).  That case: A's idle CAS wins
 *                         R_MAILED; B cancels, schedules, sees R_MAILED and
 *                         notifies while the owner is awake (no write);
 *                         the owner stores level 1 (bounded), O3 finds
 *                         nothing; A pushes, notify(2) < 1: no write.  The
 *                         non-idle BH waits for the timeout.
 *   MUT_REREAD_FIRST      the re-read before the push instead of after it:
 *                         invalid end state (depth 100, 194080 states).
 *   MUT_NO_MAILED_NOTIFY  a non-idle schedule that finds R_MAILED does not
 *                         notify: invalid end state (depth 98, 58419
 *                         states): the idle poster's re-read came before
 *                         this schedule, its push after the owner's O3.
 *   MUT_UNBOUNDED_AS_ANY  the owner publishes level 1 for an unbounded
 *                         sleep: invalid end state (depth 86, 2823 states),
 *                         also with -DLOOSE: an idle BH posted to a sleeper
 *                         that never times out.
 * With -DLOOSE (every level-1 timeout allowed: only unbounded sleeps are
 * checked) the first three PASS (1449509, 1622089, 2467425 states): an
 * unbounded sleep has notify_me == 2, so the idle post's own level-2
 * notify (P2/P3 after P1, as in mailbox.pml) wakes it whatever B does.
 * The re-read and the R_MAILED notify only keep a non-idle BH from waiting
 * out a bounded sleep (up to 10 ms, or a timer's timeout): a latency
 * guarantee, not a liveness one.
 */

#ifndef NTHR
#define NTHR 2          /* scheduling threads */
#endif
#ifndef NOPS
#define NOPS 2          /* operations per thread */
#endif
#ifndef O1
#define O1 0            /* O1 variant as in mailbox.pml */
#endif

#define R_SCHED  1
#define R_MAILED 2
#define R_IDLE   4
#define NOT(b)   (255 - (b))
#define WAKE_ANY 1
#define WAKE_UNBOUNDED 2

byte rflags = 0;
bool inmb = 0;
bool in_list = 0;
byte notify_me = 0;
bool notified = 0;
bool efd = 0;           /* eventfd counter != 0 (a read resets it) */
byte nfinished = 0;

#define NONIDLE_PENDING ((rflags & R_SCHED) && !(rflags & R_IDLE))
#ifdef LOOSE
#define TIMEOUT_OK 1
#else
#define TIMEOUT_OK (!NONIDLE_PENDING)
#endif

/* actx__mb_notify */
inline notify(level)
{
    nm = notify_me;                           /* P2 */
    if
    :: nm >= level ->
        atomic { old = notified; notified = 1 };   /* P3 */
        if
        :: !old -> efd = 1
        :: else
        fi;
        old = 0
    :: else
    fi;
    nm = 0
}

inline reread()
{
    rf = rflags;
    if
    :: (rf & R_SCHED) && !(rf & R_IDLE) -> rf = 0; notify(WAKE_ANY)
    :: else -> rf = 0
    fi
}

/* schedule_remote (bh.c) */
inline schedule_remote(idle)
{
    atomic {                                  /* the CAS loop */
        ofl = rflags;
        if
        :: ofl & R_SCHED -> skip
        :: else ->
            rflags = ((ofl | R_SCHED | R_MAILED) & NOT(R_IDLE)) |
                     (idle -> R_IDLE : 0)
        fi
    };
    if
    :: ofl & R_SCHED -> skip                   /* already scheduled */
    :: else ->
        if
        :: ofl & R_MAILED ->                   /* still in the mailbox */
#ifndef MUT_NO_MAILED_NOTIFY
            if
            :: !idle -> notify(WAKE_ANY)
            :: else
            fi
#else
            skip
#endif
        :: else ->
#ifdef MUT_REREAD_FIRST
            if
            :: idle -> reread()
            :: else
            fi;
#endif
            inmb = 1;                         /* P1 */
            notify((idle -> WAKE_UNBOUNDED : WAKE_ANY));
#if !defined(MUT_NO_REREAD) && !defined(MUT_REREAD_FIRST)
            if
            :: idle -> reread()
            :: else
            fi
#endif
        fi
    fi;
    ofl = 0
}

/* actx_bh_cancel from another thread */
inline cancel()
{
    rf = rflags;
    if
    :: rf & R_SCHED -> d_step { rflags = rflags & NOT(R_SCHED); rf = 0 }
    :: else -> rf = 0
    fi
}

proctype remote()
{
    byte n = NOPS;
    byte ofl, rf, nm;
    bool old;

    do
    :: n > 0 ->
        if
        :: schedule_remote(0)
        :: schedule_remote(1)
        :: cancel()
        fi;
        n--
    :: else -> break
    od;
    nfinished++
}

/* work_now: mailbox head (O3), then actx__bh_has_nonidle */
inline work_now()
{
    work = inmb;
    if
    :: !work && in_list ->
        rf = rflags;
        d_step { work = (rf & R_SCHED) && !(rf & R_IDLE); rf = 0 }
    :: else
    fi
}

/* actx__drain_if_any + actx__bh_arrived */
inline drain_if_any()
{
    if
    :: inmb ->
        inmb = 0;                             /* actx__drain */
        d_step { ofl = rflags; rflags = rflags & NOT(R_MAILED) };
        if
        :: ofl & R_SCHED -> d_step { in_list = 1; ofl = 0 }
        :: else -> ofl = 0
        fi
    :: else
    fi
}

/* run_pass -> actx__bh_poll_ctx for the one BH; prog: a non-idle run */
inline run_pass()
{
    prog = 0;
    if
    :: in_list ->
        in_list = 0;
        rf = rflags;
        if
        :: rf & R_SCHED ->
            d_step { rf = rflags; rflags = rflags & NOT(R_SCHED) };
            if
            :: (rf & R_SCHED) && !(rf & R_IDLE) -> d_step { prog = 1; rf = 0 }
            :: else -> rf = 0                 /* idle run, or cancelled */
            fi
        :: else -> rf = 0
        fi
    :: else
    fi
}

active proctype owner()
{
    bool t, work, prog;
    byte level, rf, ofl;

top:
    drain_if_any();
    work_now();
    if
    :: work ->
        work = 0;
        drain_if_any();
        run_pass();
        if
        :: prog -> prog = 0; goto top         /* actx_poll returned 1 */
        :: else
        fi
    :: else
    fi;
    if
    :: in_list -> level = WAKE_ANY
    :: else ->
        if
        :: level = WAKE_ANY                   /* another idle BH, a timer */
        :: level = WAKE_UNBOUNDED             /* nothing bounds the sleep */
        fi
    fi;
    /* O1 */
#if O1 == 0
    atomic { t = notified; notified = 0 };
    if
    :: t -> d_step { efd = 0; t = 0 }
    :: else
    fi;
#elif O1 == 1
    t = notified;
    if
    :: t -> efd = 0; d_step { notified = 0; t = 0 }
    :: else
    fi;
#else
    notified = 0;
#endif
#ifdef MUT_UNBOUNDED_AS_ANY
    notify_me = WAKE_ANY;                     /* O2, wrong level */
#else
    notify_me = level;                        /* O2 */
#endif
    work_now();                               /* O3 */
    if
    :: work -> work = 0
    :: else ->
sleep:  if
        :: efd > 0 -> efd = 0; notified = 0   /* woken; actx__mb_ack */
        :: level == WAKE_ANY && TIMEOUT_OK -> skip   /* timed out */
        :: atomic {
               nfinished == NTHR && !inmb && !(rflags & R_SCHED) ->
               goto done
           }
        fi
    fi;
    d_step { notify_me = 0; level = 0 }       /* O4 */
    drain_if_any();
    run_pass();
    prog = 0;
    goto top;
done:
    skip
}

init
{
    byte i;

    atomic {
        for (i : 1 .. NTHR) {
            run remote()
        }
    }
}
