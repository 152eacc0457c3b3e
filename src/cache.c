/*
 * cache.c - per-CPU caches of free objects in front of the chunk allocator.
 *
 * Why per CPU and not per thread: the memory held is bounded by the number
 * of CPUs, not of threads (servers create and end threads by the
 * thousand, and a blocked thread would strand a per-thread cache); a
 * thread's exit leaves nothing behind; an object freed by another thread
 * lands in the freeing CPU's cache, where that CPU reuses it; and another
 * thread can empty any cache (pcpu_balance, fork, the balancer) by taking
 * its lock.
 *
 * Each cache has a lock (cache_lock.h) that the allocation and free paths
 * only ever try: with a restartable sequence where the machine allows (no
 * atomic instruction), else one atomic exchange.  Only the slow paths that
 * must empty a cache from anywhere spin for it (after a membarrier that
 * keeps that CPU's fast paths out); a holder never takes another lock, so
 * the lock is a leaf, and makes no system call but one: a drain that
 * emptied a cache gives its slot pages back (one madvise) while holding
 * it, which fast paths skip like any held cache.
 *
 * Each CPU also has CACHE_SPARES spare caches, locked by atomic exchange
 * alone, which a fast path tries in turn when its CPU's cache is taken:
 * with restartable sequences that means the holder is not running here,
 * preempted (for milliseconds) or migrated.  With several threads per CPU
 * in a tight loop a holder is often preempted inside, and every other
 * thread of that CPU would take the pool's lock meanwhile.  Only when all
 * are taken (or being emptied) does a caller use the pool, so nobody waits
 * behind a preempted holder.  Why two: with four threads per CPU, 0.8-0.9%
 * of allocations found the cache and one spare taken; each then went
 * through the pool one object at a time, into holes whose neighbours sit
 * in the other CPU's cache, and the objects of the two CPUs' caches ended
 * up sharing live-map lines (both CPUs' atomic bit operations on the same
 * lines: 80 Mops/s with 8 threads on 2 CPUs against 100 with one thread).
 * A second spare cut the misses to 0.3% and took 8 threads to 93 Mops/s.
 * A spare is a cache like the others but for its lock (remote lockers spin
 * for it without a membarrier).
 *
 * A bin per size class holds handles.  An empty bin is refilled with a
 * batch allocated from populated pages under one acquisition of the pool's
 * lock (no system call: PCPU_ATOMIC may refill); a full bin, or a cache
 * over its byte limit, gives half a bin back under one acquisition.
 * Limits: per cache pcpu_config.cache_size (PCPU_CACHE_SIZE) bytes per
 * unit, so at most (1 + CACHE_SPARES) x nr_cpus x cache_size bytes of every
 * unit are cached (each CPU's cache and its spares; a spare fills only
 * while the caches before it are taken, and the balancer empties it once
 * it has stayed unused).
 * Caches idle for a whole balance interval are emptied by the balancer;
 * pcpu_balance() empties all of them.
 *
 * The caches' data and invariants are in cache_bins.h; the fast paths
 * (a hit) in cache.h; their census and verification in cache_census.c.
 */
#define _GNU_SOURCE
#include "cache.h"
#include "cache_bins.h"
#include "cache_lock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "memcheck.h"
#include "pool_init.h"
#include "pool_verify.h"

#define DEFAULT_CACHE_SIZE (32u << 10)   /* bytes of every unit, per CPU */
/*
 * A refill's batch: half a bin, and at most 64 objects or 2 KiB of every
 * unit, whichever is more (up to MAX_BATCH).  2 KiB is what one 64-byte
 * line of the live map covers: batches that small classes take back to
 * back for different CPUs would otherwise share live-map lines, which
 * every allocation and free of theirs writes (two threads on two CPUs
 * doing rounds of 16 B objects ran at 79-111 Mops/s with 1 KiB batches,
 * 100-112 with 2 KiB); and a batch's fixed cost (the pool's lock, the
 * first object's search) is shared by more tiny objects.
 */
#define MAX_BATCH 256
#define BATCH_OBJECTS 64
#define BATCH_BYTES (POOL_LIVE_LINE_BITS * PCPU_MIN_ALLOC_BYTES)

/* Set at initialisation (a pool client's ready hook), then read-only. */
static void **all_slots;               /* every bin's slots (os_meta_alloc) */
static size_t all_slots_bytes;

__thread unsigned int cache_home_cpu __attribute__((tls_model("initial-exec")));

