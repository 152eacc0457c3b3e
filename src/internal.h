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
void pcpu_balance_atfork_prepare(void);
void pcpu_balance_atfork_parent(void);
void pcpu_balance_atfork_child(void);
int pcpu_balance_pass(void);

/* Stats helpers (alloc.c) */
void pcpu_layout_stats(struct pcpu_stats *out);

#endif
