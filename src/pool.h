/*
 * pool.h - the pool layer: every chunk of the process in its reserved
 * address space, the state they share, and the operations on them.
 *
 * Files, each calling only the ones before it: pool.c (this header: the
 * state, slot lists, relocation, sidelining, searching, handle lookup,
 * counters, what reclaim and zeroing note of each allocation and free), memcheck.[ch] (telling ASan / Valgrind which bytes
 * are live), pool_chunk.[ch] (chunks in address space: creation,
 * destruction, population), pool_verify.[ch] (the pool's invariants,
 * PCPU_VERIFY), pool_init.[ch] (configuration, the reservation, the first
 * chunk, initialisation, fork).
 * The layers above (alloc.c, balance.c, static.c, stats.c, cpu.c) call
 * these; the pool never calls them.  What the pool needs from them
 * (placing static variables, waking the balancer, the exit report) they
 * install as hooks (struct pool_client), from their own code.
 *
 * Address space: one reservation [guard | region].  Chunk i occupies
 * region + i * 2^stride_shift (the stride a power of two >= the layout's
 * chunk span), so the chunk owning an address is found by a shift.  CPU
 * cpu's copy of offset off in chunk i lives at
 *     region + (i << stride_shift) + unit_off[cpu] + off.
 * A handle is that address for "unit 0 at offset 0" moved down by the guard
 * size:  handle = region + (i << stride_shift) + off - guard_size.  It lies
 * in the guard, which is never mapped, so dereferencing a handle faults.
 * pcpu_cpu_offset[cpu] = guard_size + unit_off[cpu].
 *
 * Lock order.  A thread may take a lock only while it holds none listed
 * after it; fork takes them all in this order (pool_init.c):
 *   1. init_mutex   (pool_init.c) initialisation;
 *   2. mod_mutex    (static.c)    module records; otherwise never held
 *                                 while taking another lock;
 *   3. pop_mutex    (pool)        chunk creation and destruction,
 *                                 population and depopulation;
 *   4. lock         (pool)        chunk metadata, slot lists, counters:
 *                                 held briefly, never across a system call;
 *                                 the only one PCPU_ATOMIC allocations take,
 *                                 by spinning (pool_lock_atomic);
 *   5. wake_mutex   (balance.c)   the balancer's sleep and wake-up; never
 *                                 held while taking another lock.
 * Each shared field below names the lock that guards it ("pop+lock":
 * written with both held, read with either).  Functions that need a lock
 * assert it with pcpu_assert_held() (checked in debug and sanitizer builds).
 */
#ifndef PCPU_POOL_H
#define PCPU_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bitops.h"
#include "chunk.h"
#include "layout.h"
#include "lock.h"
#include "os.h"
#include "percpu.h"
#include "util.h"

/* Slots: chunks by longest free run; 1-31 bytes share a slot (kernel's 5). */
#define POOL_SLOT_BASE_SHIFT 5
#define POOL_SLOT_FAIL_THRESHOLD 3  /* chunks failing requests in smaller slots are sidelined */

/*
 * Reclaim and zeroing state, per page of a chunk (under `lock`):
 *   empty_since[p]  pool clock (ms) when page p was last in use: the
 *                   latest time an area on it fell out of use (freed by
 *                   the user, or idle in a per-CPU cache since then), or
 *                   when it was populated or created; meaningful while
 *                   the page is empty, which it has been since then.  An
 *                   empty populated page is given back once it has been
 *                   empty for the decay.
 *   zero_from[p]    bits [p * block_bits + zero_from[p], (p + 1) * block_bits)
 *                   read as zero in every unit and have not been handed out
 *                   since they were last known zero; this holds whether the
 *                   page is populated or not (it describes the memory behind
 *                   the page).  Every allocation raises it past its end; a
 *                   successful MADV_DONTNEED of the page resets it to 0.
 */
struct pcpu_chunk {
	struct chunk *map;          /* the in-chunk allocator (lock) */
	char *base;                 /* chunk start: unit offsets are relative to it */
	int index;                  /* position in the region */
	int slot;                   /* list the chunk is on, -1 if none (lock) */
	bool immutable;             /* first chunk: never depopulated or freed */
	bool isolated;              /* taken out of the empty-page pool (lock); nothing
	                               isolates chunks since reclaim went by decay */
	bool mapped_rw;             /* units mapped read-write from creation to destruction
	                               (every depopulation mode but "protect") */
	struct pcpu_chunk *prev, *next;    /* slot list (lock) */
	size_t max_alloc_size;      /* stats: largest allocation it has served, bytes (lock) */
	int64_t *empty_since;       /* [nr_pages], see above (lock) */
	int *zero_from;             /* [nr_pages], see above (lock) */
	size_t meta_bytes;          /* this record and ch->map: one os_meta_alloc mapping */
	int zero_off, zero_bits;    /* the last area pool_find_area handed out, if it was
	                               known zero; else zero_off -1 (lock) */
};