/* Slow paths, from any CPU: keep c's fast paths out, then lock it (holders
 * keep the lock for a few instructions).  cache_remote_end when done.  A
 * spare needs neither: every locker of it uses the exchange. */
static void cache_remote_begin(struct pcpu_cache *c)
{
	if (!is_spare(c))
		cache_lock_remote_begin(&c->lk, (unsigned int)(c - caches));
}

static void cache_remote_end(struct pcpu_cache *c)
{
	if (!is_spare(c))
		cache_lock_remote_end(&c->lk);
}

static void cache_take(struct pcpu_cache *c)
{
	cache_lock_spin(&c->lk);
}

/* How many more objects of size bytes c may hold under its byte limit. */
static size_t cache_room(const struct pcpu_cache *c, size_t size)
{
	return c->bytes < cache_limit ? (cache_limit - c->bytes) / size : 0;
}

static unsigned int bin_cap(size_t size)
{
	size_t cap = cache_limit / 4 / size;

	return cap < 4 ? 4 : cap > MAX_BIN_CAP ? MAX_BIN_CAP : (unsigned int)cap;
}

/* Memory checkers: a cached object is inaccessible, a handed-out one usable. */
void cache_annotate(void *handle, int bits, bool usable)
{
	int off;
	struct pcpu_chunk *ch;

	pcpu_lock(&pcpu_pool.lock);
	ch = pool_handle_chunk(handle, &off);
	if (usable)
		memcheck_alloc(ch, off / PCPU_MIN_ALLOC_BYTES, bits);
	else
		memcheck_free(ch, off / PCPU_MIN_ALLOC_BYTES, bits);
	pcpu_unlock(&pcpu_pool.lock);
}

/*
 * Give objects of `bits` bits in transit (taken out of a bin, or refilled
 * and not put in one) back to their chunks, under one acquisition of the
 * pool's lock (spinning for it when atomic: no system call), unused since
 * `unused_since` (pool clock, or POOL_NOW), and tell the pool of `net`
 * allocations the cache served beyond its frees.  Asks for a balance pass
 * as a free does (pool_free_wants_reclaim).
 */
static void give_back(void *const *handles, unsigned int n, int bits, int64_t net, bool atomic,
		      int64_t unused_since)
{
	bool wake = false;

	if (!n && !net)
		return;
	pool_lock_for(atomic);
	pool_note_live(net);
	__atomic_fetch_sub(&pcpu_pool.nr_transit, (long)n, __ATOMIC_RELAXED);
	if (memcheck_active()) {
		/* Annotate each object as the maps free it (shared granules). */
		for (unsigned int i = 0; i < n; i++) {
			int off;
			struct pcpu_chunk *ch = pool_handle_chunk(handles[i], &off);

			memcheck_free(ch, off / PCPU_MIN_ALLOC_BYTES, bits);
			pool_free_area(ch, off / PCPU_MIN_ALLOC_BYTES, bits, unused_since);
			wake |= pool_free_wants_reclaim(ch);
		}
	} else {
		wake = pool_free_handles(handles, n, bits, unused_since);
	}
	pool_unlock_for(atomic);
	if (wake)
		pool_want_balance(POOL_BALANCE_FREE);
}

/* ---- refill -------------------------------------------------------------- */

/*
 * Allocate up to `want` objects for class cls from populated pages under
 * one acquisition of the pool's lock.  The first is the caller's (live,
 * counted as an allocation made through the pool, usable for memory
 * checkers); the rest are in transit to the bin, inaccessible.  With
 * `zero`, all of them are zeroed in every unit after the lock is dropped
 * (one memset per run and unit; none for fresh memory).  Returns how many.
 */
static unsigned int refill_batch(size_t size, unsigned int want, void **out, int64_t net,
				 bool atomic, bool zero)
{
	int bits = (int)(size / PCPU_MIN_ALLOC_BYTES);
	int align_bits = (int)(cache_class_align(size) / PCPU_MIN_ALLOC_BYTES);
	struct pool_run runs[MAX_BATCH];
	struct pool_batch bt = { .out = out, .runs = runs };
	unsigned int n;

	pool_lock_for(atomic);
	pool_note_live(net);
	n = pool_find_areas(size, bits, align_bits, want, &bt);
	if (n) {
		pool_account_alloc(bt.first_ch, size);
		pool_live_set(bt.first_ch, bt.first_off);
		memcheck_alloc(bt.first_ch, bt.first_off, bits);
	}
	if (n > 1)
		__atomic_fetch_add(&pcpu_pool.nr_transit, (long)n - 1, __ATOMIC_RELAXED);
	if (pcpu_pool.nr_empty_pop_pages < pcpu_pool.empty_pop_low)
		pool_want_balance(POOL_BALANCE_LOW);
	pool_unlock_for(atomic);
	for (unsigned int r = 0, at = 0; zero && r < bt.nr_runs; at += runs[r++].n)
		if (!runs[r].zero)
			for (unsigned int cpu = 0; cpu < pcpu_pool.nr_cpus; cpu++)
				memset(pcpu_ptr(out[at], cpu), 0, runs[r].n * size);
	return n;
}

