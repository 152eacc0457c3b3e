/*
 * internal.h - the process-wide allocator's shared state (layers 6 and 7).
 *
 * One `struct pcpu_state` holds everything: the layout, the reserved
 * address range, the chunk table, slot lists, locks, counters.  alloc.c owns
 * initialisation, allocation and free; pchunk.c maps chunks onto address
 * space and populates them; balance.c keeps populated pages between the
 * marks and gives memory back; stats.c reports and verifies.
 *
 * Address space: one reservation [guard | region].  Chunk i occupies
 * region + i * chunk_stride (chunk_stride a power of two >= the layout's
 * chunk span), so the chunk owning an address is found by a shift.  CPU
 * cpu's copy of offset off in chunk i lives at
 *     region + i * chunk_stride + unit_off[cpu] + off.
 * A handle is that address for "unit 0 at offset 0" moved down by the guard
 * size:  handle = region + i * chunk_stride + off - guard_size.  It lies in
 * the guard, which is never mapped, so dereferencing a handle faults.
 * pcpu_cpu_offset[cpu] = guard_size + unit_off[cpu].
 *
 * Locking (the kernel's spinlock / mutex split):
 *   lock        chunk metadata, slot lists, counters.  Held only briefly,
 *               never across a system call.  Atomic allocations take only
 *               this lock.
 *   pop_mutex   chunk creation and destruction, population and
 *               depopulation.  Taken before `lock` when both are needed.
 */
#ifndef PCPU_INTERNAL_H
#define PCPU_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "chunk.h"
#include "layout.h"
#include "percpu.h"

#define PCPU_API __attribute__((visibility("default")))

/* Slots: chunks by longest free run; 1-31 bytes share a slot (kernel's 5). */
#define SLOT_BASE_SHIFT 5
#define SLOT_FAIL_THRESHOLD 3   /* chunks failing requests in smaller slots are sidelined */

struct pcpu_chunk {
	struct chunk *map;          /* the in-chunk allocator */
	char *base;                 /* chunk start: unit offsets are relative to it */
	int index;                  /* position in the region */
	int slot;                   /* list the chunk is on, -1 if none */
	bool immutable;             /* first chunk: never depopulated or freed */
	bool isolated;              /* taken out of the empty-page pool for reclaim */
	struct pcpu_chunk *prev, *next;
	size_t max_alloc_size;      /* stats: largest allocation it has served, bytes */
};

struct pcpu_list {
	struct pcpu_chunk *head;
};

struct pcpu_state {
	bool ready;
	struct pcpu_config cfg;
	struct layout *layout;
	size_t page_size;
	int page_shift;
	size_t unit_size;
	int unit_pages;
	unsigned nr_cpus;

	char *mapping;              /* the whole reservation: guard then region */
	size_t mapping_size;
	char *region;
	size_t region_size;
	size_t guard_size;
	int stride_shift;
	int max_chunks;
	struct pcpu_chunk **chunk_table;   /* [max_chunks] */
	unsigned long *chunk_used;         /* bitmap of table indexes in use */
	int chunk_hiwater;                 /* indexes >= this are unused */

	struct pcpu_chunk *first_chunk;    /* dynamic part of the first chunk */
	struct pcpu_chunk *reserved_chunk; /* NULL if reserved_size == 0 */
	size_t first_chunk_populated;      /* bytes per unit populated at init */

	int nr_slots;                      /* size slots, then the three below */
	int free_slot, sidelined_slot, to_depopulate_slot;
	struct pcpu_list *slots;
	unsigned long slot_mask;           /* bit s set: slots[s] is not empty */

	pthread_mutex_t lock;
	pthread_mutex_t pop_mutex;

	/* Populated pages with nothing allocated, over chunks in the pool
	 * (not the reserved chunk, not isolated chunks). */
	long nr_empty_pop_pages;
	long nr_populated;                 /* populated pages, all chunks */
	int empty_pop_low, empty_pop_high; /* balancer marks */
	int reclaim_frac;                  /* isolate at 1/reclaim_frac empty pages */

	struct pcpu_stats stats;           /* counters part; layout filled on read */
	unsigned warn_count;
};

extern struct pcpu_state pcpu;