struct pcpu_list {
	struct pcpu_chunk *head;
};

struct pcpu_pool {
	bool ready;                        /* published with release after init */

	/* Geometry: written once under init_mutex before `ready` is
	 * published, then read without a lock. */
	struct pcpu_config cfg;
	struct layout *layout;
	size_t page_size;
	int page_shift;
	size_t unit_size;
	int unit_pages;
	unsigned nr_cpus;
	char *mapping;                     /* the whole reservation: guard then region */
	size_t mapping_size;
	char *region;
	size_t region_size;
	size_t guard_size;
	int stride_shift;
	/* Locating a handle: region - guard_size (a chunk's handles are its
	 * unit-0 addresses less guard_size), 2^stride_shift - 1. */
	uintptr_t handle_base, stride_mask;
	int max_chunks;
	struct pcpu_chunk *first_chunk;    /* dynamic part of the first chunk */
	struct pcpu_chunk *reserved_chunk; /* NULL if reserved_size == 0 */
	int reserved_end;                  /* bytes of unit 0 the reserved chunk serves (0: none) */
	size_t first_chunk_populated;      /* bytes per unit populated at init */
	int nr_slots;                      /* size slots, then the three below */
	int free_slot, sidelined_slot, to_depopulate_slot;
	int empty_pop_low, empty_pop_high; /* balancer marks */
	int reclaim_frac;                  /* decay 0: wake at 1/reclaim_frac empty pages */
	long decay_ms;                     /* reclaim after this long unused; 0 at once, -1 never */
	enum os_depop_how depop_how;       /* how pages are given back (PCPU_DEPOPULATE) */
	unsigned debug;                    /* POOL_DEBUG_* */

	struct pcpu_lock pop_mutex;
	struct pcpu_lock lock;

	struct pcpu_chunk **chunk_table;   /* [max_chunks] (pop+lock; entries stored
	                                      and read with atomics: pool_live_chunk) */
	/* [max_chunks]: each chunk's boundary map beside it (pool_publish_chunk),
	 * for the free path to size an object without going through the chunk. */
	const unsigned long **bound_maps;
	/*
	 * The exact state of every object handed to the user: one bit per
	 * 4-byte fragment of the handle range, set where an allocation the
	 * user owns starts (not where a cached object, a static-variable block
	 * or a free area starts).  Bits change with atomic read-modify-writes,
	 * without a lock: a free clears the bit first, and a free that finds
	 * it clear is invalid (double, interior, foreign) and aborts before
	 * anything else changes.
	 *
	 * One flat map for the whole region (live_flat, reserved at init,
	 * inaccessible), so a handle's bit is its distance from handle_base
	 * over 4: live_bias is live_flat less handle_base / 256 words, and
	 * word h / 256 of it holds bit h / 4 % 64 for a handle h.  Index i's
	 * part (live_maps[i], stride / 4 bits from bit i x stride / 4) is made
	 * accessible with the index's first chunk and never given back, so a
	 * lockless reader that found a chunk at i never faults.
	 */
	unsigned long *live_flat;
	size_t live_flat_bytes;
	unsigned long *live_bias;
	unsigned long **live_maps;         /* [max_chunks]: NULL until then */
	long nr_static_blocks;             /* static-variable blocks in the reserved chunk (lock) */
	/* Objects between a chunk and a client's holding (a cache's batch
	 * being refilled or given back): added to and taken from under the
	 * lock of the side they leave and reach, so a checker holding every
	 * lock sees each object exactly once. (atomic) */
	long nr_transit;
	int64_t nr_live;                   /* user allocations live, as far as the pool has
	                                      been told (caches report theirs in batches) (lock) */
	unsigned long *chunk_used;         /* table indexes in use (lock) */
	unsigned long *chunk_unclean;      /* indexes whose memory may hold data from a
	                                      destroyed chunk (a failed give-back) (lock) */
	struct iovec *unit_iov;            /* [nr_cpus] scratch for one page range in
	                                      every unit (pop_mutex) */
	int chunk_hiwater;                 /* indexes >= this are unused (pop+lock) */

