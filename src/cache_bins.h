/*
 * cache_bins.h - the per-CPU caches' size classes and data, shared by the
 * caches' fast paths (cache.h, inline in the entry points of alloc.c), their
 * slow paths (cache.c) and their census and verification (cache_census.c).
 *
 * Invariant, checked by cache_verify: a cached object is allocated in its
 * chunk's maps (start and boundary bits set), its live bit is clear, it is
 * aligned to its class, and it sits in exactly one bin of one cache; a
 * cache's `bytes` is the sum over its bins of objects x class size, at most
 * cache_limit; the objects in a bin's first `clean` slots read zero in
 * every unit.
 */
#ifndef PCPU_CACHE_BINS_H
#define PCPU_CACHE_BINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache_lock.h"
#include "pool.h"

#define CACHE_MAX_SIZE 256
#define CACHE_MAX_ALIGN 64

/* Caches are on (set at initialisation, then read without a lock). */
extern bool pcpu_cache_enabled __attribute__((visibility("hidden")));

/* The alignment every cached object of this size has. */
static inline size_t cache_class_align(size_t size)
{
	size_t a = size & -size;

	return a < CACHE_MAX_ALIGN ? a : CACHE_MAX_ALIGN;
}

#define NR_CLASSES (CACHE_MAX_SIZE / PCPU_MIN_ALLOC_BYTES)
#define MAX_BIN_CAP 512

struct cache_bin {
	void **slots;           /* [cap], in the caches' metadata mapping */
	unsigned int n, cap;
	/* Slots [0, clean) hold objects zeroed by their refill (never with a
	 * memory checker): handed out without zeroing.  Frees push above. */
	unsigned int clean;
	/* User allocations and frees of this class the bin served (the
	 * statistics' counts and size histogram are summed from these). */
	uint64_t nr_alloc, nr_dealloc;
};

struct pcpu_cache {
	struct cache_lock lk;   /* first: the rseq lock reads it at the cache's start */
	int used;               /* touched since the balancer last looked */
	size_t bytes;           /* bytes of every unit held in the bins */
	uint64_t nr_refills, nr_drains;
	int64_t net;            /* allocations less frees served, not yet told to the pool */
	/* The balancer's idle sweep only (cache_drain): unused since this
	 * pool-clock time; emptied since then. */
	int64_t quiet_since;
	bool drained;
	struct cache_bin bins[NR_CLASSES];
} __attribute__((aligned(64)));

/* Set at initialisation (cache.c), then read-only. */
#define CACHE_HIDDEN __attribute__((visibility("hidden")))
/* Spare caches per CPU (cache.c says why two). */
#define CACHE_SPARES 2
/* [(1 + CACHE_SPARES) x nr_caches]: each CPU's, then the first spares, then
 * the second: CPU i's are caches[i], caches[nr_caches + i], ... */
extern struct pcpu_cache *caches CACHE_HIDDEN;
extern unsigned int nr_caches CACHE_HIDDEN;     /* CPUs (units) with a cache */
extern size_t cache_limit CACHE_HIDDEN;         /* bytes per cache */

/* Every cache, the spares included. */
static inline unsigned int nr_all_caches(void)
{
	return (1 + CACHE_SPARES) * nr_caches;
}

/* CPU (unit) cpu's cache (which 0) or its spare number which. */
static inline struct pcpu_cache *cache_of(unsigned int cpu, unsigned int which)
{
	return &caches[which * nr_caches + cpu];
}

/* Bytes of c's slots: its bins' slot arrays lie back to back, from
 * bins[0].slots on. */
static inline size_t cache_slots_bytes(const struct pcpu_cache *c)
{
	const struct cache_bin *last = &c->bins[NR_CLASSES - 1];

	return (size_t)(last->slots + last->cap - c->bins[0].slots) * sizeof(void *);
}

static inline bool is_spare(const struct pcpu_cache *c)
{
	return c >= caches + nr_caches;
}

/* Pool clients (cache_census.c), with every cache quiesced: add what the
 * caches hold and served; check every cached object and byte count. */
void cache_census(struct pool_census *acc);
int cache_verify(char *msg, size_t msglen);

#endif
