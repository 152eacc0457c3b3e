/*
 * cache_lock.h - the lock of one per-CPU cache (cache.c), taken by the
 * allocation and free fast paths without an atomic instruction where
 * restartable sequences allow.
 *
 * Two modes, chosen once at initialisation (cache_lock_setup):
 *
 *   rseq  (x86_64, glibc's rseq area registered in every thread, membarrier
 *         for rseq available, not under ThreadSanitizer).  A thread locks
 *         the cache of the CPU it runs on with a restartable sequence:
 *         read the CPU number, check that the cache's `remote` count and
 *         `locked` word are 0, store 1 to `locked` (the commit).  Two
 *         threads on one CPU cannot both commit: the second runs only
 *         once the first is preempted, which restarts a sequence that has
 *         not committed.  Any other thread (the balancer, pcpu_balance, a
 *         fork, a census) first raises `remote`, then issues a membarrier
 *         on that CPU, which restarts a sequence that read remote == 0 and
 *         has not committed, and then spins for `locked` with an atomic
 *         exchange: a fast path that committed before the membarrier
 *         releases it, and none commits after.  A thread whose CPU number
 *         has no cache (more CPUs than units) finds the cache busy.
 *   lock  (everywhere else).  Every locker uses an atomic exchange on the
 *         cache of the unit pcpu_current_cpu() names; `remote` is unused.
 *
 * Either way a fast path never waits: a busy cache sends the caller to its
 * CPU's spare caches (locked by exchange in both modes, no `remote`), then
 * to the pool.  Releasing is a store with release order.
 */
#ifndef PCPU_CACHE_LOCK_H
#define PCPU_CACHE_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os_cpu.h"

struct cache_lock {
	int locked;             /* 1: held */
	int remote;             /* lockers from other CPUs that want it (rseq mode) */
};

/* Set by cache_lock_setup, then read-only. */
extern bool cache_lock_rseq __attribute__((visibility("hidden")));
extern ptrdiff_t cache_lock_area __attribute__((visibility("hidden")));

/* Choose the mode (above).  In rseq mode the caches are indexed by the CPU
 * number itself, and each starts with its struct cache_lock. */
void cache_lock_setup(void);

static inline bool cache_lock_try(struct cache_lock *l)
{
	return !__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE);
}

static inline void cache_lock_release(struct cache_lock *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

#define CACHE_LOCK_HAVE_RSEQ OS_RSEQ_HAVE_TRYLOCK
/*
 * rseq mode: lock the cache of the CPU the thread runs on; returns it, or
 * NULL when it is held, wanted remotely, or there is none for this CPU.
 */
static inline __attribute__((always_inline)) struct cache_lock *
cache_lock_here_rseq(char *base, size_t stride, unsigned int nr)
{
	return (struct cache_lock *)os_rseq_trylock_here(cache_lock_area, base, stride, nr);
}

/*
 * Slow paths that may run on any CPU, around one or more cache_lock_spin
 * of the cache of CPU (unit) idx: in rseq mode, keep the fast paths of
 * that CPU out (raise `remote`, then a membarrier on it).  May make system
 * calls: never on an atomic path.
 */
void cache_lock_remote_begin(struct cache_lock *l, unsigned int idx);
void cache_lock_remote_end(struct cache_lock *l);
/* The same for many caches at once: raise each one's `remote`, then one
 * fence for every CPU, then take their locks. */
void cache_lock_remote_raise(struct cache_lock *l);
void cache_lock_fence_all(void);

/* Take the lock, spinning (between remote_begin and remote_end in rseq mode). */
void cache_lock_spin(struct cache_lock *l);

#endif