	struct pcpu_list *slots;           /* [nr_slots] (lock) */
	unsigned long slot_mask;           /* bit s set: slots[s] is not empty (lock) */

	/* Populated pages with nothing allocated, over chunks in the pool
	 * (not the reserved chunk, not isolated chunks). (lock) */
	long nr_empty_pop_pages;
	long nr_populated;                 /* populated pages, all chunks (lock) */

	unsigned balance_wanted;           /* POOL_BALANCE_* (atomic) */
	/* Counters of the allocations and frees made through the pool (not
	 * through a cache: those count in the census), layout filled on read;
	 * nr_cur_alloc unused (computed), nr_max_alloc from nr_live. (lock) */
	struct pcpu_stats stats;
	/* System calls of (de)population, made under pop_mutex, read by the
	 * statistics under `lock` alone (atomic). */
	unsigned long nr_populate_calls, nr_depopulate_calls, nr_mprotect_calls;
};

extern struct pcpu_pool pcpu_pool __attribute__((visibility("hidden")));

/* ---- hooks of the layers above ------------------------------------------ */

/*
 * What the clients hold and did, added up for pcpu_verify and the
 * statistics: objects allocated in chunks that are neither free nor live
 * (caches), and the user allocations and frees they served themselves.
 */
struct pool_census {
	uint64_t nr_alloc, nr_dealloc;
	uint64_t size_hist[PCPU_SIZE_HIST_BUCKETS];
	size_t min_alloc_size, max_alloc_size;  /* min 0: none */
	uint64_t nr_cached, cached_bytes, cache_limit_bytes;
	uint64_t nr_cache_hits, nr_cache_refills, nr_cache_drains;
};

/*
 * A layer above the pool that needs to be told of pool events fills one
 * of these (unused members NULL) and passes it to pool_add_client(), once,
 * from a constructor or on its first use.  Clients are called in the order
 * they were added.
 */
struct pool_client {
	/* Initialisation: bytes of the program's static area (before the
	 * layout is built; init_mutex held), then "ready" (allocator usable,
	 * init_mutex held; may allocate). */
	size_t (*static_size)(void);
	void (*ready)(void);
	/* The pool wants a balance pass (POOL_BALANCE_* in pool.balance_wanted);
	 * called only from contexts that may block. */
	void (*kick)(void);
	/* The full report, for a PCPU_VERIFY failure. */
	void (*report)(FILE *out);
	/* Take (on) or drop every lock under which the client moves objects
	 * or live bits, so nothing moves between chunks, live and held
	 * (`lock` held: the client's locks are leaves). */
	void (*quiesce)(bool on);
	/* User allocations less frees served and not yet told to the pool
	 * (pool_note_live); read without the client's locks. */
	int64_t (*unreported_live)(void);
	/* Quiesced: add what the client holds and did to *acc. */
	void (*census)(struct pool_census *acc);
	/* Quiesced, both pool locks held: check the client's objects against
	 * the chunks: 0, or -1 with the first broken invariant in msg. */
	int (*verify)(char *msg, size_t msglen);
	/* Give held objects back to the chunks: all of them, or those of
	 * holders idle for idle_ms (the pool clock).  Returns whether it may
	 * still hold objects.  No pool lock held; idle sweeps (!all) come
	 * from one thread, the balancer. */
	bool (*drain)(bool all, long idle_ms);
	/* fork: `outer` runs before the pool's locks are taken (after
	 * init_mutex), `inner` after them; parent and child undo in reverse. */
	void (*fork_outer)(void), (*fork_inner)(void);
	void (*fork_parent)(void), (*fork_child)(void);
	struct pool_client *next;
};

void pool_add_client(struct pool_client *c);
/* Every client quiesced (on) or let go (`lock` held); every client's
 * census added up (`lock` held; quiesces them unless already); every
 * client drained (no lock held). */
void pool_quiesce(bool on);
void pool_census(struct pool_census *acc, bool quiesced);
bool pool_drain_clients(bool all, long idle_ms);
/* Walk the clients (no lock needed). */
struct pool_client *pool_first_client(void);
struct pool_client *pool_next_client(const struct pool_client *c);
#define pool_for_each_client(c) \
	for (struct pool_client *c = pool_first_client(); c; c = pool_next_client(c))

/* ---- slots and chunks (pool.c) ------------------------------------------- */