/*
 * The bin of size's class was empty: refill it and return one object
 * (zeroed if *zeroed).  The rest (at most `room`, what the cache could take
 * when it was looked at) go to the cache of the CPU the thread runs on by
 * then (or back), zeroed by refill_batch, outside every lock, and kept
 * below any objects freed into the bin meanwhile (the bin's clean slots),
 * so allocations hand them out without zeroing.  Not with a memory
 * checker: they are inaccessible.
 */
static void *refill(size_t size, unsigned int flags, int64_t net, unsigned int room, bool *zeroed)
{
	struct pcpu_cache *c;
	unsigned int cls = (unsigned int)(size / PCPU_MIN_ALLOC_BYTES) - 1, n, kept;
	void *got[MAX_BATCH];
	unsigned int want = bin_cap(size) / 2, most = BATCH_BYTES / size;
	bool clean = !memcheck_active();

	if (most < BATCH_OBJECTS)
		most = BATCH_OBJECTS;
	if (want > most)
		want = most;
	if (want > MAX_BATCH)
		want = MAX_BATCH;

	if (want > room + 1)
		want = room + 1;        /* the first object is the caller's */

	n = refill_batch(size, want, got, net, flags & PCPU_ATOMIC, clean);
	*zeroed = n && clean;
	if (n <= 1)
		return n ? got[0] : NULL;
	kept = 0;
	if ((c = cache_lock_this()) != NULL) {
		struct cache_bin *b = &c->bins[cls];
		size_t fit = cache_room(c, size);

		kept = n - 1;
		if (kept > b->cap - b->n)
			kept = b->cap - b->n;
		if (kept > fit)
			kept = (unsigned int)fit;
		if (clean) {
			memmove(b->slots + b->clean + kept, b->slots + b->clean,
				(b->n - b->clean) * sizeof(*got));
			memcpy(b->slots + b->clean, got + 1, kept * sizeof(*got));
			b->clean += kept;
		} else {
			memcpy(b->slots + b->n, got + 1, kept * sizeof(*got));
		}
		b->n += kept;
		c->bytes += kept * size;
		__atomic_fetch_sub(&pcpu_pool.nr_transit, (long)kept, __ATOMIC_RELAXED);
		c->nr_refills++;
		__atomic_store_n(&c->used, 1, __ATOMIC_RELAXED);
		cache_unlock(c);
	}
	give_back(got + 1 + kept, n - 1 - kept, (int)(size / PCPU_MIN_ALLOC_BYTES), 0,
		  flags & PCPU_ATOMIC, POOL_NOW);
	return got[0];
}

/* ---- the fast paths --------------------------------------------------------- */

/* cache_alloc found c's bin of size's class empty: unlock c, refill. */
void *cache_alloc_empty(struct pcpu_cache *c, size_t size, unsigned int flags, bool *zeroed)
{
	struct cache_bin *b = &c->bins[size / PCPU_MIN_ALLOC_BYTES - 1];
	int64_t net = c->net;
	/* A batch the cache can hold: taking more would give it back. */
	size_t room = cache_room(c, size);

	__atomic_store_n(&c->net, 0, __ATOMIC_RELAXED);
	cache_unlock(c);
	return refill(size, flags, net, room < b->cap ? (unsigned int)room : b->cap, zeroed);
}

/*
 * cache_free with c locked and b full, or c over its limit: give back half
 * of b, or, when c is over its limit, half of its largest bin (emptying it
 * would only have its next allocations refill it), after the lock is
 * dropped; then take the handle if there is room.  Unlocks c.
 */
