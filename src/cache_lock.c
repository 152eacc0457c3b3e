/*
 * cache_lock.c - choosing the caches' lock mode and the slow, remote side
 * of the lock (see cache_lock.h).
 */
#include "cache_lock.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "os_cpu.h"
#include "lock.h"

bool cache_lock_rseq;
ptrdiff_t cache_lock_area;

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CACHE_LOCK_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CACHE_LOCK_TSAN 1
#endif
#ifndef CACHE_LOCK_TSAN
#define CACHE_LOCK_TSAN 0       /* it cannot see the sequence's accesses */
#endif

void cache_lock_setup(void)
{
	struct os_rseq rs;

	cache_lock_rseq = false;
	if (!CACHE_LOCK_HAVE_RSEQ || CACHE_LOCK_TSAN || os_rseq_probe(&rs) != 0 || !rs.registered ||
	    os_rseq_faked() || os_membarrier_rseq_register() != 0)
		return;
	cache_lock_area = rs.area;
	cache_lock_rseq = true;
}

#define ALL_CPUS (~0u)

/* membarrier allocates a cpumask and may fail with ENOMEM: retry.  A fast
 * path may commit until it returns, so there is no way on without it. */
static void fence(unsigned int cpu)
{
	for (int tries = 0; (cpu == ALL_CPUS ? os_membarrier_rseq() : os_membarrier_rseq_cpu(cpu)) != 0;
	     tries++) {
		struct timespec ms = { 0, 1000000 };

		if (tries == 100) {
			static const char msg[] = "libpercpu: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) "
						  "keeps failing: a per-CPU cache cannot be locked safely\n";
			ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);

			(void)r;
			abort();
		}
		if (errno == EPERM)
			(void)os_membarrier_rseq_register();
		else if (errno != EINTR)
			nanosleep(&ms, NULL);
	}
}

void cache_lock_remote_raise(struct cache_lock *l)
{
	if (cache_lock_rseq)
		__atomic_fetch_add(&l->remote, 1, __ATOMIC_SEQ_CST);
}

void cache_lock_fence_all(void)
{
	if (cache_lock_rseq)
		fence(ALL_CPUS);
}

void cache_lock_remote_begin(struct cache_lock *l, unsigned int idx)
{
	if (!cache_lock_rseq)
		return;
	cache_lock_remote_raise(l);
	fence(idx);
}

void cache_lock_remote_end(struct cache_lock *l)
{
	if (cache_lock_rseq)
		__atomic_fetch_sub(&l->remote, 1, __ATOMIC_RELEASE);
}

void cache_lock_spin(struct cache_lock *l)
{
	while (!cache_lock_try(l))
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
			pcpu_cpu_relax();
}