int pool_size_to_slot(size_t size);
int pool_chunk_slot(const struct pcpu_chunk *ch);
/* Move ch to the back of slot's list (-1: unlink).  `lock` held. */
void pool_chunk_move(struct pcpu_chunk *ch, int slot);
/* Put ch on the list its longest free run calls for.  `lock` held. */
void pool_chunk_relocate(struct pcpu_chunk *ch, int oslot);
/* Put an isolated chunk back into the pool.  `lock` held. */
void pool_reintegrate_chunk(struct pcpu_chunk *ch);
/* Take every isolated chunk back; false if there was none.  `lock` held. */
bool pool_reintegrate_all(void);

/* Chunk owning a handle and the byte offset inside it (pool_handle_locate),
 * or NULL. */
struct pcpu_chunk *pool_handle_chunk(const void *handle, int *off);
static inline void *pool_chunk_handle(const struct pcpu_chunk *ch, int off)
{
	return ch->base + off - pcpu_pool.guard_size;
}

/* ---- the live map (lockless) ------------------------------------------ */

/* Bits of the live map in one 64-byte cache line: 2 KiB of a unit. */
#define POOL_LIVE_LINE_BITS 512

/*
 * Locate a handle without a lock: its chunk index and byte offset, if it
 * lies in some chunk slot's unit-0 range (the chunk may not exist).
 */
static inline bool pool_handle_locate(const void *handle, size_t *idx, int *off)
{
	uintptr_t rel = (uintptr_t)handle - pcpu_pool.handle_base;

	/* The region is max_chunks strides: an index below it is in range. */
	if (rel >= pcpu_pool.region_size)
		return false;
	*idx = rel >> pcpu_pool.stride_shift;
	rel &= pcpu_pool.stride_mask;
	if (rel >= pcpu_pool.unit_size)
		return false;
	*off = (int)rel;
	return true;
}

/* The same for a handle known to be an allocation (one the allocator holds
 * or just handed out): no range checks. */
static inline void pool_handle_split(const void *handle, size_t *idx, int *off)
{
	uintptr_t rel = (uintptr_t)handle - pcpu_pool.handle_base;

	*idx = rel >> pcpu_pool.stride_shift;
	*off = (int)(rel & pcpu_pool.stride_mask);
}

/* Index idx's part of the flat live map, made accessible (zeroed the first
 * time), its lines the 64-byte cache lines that POOL_LIVE_LINE_BITS counts
 * (pool_find_areas ends batches at them); NULL + ENOMEM on failure. */
unsigned long *pool_live_map_new(size_t idx);

/* The live bit of a handle inside some chunk's unit-0 range, as a bit of
 * the map pool_live_words() returns (no range check). */
static inline size_t pool_live_bit(const void *handle)
{
	return (uintptr_t)handle / PCPU_MIN_ALLOC_BYTES;
}

static inline unsigned long *pool_live_words(void)
{
	return pcpu_pool.live_bias;
}

static inline unsigned long *pool_live_map(size_t idx)
{
	return __atomic_load_n(&pcpu_pool.live_maps[idx], __ATOMIC_ACQUIRE);
}

/* Install ch at index idx of the chunk table (NULL: remove it), with its
 * boundary map.  `lock` held. */
static inline void pool_publish_chunk(int idx, struct pcpu_chunk *ch)
{
	__atomic_store_n(&pcpu_pool.bound_maps[idx], ch ? (const unsigned long *)ch->map->bound_map : NULL,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&pcpu_pool.chunk_table[idx], ch, __ATOMIC_RELEASE);
}

/* The boundary map of the dynamic chunk of index idx, read without the lock
 * (stable while it holds an allocation the caller owns). */
static inline const unsigned long *pool_live_bound_map(size_t idx)
{
	return __atomic_load_n(&pcpu_pool.bound_maps[idx], __ATOMIC_ACQUIRE);
}

/* The dynamic chunk of index idx, read without the lock (stable while it
 * holds an allocation the caller owns). */
static inline struct pcpu_chunk *pool_live_dyn_chunk(size_t idx)
{
	return __atomic_load_n(&pcpu_pool.chunk_table[idx], __ATOMIC_ACQUIRE);
}

/* Chunk of index idx, read without the lock (stable while it holds an
 * allocation the caller owns), and the reserved chunk for offsets below
 * its end. */
static inline struct pcpu_chunk *pool_live_chunk(size_t idx, int off)
{
	if (__builtin_expect(idx == 0 && off < pcpu_pool.reserved_end, 0))
		return pcpu_pool.reserved_chunk;
	return pool_live_dyn_chunk(idx);
}