int cache_free_full(struct pcpu_cache *c, struct cache_bin *b, void *handle, unsigned long *live,
		    size_t bit, int bits)
{
	size_t size = (size_t)bits * PCPU_MIN_ALLOC_BYTES, victim_size = size;
	struct cache_bin *victim = b;
	void *out[MAX_BIN_CAP];
	unsigned int n_out;
	int64_t net = c->net;
	int ret;

	if (c->bytes + size > cache_limit) {
		for (unsigned int cls = 0; cls < NR_CLASSES; cls++) {
			size_t csize = (size_t)(cls + 1) * PCPU_MIN_ALLOC_BYTES;

			if (c->bins[cls].n * csize > victim->n * victim_size) {
				victim = &c->bins[cls];
				victim_size = csize;
			}
		}
	}
	n_out = (victim->n + 1) / 2;
	victim->n -= n_out;
	if (victim->clean > victim->n)
		victim->clean = victim->n;
	if (n_out)
		memcpy(out, victim->slots + victim->n, n_out * sizeof(*out));
	c->bytes -= n_out * victim_size;
	c->nr_drains++;
	__atomic_store_n(&c->net, 0, __ATOMIC_RELAXED);
	__atomic_fetch_add(&pcpu_pool.nr_transit, (long)n_out, __ATOMIC_RELAXED);
	ret = c->bytes + size <= cache_limit && b->n < b->cap ? bits : 0;
	if (ret && !bit_test_and_clear_atomic(live, bit))
		ret = -1;               /* freed by another thread meanwhile */
	if (ret > 0) {
		b->slots[b->n++] = handle;
		b->nr_dealloc++;
		c->bytes += size;
		__atomic_store_n(&c->net, c->net - 1, __ATOMIC_RELAXED);
	}
	cache_unlock(c);
	give_back(out, n_out, (int)(victim_size / PCPU_MIN_ALLOC_BYTES), net, false, POOL_NOW);
	return ret;
}

/* ---- draining, census, verification ---------------------------------------- */

/* Empty cache c (its lock taken here), giving everything back as unused
 * since `unused_since`. */
static void drain_cache(struct pcpu_cache *c, int64_t unused_since)
{
	cache_remote_begin(c);
	for (unsigned int cls = 0; cls < NR_CLASSES; cls++) {
		struct cache_bin *b = &c->bins[cls];
		void *out[MAX_BIN_CAP];
		unsigned int n;
		int64_t net;

		cache_take(c);
		net = c->net;
		__atomic_store_n(&c->net, 0, __ATOMIC_RELAXED);
		n = b->n;
		if (n)
			memcpy(out, b->slots, n * sizeof(*out));
		b->n = b->clean = 0;
		c->bytes -= n * (cls + 1) * PCPU_MIN_ALLOC_BYTES;
		if (n)
			c->nr_drains++;
		__atomic_fetch_add(&pcpu_pool.nr_transit, (long)n, __ATOMIC_RELAXED);
		cache_unlock(c);
		give_back(out, n, (int)cls + 1, net, false, unused_since);
	}
	/* Empty (unless a fast path refilled a spare meanwhile): give its slot
	 * pages back, under its lock so that no fast path writes them.  A
	 * spare's slots would otherwise stay resident after the rare burst
	 * that used it (evaluation 9 at 8 threads: about 120 KiB with two
	 * spares per CPU). */
	cache_take(c);
	if (!c->bytes)
		os_meta_discard(c->bins[0].slots, cache_slots_bytes(c));
	cache_unlock(c);
	cache_remote_end(c);
}

/*
 * Pool client: every cache (all), or those unused for idle_ms.  A sweep
 * finding a cache's `used` flag set clears it and notes the time; a later
 * sweep finding it still clear knows the cache, and every object in it,
 * has been unused since then, and hands its objects back as unused since
 * then (their pages decay from that time, not from the drain).  Returns
 * whether some cache may still hold objects.
 */
static bool cache_drain(bool all, long idle_ms)
{
	bool holds = false;
	int64_t now;

	if (!pool_ready())      /* the caches are set up before `ready` is published */
		return false;
	now = pool_now_ms();
	for (unsigned int i = 0; i < nr_all_caches(); i++) {
		struct pcpu_cache *c = &caches[i];

		if (all) {
			drain_cache(c, POOL_NOW);
		} else if (__atomic_exchange_n(&c->used, 0, __ATOMIC_RELAXED)) {
			c->quiet_since = now;
			c->drained = false;
			holds = true;
		} else if (!c->drained && now - c->quiet_since >= idle_ms) {
			drain_cache(c, c->quiet_since);
			c->drained = true;
		} else {
			holds |= !c->drained;
		}
	}
	return holds;
}

/* Pool client: the allocations less frees the caches have not told. */
static int64_t cache_unreported_live(void)
{
	int64_t net = 0;

	for (unsigned int i = 0; i < nr_all_caches(); i++)
		net += __atomic_load_n(&caches[i].net, __ATOMIC_RELAXED);
	return net;
}

