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
 *                                 the only one PCPU_ATOMIC allocations take;
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
 *   empty_since[p]  pool clock (ms) when page p last became empty (a free
 *                   emptied it, or it was populated or created empty);
 *                   meaningful while the page is empty.  An empty populated
 *                   page is given back once it has been empty for the decay.
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
	int max_chunks;
	struct pcpu_chunk *first_chunk;    /* dynamic part of the first chunk */
	struct pcpu_chunk *reserved_chunk; /* NULL if reserved_size == 0 */
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

	struct pcpu_chunk **chunk_table;   /* [max_chunks] (pop+lock) */
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
	struct pcpu_stats stats;           /* counters part; layout filled on read (lock) */
	/* System calls of (de)population, made under pop_mutex, read by the
	 * statistics under `lock` alone (atomic). */
	unsigned long nr_populate_calls, nr_depopulate_calls, nr_mprotect_calls;
};

extern struct pcpu_pool pcpu_pool __attribute__((visibility("hidden")));

/* ---- hooks of the layers above ------------------------------------------ */

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
	/* fork: `outer` runs before the pool's locks are taken (after
	 * init_mutex), `inner` after them; parent and child undo in reverse. */
	void (*fork_outer)(void), (*fork_inner)(void);
	void (*fork_parent)(void), (*fork_child)(void);
	struct pool_client *next;
};

void pool_add_client(struct pool_client *c);
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

/* Chunk owning a handle and the byte offset inside it, or NULL. */
struct pcpu_chunk *pool_handle_chunk(const void *handle, int *off);
static inline void *pool_chunk_handle(const struct pcpu_chunk *ch, int off)
{
	return ch->base + off - pcpu_pool.guard_size;
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
/* The same in the reserved chunk (PCPU_RESERVED, libraries' variables). */
struct pcpu_chunk *pool_find_reserved(int bits, int align_bits, int *off);
/* Free an area, keeping the empty-page count and the chunk's slot right,
 * and noting when pages became empty.  `lock` held. */
void pool_free_area(struct pcpu_chunk *ch, int off, int bits);
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
	if (++st->nr_cur_alloc > st->nr_max_alloc)
		st->nr_max_alloc = st->nr_cur_alloc;
	if (!st->min_alloc_size || size < st->min_alloc_size)
		st->min_alloc_size = size;
	if (size > st->max_alloc_size)
		st->max_alloc_size = size;
	st->size_hist[pool_size_bucket(size)]++;
	if (size > ch->max_alloc_size)
		ch->max_alloc_size = size;
}

static inline void pool_unaccount_alloc(size_t size)
{
	pcpu_pool.stats.nr_alloc--;
	pcpu_pool.stats.nr_cur_alloc--;
	pcpu_pool.stats.size_hist[pool_size_bucket(size)]--;
}

static inline void pool_account_free(void)
{
	pcpu_pool.stats.nr_dealloc++;
	pcpu_pool.stats.nr_cur_alloc--;
}

/* ---- balancing requests -------------------------------------------------- */

#define POOL_BALANCE_LOW       0x1u  /* fewer empty populated pages than the low mark */
#define POOL_BALANCE_ATOMIC    0x2u  /* an atomic allocation failed: refill in full */
#define POOL_BALANCE_FREE      0x4u  /* decay 0: a second fully free chunk, or pages to reclaim */

/* Ask for a balance pass.  Only sets pool.balance_wanted: no lock, no
 * system call (the atomic path uses this). */
static inline void pool_want_balance(unsigned why)
{
	if ((__atomic_load_n(&pcpu_pool.balance_wanted, __ATOMIC_RELAXED) & why) != why)
		__atomic_fetch_or(&pcpu_pool.balance_wanted, why, __ATOMIC_RELAXED);
}
/* Ask and wake the balancer (clients' kick): blocking contexts only. */
void pool_kick_balance(unsigned why);

/* POOL_DEBUG_* bits of pcpu_pool.debug, set at initialisation. */
#define POOL_DEBUG_VERIFY   0x1u   /* PCPU_VERIFY: pool_verify after every operation */
#define POOL_DEBUG_VALGRIND 0x2u   /* running under Valgrind's memcheck: annotate */

#endif