/* The area at bit_off of ch now belongs to the user. */
static inline void pool_live_set(const struct pcpu_chunk *ch, int bit_off)
{
	bit_set_atomic(pcpu_pool.live_maps[ch->index], (size_t)bit_off);
}

/* Empty populated pages of a chunk count towards the pool unless excluded. */
static inline bool pool_chunk_in_pool(const struct pcpu_chunk *ch)
{
	return ch != pcpu_pool.reserved_chunk && !ch->isolated;
}

/*
 * Allocate `bits` at align_bits from the slot lists, starting at the slot
 * for size; with pop_only, on populated pages only.  `lock` held.  Returns
 * the chunk and the bit offset in *off, or NULL.
 */
struct pcpu_chunk *pool_find_area(size_t size, int bits, int align_bits, bool pop_only, int *off);
/* The same at align_bits, else (where only that fits) at min_align_bits. */
struct pcpu_chunk *pool_find_area_either(size_t size, int bits, int align_bits, int min_align_bits,
					 bool pop_only, int *off);
/* A cache refill's batch (pool_find_areas): out[] and runs[] have room for
 * as many areas as asked for. */
struct pool_run {
	unsigned int n;         /* areas back to back, the next ones of out[] */
	bool zero;              /* they read zero (fresh pages above the zero marks) */
};
struct pool_batch {
	void **out;             /* the areas' handles */
	struct pool_run *runs;  /* out[] in runs, in order */
	unsigned int nr_runs;
	struct pcpu_chunk *first_ch;    /* out[0]'s chunk and bit offset */
	int first_off;
};
/*
 * Up to `want` areas of `bits` at align_bits on populated pages, for a
 * cache refill: each chunk found is used while its hint walk goes on
 * finding room (chunk_find_next_fit), then the search moves on as
 * pool_find_area does; each place found hands out as many areas back to
 * back as its free run holds.  Fills bt; each chunk's max_alloc_size
 * follows.  `lock` held.  Returns how many.
 */
unsigned int pool_find_areas(size_t size, int bits, int align_bits, unsigned int want,
			     struct pool_batch *bt);
/* The same in the reserved chunk (PCPU_RESERVED, libraries' variables). */
struct pcpu_chunk *pool_find_reserved(int bits, int align_bits, int *off);
/* Free an area, keeping the empty-page count and the chunk's slot right,
 * and noting that its pages were in use until `unused_since` (pool clock;
 * POOL_NOW: now).  `lock` held. */
#define POOL_NOW ((int64_t)-1)
void pool_free_area(struct pcpu_chunk *ch, int off, int bits, int64_t unused_since);
/* Free n live areas of `bits` bits each, given by handle, as pool_free_area
 * does; areas lying back to back in one chunk, in ascending or descending
 * order (as a drained cache bin often holds them), are freed as one span
 * (chunk_free_span).  Returns whether a chunk asks for a reclaim pass
 * (pool_free_wants_reclaim).  `lock` held. */
bool pool_free_handles(void *const *handles, unsigned int n, int bits, int64_t unused_since);
/*
 * nr_live may be a new peak: add what the clients have not told yet (read
 * without their locks: exact when they are quiet) and keep the maximum.
 * `lock` held.
 */
void pool_update_max(void);

/*
 * True if the area pool_find_area just handed out (off, bits, in ch) reads
 * zero in every unit, so the caller need not clear it; false if it may
 * hold old bytes.  Call it once, right after pool_find_area, under the
 * same hold of `lock`.  Always false for the reserved chunk and under
 * Valgrind (which must see the clearing writes).
 */
bool pool_area_is_zero(struct pcpu_chunk *ch, int off, int bits);
/* Decay 0 only: a free in ch left enough empty to wake the balancer now. `lock` held. */
bool pool_free_wants_reclaim(const struct pcpu_chunk *ch);
/* The pool clock for reclaim decisions: monotonic milliseconds (coarse). */
int64_t pool_now_ms(void);
/* Statistics of an allocation of size bytes from ch, its undoing (its pages
 * could not be populated), and a free.  `lock` held. */
static inline int pool_size_bucket(size_t size)
{
	int b = 63 - __builtin_clzll((unsigned long long)size | 1);

	return b < PCPU_SIZE_HIST_BUCKETS ? b : PCPU_SIZE_HIST_BUCKETS - 1;
}