/* alloc.c */
int pcpu_ensure_init(void);
int pcpu_chunk_slot(const struct pcpu_chunk *ch);
int pcpu_size_to_slot(size_t size);
void pcpu_chunk_move(struct pcpu_chunk *ch, int slot);
void pcpu_chunk_relocate(struct pcpu_chunk *ch, int oslot);
void pcpu_warn(unsigned flags, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* pchunk.c: chunks in address space.  Called with pop_mutex held. */
struct pcpu_chunk *pcpu_create_chunk(void);
void pcpu_destroy_chunk(struct pcpu_chunk *ch);
int pcpu_populate_pages(struct pcpu_chunk *ch, int page_start, int page_end);
void pcpu_depopulate_pages(struct pcpu_chunk *ch, int page_start, int page_end);
/* Record population changes in chunk and global counters; `lock` held. */
void pcpu_note_populated(struct pcpu_chunk *ch, int page_start, int page_end);
void pcpu_note_depopulated(struct pcpu_chunk *ch, int page_start, int page_end);
/* Chunk owning a handle and the offset inside it, or NULL. */
struct pcpu_chunk *pcpu_handle_chunk(const void *handle, int *off);
static inline void *pcpu_chunk_handle(const struct pcpu_chunk *ch, int off)
{
	return ch->base + off - pcpu.guard_size;
}

/* Empty populated pages of a chunk count towards the pool unless excluded. */
static inline bool pcpu_chunk_in_pool(const struct pcpu_chunk *ch)
{
	return ch != pcpu.reserved_chunk && !ch->isolated;
}

/* balance.c */
void pcpu_balance_wake(void);
void pcpu_note_atomic_failure(void);
void pcpu_isolate_chunk(struct pcpu_chunk *ch);
void pcpu_reintegrate_chunk(struct pcpu_chunk *ch);
void pcpu_balance_atfork_prepare(void);
void pcpu_balance_atfork_parent(void);
void pcpu_balance_atfork_child(void);
int pcpu_balance_pass(void);

/* Stats helpers (alloc.c) */
void pcpu_layout_stats(struct pcpu_stats *out);

/* ---- observability and debugging hooks (debug.c, stats.c) ----------------
 *
 * The allocator calls these at fixed points; each costs nothing or one
 * predictable branch on `pcpu_debug` (set once at initialisation from the
 * environment, 0 normally), except in AddressSanitizer builds, which always
 * poison and unpoison unit memory.  "locked" hooks run under `lock`.
 */
#if defined(__SANITIZE_ADDRESS__)
#define PCPU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PCPU_ASAN 1
#endif
#endif
#ifndef PCPU_ASAN
#define PCPU_ASAN 0
#endif

#define PCPU_DEBUG_VERIFY   0x1u   /* PCPU_VERIFY: pcpu_verify after every operation */
#define PCPU_DEBUG_VALGRIND 0x2u   /* running under Valgrind: annotate unit memory */
extern unsigned pcpu_debug __attribute__((visibility("hidden")));

void pcpu_debug_init(void);        /* end of a successful init, before publishing */
enum { PCPU_OP_ALLOC, PCPU_OP_FREE, PCPU_OP_BALANCE };   /* pcpu_hook_op */
void pcpu_debug_verify_op(int op, const void *ptr);
void pcpu_debug_alloc_slow(const struct pcpu_chunk *ch, int bit_off, size_t size);
int pcpu_fail_reason(unsigned flags, const char *msg);   /* PCPU_FAIL_* (probes.h) */
void pcpu_memcheck_range(const struct pcpu_chunk *ch, int bit_off, int bits, bool usable);
void pcpu_memcheck_populated(const struct pcpu_chunk *ch, int page_start, int page_end);
void pcpu_memcheck_depopulated(const struct pcpu_chunk *ch, int page_start, int page_end);

static inline int pcpu_size_bucket(size_t size)
{
	int b = 63 - __builtin_clzll((unsigned long long)size | 1);

	return b < PCPU_SIZE_HIST_BUCKETS ? b : PCPU_SIZE_HIST_BUCKETS - 1;
}

/* An area of `size` bytes at bit_off was allocated from ch (locked). */
static inline void pcpu_hook_alloc_locked(struct pcpu_chunk *ch, int bit_off, size_t size)
{
	pcpu.stats.size_hist[pcpu_size_bucket(size)]++;
	if (size > ch->max_alloc_size)
		ch->max_alloc_size = size;
	if (PCPU_ASAN)
		pcpu_memcheck_range(ch, bit_off, (int)(size / PCPU_MIN_ALLOC_BYTES), true);
}

/* ...and given back because its pages could not be populated (locked). */
static inline void pcpu_hook_alloc_undo(struct pcpu_chunk *ch, int bit_off, size_t size)
{
	pcpu.stats.size_hist[pcpu_size_bucket(size)]--;
	if (PCPU_ASAN)
		pcpu_memcheck_range(ch, bit_off, (int)(size / PCPU_MIN_ALLOC_BYTES), false);
}

/* A successful allocation, no lock held, before its memory is zeroed. */
static inline void pcpu_hook_alloc(const struct pcpu_chunk *ch, int bit_off, size_t size)
{
	if (__builtin_expect(pcpu_debug != 0, 0))
		pcpu_debug_alloc_slow(ch, bit_off, size);
}

/* A valid area is about to be freed (locked). */
static inline void pcpu_hook_free_locked(const struct pcpu_chunk *ch, int bit_off, int bits)
{
	if (PCPU_ASAN || __builtin_expect(pcpu_debug & PCPU_DEBUG_VALGRIND, 0))
		pcpu_memcheck_range(ch, bit_off, bits, false);
}

/* After an operation (PCPU_OP_*) that changed the allocator, no lock held.
 * No pointer: keeping one alive here would cost the hot path a register. */
static inline void pcpu_hook_op(int op)
{
	if (__builtin_expect(pcpu_debug & PCPU_DEBUG_VERIFY, 0))
		pcpu_debug_verify_op(op, NULL);
}

/* Pages were populated and recorded (locked) / are being depopulated. */
static inline void pcpu_hook_populated(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	if (PCPU_ASAN || __builtin_expect(pcpu_debug & PCPU_DEBUG_VALGRIND, 0))
		pcpu_memcheck_populated(ch, page_start, page_end);
}

static inline void pcpu_hook_depopulate(const struct pcpu_chunk *ch, int page_start, int page_end)
{
	if (PCPU_ASAN || __builtin_expect(pcpu_debug & PCPU_DEBUG_VALGRIND, 0))
		pcpu_memcheck_depopulated(ch, page_start, page_end);
}

#endif
