/*  test_threads: per-thread sleep counts, for tests that count wake-ups.

    A thread's voluntary context switches are the times it slept waiting for
    something; each is one wake-up later. Counting them is how tests check
    the hops of a message (docs/performance.md, "Hops of a lone message")
    without timing anything. */
#ifndef TEST_THREADS_H_INCLUDED
#define TEST_THREADS_H_INCLUDED

#include <sys/types.h>

//  Sleeps (voluntary context switches) so far of the threads of process PID
//  (0: this one) named NAME, summed; with NAME NULL, of the calling thread
//  (PID 0 only). -1 when PID's tasks cannot be listed.
long test_thread_sleeps(pid_t pid, const char *name);

#endif