static inline void pool_account_alloc(struct pcpu_chunk *ch, size_t size)
{
	struct pcpu_stats *st = &pcpu_pool.stats;

	st->nr_alloc++;
	if (++pcpu_pool.nr_live > (int64_t)st->nr_max_alloc)
		pool_update_max();
	if (!st->min_alloc_size || size < st->min_alloc_size)
		st->min_alloc_size = size;
	if (size > st->max_alloc_size)
		st->max_alloc_size = size;
	st->size_hist[pool_size_bucket(size)]++;
	if (size > ch->max_alloc_size)
		ch->max_alloc_size = size;
}

/* A client served net more user allocations than frees since it last said. */
static inline void pool_note_live(int64_t net)
{
	pcpu_pool.nr_live += net;
	if (pcpu_pool.nr_live > (int64_t)pcpu_pool.stats.nr_max_alloc)
		pool_update_max();
}

static inline void pool_unaccount_alloc(size_t size)
{
	pcpu_pool.stats.nr_alloc--;
	pcpu_pool.nr_live--;
	pcpu_pool.stats.size_hist[pool_size_bucket(size)]--;
}

static inline void pool_account_free(void)
{
	pcpu_pool.stats.nr_dealloc++;
	pcpu_pool.nr_live--;
}

/* ---- balancing requests -------------------------------------------------- */

#define POOL_BALANCE_LOW       0x1u  /* fewer empty populated pages than the low mark */
#define POOL_BALANCE_ATOMIC    0x2u  /* an atomic allocation failed: refill in full */
#define POOL_BALANCE_FREE      0x4u  /* decay 0: a second fully free chunk, or pages to reclaim */
/* Not a reason: the balancer was woken for the reasons beside it (cleared
 * with them by the pass that takes them), so allocations need not wake it
 * again, a system call each (or, with PCPU_CFG_NO_BALANCER, a call that
 * does nothing until pcpu_balance()). */
#define POOL_BALANCE_KICKED    0x80000000u

/* Does the pool want a pass nobody has woken the balancer for yet? */
static inline bool pool_balance_unkicked(void)
{
	unsigned w = __atomic_load_n(&pcpu_pool.balance_wanted, __ATOMIC_RELAXED);

	return w && !(w & POOL_BALANCE_KICKED);
}

/* Ask for a balance pass.  Only sets pool.balance_wanted: no lock, no
 * system call (the atomic path uses this). */
static inline void pool_want_balance(unsigned why)
{
	if ((__atomic_load_n(&pcpu_pool.balance_wanted, __ATOMIC_RELAXED) & why) != why)
		__atomic_fetch_or(&pcpu_pool.balance_wanted, why, __ATOMIC_RELAXED);
}
/* Ask and wake the balancer (clients' kick): blocking contexts only. */
void pool_kick_balance(unsigned why);

/* ---- the metadata lock on the atomic path --------------------------------- */

/* Pauses an atomic allocation spins for `lock` before it queues for it:
 * about 60 microseconds at 30 ns a pause, far longer than a running thread
 * holds `lock` on the allocation and free paths. */
#define POOL_ATOMIC_SPIN_PAUSES 2048

/*
 * `lock` for a PCPU_ATOMIC allocation (pcpu_spin_lock, lock.h): it spins
 * for the lock's word, against at most one other thread, with no system
 * call; only when the holder keeps it past the spin budget (the holder was
 * preempted, or runs a long walk such as pcpu_stats_print or pcpu_verify)
 * does it queue like a blocking caller.  The release never makes a system
 * call.
 */
static inline void pool_lock_atomic(void)
{
	pcpu_spin_lock(&pcpu_pool.lock, POOL_ATOMIC_SPIN_PAUSES);
}

static inline void pool_unlock_atomic(void)
{
	pcpu_spin_unlock(&pcpu_pool.lock);
}

/* `lock` as a caller with these PCPU_* flags takes it: spinning for an
 * atomic one (pool_lock_atomic), else as a blocking caller. */
static inline void pool_lock_for(bool atomic)
{
	if (atomic)
		pool_lock_atomic();
	else
		pcpu_lock(&pcpu_pool.lock);
}

static inline void pool_unlock_for(bool atomic)
{
	if (atomic)
		pool_unlock_atomic();
	else
		pcpu_unlock(&pcpu_pool.lock);
}

/* POOL_DEBUG_* bits of pcpu_pool.debug, set at initialisation. */
#define POOL_DEBUG_VERIFY   0x1u   /* PCPU_VERIFY: pool_verify after every operation */
#define POOL_DEBUG_VALGRIND 0x2u   /* running under Valgrind's memcheck: annotate */

#endif
