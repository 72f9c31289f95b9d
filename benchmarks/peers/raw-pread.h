/*
 * raw-pread.h - file reads with no runtime at all: the floors of the
 * file-AIO figures.  Random BENCH_BS-byte blocks of fd (blocks of them).
 */
#ifndef BENCH_RAW_PREAD_H
#define BENCH_RAW_PREAD_H

#define BENCH_BS 4096

/*
 * Main thread.  Reads per second of nthreads threads each doing
 * synchronous preads in a tight loop for `seconds`.
 */
double raw_preads(int fd, long blocks, int nthreads, double seconds);

/*
 * Main thread.  Reads per second of one thread doing them back to back:
 * the floor of any design with one read in flight (one syscall each, no
 * hand-off, no loop).
 */
double raw_single(int fd, long blocks, double seconds);

#endif /* BENCH_RAW_PREAD_H */
