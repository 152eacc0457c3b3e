/*
 * cpu_kit.h - CPU affinity helpers the CPU tests share (test_cpu and,
 * through this_cpu_kit.h, the test_this_cpu* programs and test_counter):
 * the CPUs this process may run on, pinning to one of them, and moving
 * another thread between them.
 */
#ifndef PCPU_TEST_CPU_KIT_H
#define PCPU_TEST_CPU_KIT_H

#include <sched.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "check.h"

static cpu_set_t kit_allowed;          /* the CPUs this process may run on */
static int kit_nr_allowed;

/* Read kit_allowed (once, in main, before any pinning). */
static inline void kit_init_cpus(void)
{
	REQUIRE(sched_getaffinity(0, sizeof(kit_allowed), &kit_allowed) == 0, "sched_getaffinity");
	kit_nr_allowed = CPU_COUNT(&kit_allowed);
	REQUIRE(kit_nr_allowed > 0, "no CPU allowed");
}

/* The (i mod kit_nr_allowed)-th allowed CPU. */
static inline int kit_nth_allowed(unsigned i)
{
	for (int c = 0, n = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &kit_allowed) && (unsigned)n++ == i % (unsigned)kit_nr_allowed)
			return c;
	return 0;
}

/* The highest allowed CPU, or -1. */
static inline int kit_highest_allowed(void)
{
	for (int c = CPU_SETSIZE - 1; c >= 0; c--)
		if (CPU_ISSET(c, &kit_allowed))
			return c;
	return -1;
}

static inline bool kit_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) == 0;
}

static inline void kit_unpin(void)
{
	(void)sched_setaffinity(0, sizeof(kit_allowed), &kit_allowed);
}

/* One step of a thread that moves workers between CPUs: thread tid (0:
 * not started yet, left alone) goes to the allowed CPU rng chooses, or
 * one time in three may run on all of them; then a 0.2 ms sleep. */
static inline void kit_flip(pid_t tid, uint64_t rng)
{
	struct timespec ts = { 0, 200000 };
	cpu_set_t set;

	if (rng % 3 == 0) {
		set = kit_allowed;
	} else {
		CPU_ZERO(&set);
		CPU_SET(kit_nth_allowed((unsigned)(rng >> 20)), &set);
	}
	if (tid)
		(void)sched_setaffinity(tid, sizeof(set), &set);
	nanosleep(&ts, NULL);
}

#endif