/* Pool client: every cache's lock taken (on) or dropped, the spares' too. */
static void cache_quiesce(bool on)
{
	if (on) {
		for (unsigned int i = 0; i < nr_caches; i++)
			cache_lock_remote_raise(&caches[i].lk);
		cache_lock_fence_all();
	}
	for (unsigned int i = 0; i < nr_all_caches(); i++) {
		if (on) {
			cache_take(&caches[i]);
		} else {
			cache_unlock(&caches[i]);
			cache_remote_end(&caches[i]);
		}
	}
}

/* ---- test hooks ---------------------------------------------------------------- */

int cache_test_hold(unsigned int cpu, unsigned int which, bool hold)
{
	struct pcpu_cache *c;

	if (cpu >= nr_caches || which > CACHE_SPARES)
		return -1;
	c = cache_of(cpu, which);
	if (hold) {
		cache_remote_begin(c);
		cache_take(c);
		cache_remote_end(c);    /* left held, as by a preempted fast path */
	} else {
		cache_unlock(c);
	}
	return 0;
}

size_t cache_test_slots(unsigned int cpu, unsigned int which, void **start)
{
	const struct pcpu_cache *c;

	if (cpu >= nr_caches || which > CACHE_SPARES)
		return 0;
	c = cache_of(cpu, which);
	*start = c->bins[0].slots;
	return cache_slots_bytes(c);
}

size_t cache_test_count(bool spares)
{
	size_t n = 0;

	for (unsigned int i = spares ? nr_caches : 0; i < (spares ? nr_all_caches() : nr_caches); i++)
		for (unsigned int cls = 0; cls < NR_CLASSES; cls++)
			n += __atomic_load_n(&caches[i].bins[cls].n, __ATOMIC_RELAXED);
	return n;
}

/* ---- set-up and fork ----------------------------------------------------------- */

static void cache_ready(void)
{
	size_t limit = pcpu_pool.cfg.cache_size, per_cache = 0;

	if (!limit && !pcpu_env_size("PCPU_CACHE_SIZE", 0, (size_t)1 << 30, &limit))
		limit = DEFAULT_CACHE_SIZE;
	if (!limit || (pcpu_pool.cfg.flags & PCPU_CFG_NO_CACHE))
		return;
	cache_limit = limit < CACHE_MAX_SIZE ? CACHE_MAX_SIZE : limit;
	/* Every bin's slots in one mapping, resident only where used: no
	 * malloc on any allocation path, and nothing left in the program's
	 * heap. */
	for (unsigned int cls = 0; cls < NR_CLASSES; cls++)
		per_cache += bin_cap((size_t)(cls + 1) * PCPU_MIN_ALLOC_BYTES);
	all_slots_bytes = per_cache * sizeof(void *) * (1 + CACHE_SPARES) * pcpu_pool.nr_cpus;
	caches = aligned_alloc(64, sizeof(*caches) * (1 + CACHE_SPARES) * pcpu_pool.nr_cpus);
	all_slots = os_meta_alloc(all_slots_bytes);
	if (!caches || !all_slots) {
		free(caches);           /* no caches: every call takes the pool */
		os_meta_free(all_slots, all_slots_bytes);
		caches = NULL;
		return;
	}
	memset(caches, 0, sizeof(*caches) * (1 + CACHE_SPARES) * pcpu_pool.nr_cpus);
	nr_caches = pcpu_pool.nr_cpus;
	for (unsigned int i = 0; i < nr_all_caches(); i++) {
		void **slots = all_slots + (size_t)i * per_cache;

		for (unsigned int cls = 0; cls < NR_CLASSES; cls++) {
			caches[i].bins[cls].slots = slots;
			caches[i].bins[cls].cap = bin_cap((size_t)(cls + 1) * PCPU_MIN_ALLOC_BYTES);
			slots += caches[i].bins[cls].cap;
		}
	}
	cache_lock_setup();
	pcpu_cache_enabled = true;
}

static void cache_fork_inner(void)
{
	cache_quiesce(true);
}

static void cache_fork_after(void)
{
	cache_quiesce(false);
}

static struct pool_client cache_client = {
	.ready = cache_ready,
	.unreported_live = cache_unreported_live,
	.quiesce = cache_quiesce,
	.census = cache_census,
	.verify = cache_verify,
	.drain = cache_drain,
	.fork_inner = cache_fork_inner,
	.fork_parent = cache_fork_after,
	.fork_child = cache_fork_after,
};

__attribute__((constructor(101))) static void cache_register(void)
{
	pool_add_client(&cache_client);
}
