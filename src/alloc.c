/*
 * alloc.c - the process-wide allocator: initialisation and the first chunk,
 * slot lists, pcpu_alloc / pcpu_free, handle validation, fork.
 *
 * An allocation first looks for room on populated pages holding only the
 * metadata lock (the path atomic allocations take).  Only when that fails
 * does a blocking allocation take the population mutex, search again
 * allowing unpopulated pages, create a chunk if nothing fits, and populate
 * the pages under its new area before returning.  Memory is zeroed in
 * every unit outside both locks.
 */
#define _GNU_SOURCE   /* sched_getcpu */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitops.h"
#include "internal.h"
#include "os.h"
#include "probes.h"
#include "static.h"

struct pcpu_state pcpu = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.pop_mutex = PTHREAD_MUTEX_INITIALIZER,
};

PCPU_API uintptr_t pcpu_cpu_offset[PCPU_MAX_CPUS];

static pthread_mutex_t init_mutex = PTHREAD_MUTEX_INITIALIZER;

#define DEFAULT_RESERVED_SIZE (8u << 10)
#define DEFAULT_DYN_SIZE (20u << 10)
#define DEFAULT_MIN_UNIT_SIZE (256u << 10)   /* a typical x86_64 kernel unit */
#define DEFAULT_ADDR_SPACE (64ull << 30)
#define MAX_REGION_SIZE (1ull << 40)
#define WARN_LIMIT 10

/* ---- diagnostics --------------------------------------------------------- */

void pcpu_warn(unsigned flags, const char *fmt, ...)
{
	va_list ap;
	unsigned n;

	if (flags & PCPU_NOWARN)
		return;
	n = __atomic_fetch_add(&pcpu.warn_count, 1, __ATOMIC_RELAXED);
	if (n >= WARN_LIMIT)
		return;
	va_start(ap, fmt);
	fputs("libpercpu: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (n + 1 == WARN_LIMIT)
		fputs(" (further warnings suppressed)", stderr);
	fputc('\n', stderr);
	va_end(ap);
}

static void __attribute__((noreturn)) invalid_pointer(const char *fn, const void *ptr, const char *why)
{
	fprintf(stderr, "libpercpu: %s(): invalid pointer %p: %s\n", fn, ptr, why);
	abort();
}

/* ---- slots --------------------------------------------------------------- */

static int fls_size(size_t v)
{
	return v ? (int)(8 * sizeof(long)) - __builtin_clzl((unsigned long)v) : 0;
}

int pcpu_size_to_slot(size_t size)
{
	int slot;

	if (size == pcpu.unit_size)
		return pcpu.free_slot;
	slot = fls_size(size) - SLOT_BASE_SHIFT + 2;
	return slot < 1 ? 1 : slot;
}

int pcpu_chunk_slot(const struct pcpu_chunk *ch)
{
	if (ch->map->free_bytes < PCPU_MIN_ALLOC_BYTES || ch->map->chunk_md.contig == 0)
		return 0;
	return pcpu_size_to_slot((size_t)chunk_contig_bytes(ch->map));
}

static void list_del(struct pcpu_chunk *ch)
{
	if (ch->prev)
		ch->prev->next = ch->next;
	else if (!(pcpu.slots[ch->slot].head = ch->next))
		pcpu.slot_mask &= ~(1UL << ch->slot);
	if (ch->next)
		ch->next->prev = ch->prev;
	ch->prev = ch->next = NULL;
}

/* Move ch to the front or the back of slot's list; slot -1 unlinks. */
static void chunk_move(struct pcpu_chunk *ch, int slot, bool front)
{
	if (ch->slot >= 0)
		list_del(ch);
	ch->slot = slot;
	if (slot < 0)
		return;
	struct pcpu_list *l = &pcpu.slots[slot];

	pcpu.slot_mask |= 1UL << slot;
	if (front || !l->head) {
		ch->next = l->head;
		if (l->head)
			l->head->prev = ch;
		l->head = ch;
		return;
	}
	struct pcpu_chunk *tail = l->head;

	while (tail->next)
		tail = tail->next;
	tail->next = ch;
	ch->prev = tail;
}

void pcpu_chunk_move(struct pcpu_chunk *ch, int slot)
{
	chunk_move(ch, slot, false);
}

/*
 * Put ch on the list its longest free run calls for, if that changed since
 * oslot.  A chunk that filled up goes to the front (the next request of its
 * size finds the chunk it was just using); one that gained room goes to the
 * back, so fuller chunks are preferred and emptier ones can drain.
 * Isolated chunks stay where the balancer put them.
 */
void pcpu_chunk_relocate(struct pcpu_chunk *ch, int oslot)
{
	int nslot = pcpu_chunk_slot(ch);

	if (ch->isolated || ch == pcpu.reserved_chunk)
		return;
	if (oslot != nslot || ch->slot < 0)
		chunk_move(ch, nslot, oslot > nslot);
}

/* ---- initialisation ------------------------------------------------------ */

static size_t env_size(const char *name, size_t dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long n;

	if (!v || !*v)
		return dflt;
	n = strtoull(v, &end, 0);
	switch (*end) {
	case 'k': case 'K': n <<= 10; break;
	case 'm': case 'M': n <<= 20; break;
	case 'g': case 'G': n <<= 30; break;
	default: break;
	}
	return n ? (size_t)n : dflt;
}

/* Reserve [guard | region], halving the region while the system refuses. */
static int reserve_region(size_t want, size_t stride)
{
	size_t size = want / stride * stride;

	if (size < stride)
		size = stride;
	for (;;) {
		void *m = os_reserve(2 * size, stride);

		if (m) {
			pcpu.mapping = m;
			pcpu.mapping_size = 2 * size;
			pcpu.guard_size = size;
			pcpu.region = (char *)m + size;
			pcpu.region_size = size;
			return 0;
		}
		if (size == stride)
			return -1;
		size = size / 2 / stride * stride;
		if (size < stride)
			size = stride;
	}
}

static int setup_first_chunk(size_t static_size)
{
	struct layout *l = pcpu.layout;
	size_t size_sum = l->static_size + l->reserved_size + l->dyn_size;
	int pop_pages = (int)((size_sum + pcpu.page_size - 1) >> pcpu.page_shift);
	struct pcpu_chunk *fc, *rc = NULL;

	fc = calloc(1, sizeof(*fc));
	if (!fc)
		return -1;
	fc->map = chunk_create(pcpu.unit_pages, pcpu.page_size, static_size + l->reserved_size,
			       pcpu.unit_size - size_sum);
	if (!fc->map)
		goto fail;
	fc->base = pcpu.region;
	fc->slot = -1;
	fc->immutable = true;
	if (l->reserved_size) {
		size_t end = static_size + l->reserved_size;
		int pages = (int)((end + pcpu.page_size - 1) >> pcpu.page_shift);

		rc = calloc(1, sizeof(*rc));
		if (!rc || !(rc->map = chunk_create(pages, pcpu.page_size, static_size,
						    ((size_t)pages << pcpu.page_shift) - end)))
			goto fail;
		rc->base = pcpu.region;
		rc->slot = -1;
		rc->immutable = true;
		chunk_mark_populated(rc->map, 0, pages);
	}

	for (int g = 0; os_nr_nodes() > 1 && g < l->nr_groups; g++)
		(void)os_bind_node(pcpu.region + l->groups[g].base_offset,
				   (size_t)l->groups[g].nr_units * pcpu.unit_size, l->groups[g].node);
	if (pcpu_populate_pages(fc, 0, pop_pages))
		goto fail;

	pcpu.first_chunk = fc;
	pcpu.reserved_chunk = rc;
	pcpu.first_chunk_populated = (size_t)pop_pages << pcpu.page_shift;
	pcpu.chunk_table[0] = fc;
	bit_set(pcpu.chunk_used, 0);
	pcpu.chunk_hiwater = 1;
	pcpu_note_populated(fc, 0, pop_pages);
	pcpu.stats.nr_pages_populated = 0;   /* the first chunk is not a population event */
	pcpu_chunk_relocate(fc, -1);
	return 0;
fail:
	if (rc)
		chunk_destroy(rc->map);
	free(rc);
	if (fc)
		chunk_destroy(fc->map);
	free(fc);
	errno = ENOMEM;
	return -1;
}

/* Balancer marks and reclaim rule: config, else environment, else defaults
 * (the kernel's 2 and 4 pages, scaled up for chunks of many pages). */
static void set_marks(const struct pcpu_config *cfg)
{
	size_t low = cfg->empty_pop_low ? cfg->empty_pop_low : env_size("PCPU_EMPTY_POP_LOW", 0);
	size_t high = cfg->empty_pop_high ? cfg->empty_pop_high : env_size("PCPU_EMPTY_POP_HIGH", 0);
	size_t frac = cfg->reclaim_frac ? cfg->reclaim_frac : env_size("PCPU_RECLAIM_FRAC", 4);

	if (!low)
		low = pcpu.unit_pages / 64 > 2 ? (size_t)pcpu.unit_pages / 64 : 2;
	if (!high)
		high = pcpu.unit_pages / 32 > 4 ? (size_t)pcpu.unit_pages / 32 : 4;
	if (high < low)
		high = low;
	pcpu.empty_pop_low = low > (size_t)pcpu.unit_pages ? pcpu.unit_pages : (int)low;
	pcpu.empty_pop_high = high > (size_t)pcpu.unit_pages ? pcpu.unit_pages : (int)high;
	pcpu.reclaim_frac = frac < 1 ? 1 : frac > 1024 ? 1024 : (int)frac;
}

static void atfork_prepare(void);
static void atfork_parent(void);
static void atfork_child(void);

static int do_init(const struct pcpu_config *user)
{
	struct pcpu_config cfg = user ? *user : (struct pcpu_config){ 0 };
	struct layout_params lp = { 0 };
	size_t static_size = pcpu_static_main_size(), stride;   /* the program's PCPU_DEFINEs */

	if (!cfg.nr_cpus)
		cfg.nr_cpus = os_possible_cpus();
	if (!cfg.reserved_size)
		cfg.reserved_size = DEFAULT_RESERVED_SIZE;
	if (!cfg.dyn_size)
		cfg.dyn_size = DEFAULT_DYN_SIZE;
	if (!cfg.min_unit_size)
		cfg.min_unit_size = DEFAULT_MIN_UNIT_SIZE;
	if (!cfg.addr_space)
		cfg.addr_space = env_size("PCPU_ADDR_SPACE", 0);
	if (cfg.nr_cpus > PCPU_MAX_CPUS || cfg.reserved_size > (1u << 30) ||
	    cfg.dyn_size > (1u << 30) || cfg.min_unit_size > (1u << 30) ||
	    (cfg.atom_size & (cfg.atom_size - 1)) || cfg.atom_size > (1u << 30) ||
	    cfg.addr_space > MAX_REGION_SIZE) {
		errno = EINVAL;
		return -1;
	}

	lp.nr_cpus = cfg.nr_cpus;
	lp.static_size = static_size;
	lp.reserved_size = cfg.reserved_size;
	lp.dyn_size = cfg.dyn_size;
	lp.min_unit_size = cfg.min_unit_size;
	lp.atom_size = cfg.atom_size;
	lp.cpu_distance = cfg.cpu_distance;
	pcpu.layout = layout_build(&lp);
	if (!pcpu.layout)
		return -1;

	pcpu.cfg = cfg;
	pcpu.nr_cpus = cfg.nr_cpus;
	pcpu.page_size = pcpu.layout->page_size;
	pcpu.page_shift = __builtin_ctzl(pcpu.page_size);
	pcpu.unit_size = pcpu.layout->unit_size;
	pcpu.unit_pages = (int)(pcpu.unit_size >> pcpu.page_shift);
	pcpu.stats.min_alloc_size = 0;

	for (stride = pcpu.page_size; stride < pcpu.layout->chunk_span; stride *= 2)
		;
	pcpu.stride_shift = __builtin_ctzl(stride);
	if (!cfg.addr_space) {
		cfg.addr_space = DEFAULT_ADDR_SPACE;
		if (cfg.addr_space < 256 * stride)
			cfg.addr_space = 256 * stride;
		if (cfg.addr_space > MAX_REGION_SIZE)
			cfg.addr_space = MAX_REGION_SIZE;
	}
	if (reserve_region(cfg.addr_space, stride))
		goto fail_layout;
	pcpu.max_chunks = (int)(pcpu.region_size >> pcpu.stride_shift);
	pcpu.chunk_table = calloc((size_t)pcpu.max_chunks, sizeof(*pcpu.chunk_table));
	pcpu.chunk_used = calloc(BITS_TO_LONGS(pcpu.max_chunks), sizeof(unsigned long));

	pcpu.sidelined_slot = pcpu_size_to_slot(pcpu.unit_size - 1) + 1;
	pcpu.free_slot = pcpu.sidelined_slot + 1;
	pcpu.to_depopulate_slot = pcpu.free_slot + 1;
	pcpu.nr_slots = pcpu.to_depopulate_slot + 1;
	if (pcpu.nr_slots > BITS_PER_LONG)
		goto fail_region;          /* unit sizes near 2^60: impossible */
	pcpu.slots = calloc((size_t)pcpu.nr_slots, sizeof(*pcpu.slots));
	if (!pcpu.chunk_table || !pcpu.chunk_used || !pcpu.slots)
		goto fail_region;

	for (unsigned cpu = 0; cpu < pcpu.nr_cpus; cpu++)
		pcpu_cpu_offset[cpu] = pcpu.guard_size + pcpu.layout->unit_off[cpu];
	if (setup_first_chunk(static_size))
		goto fail_region;

	set_marks(&cfg);
	pcpu_static_attach();          /* templates into every unit, libraries placed */
	pcpu_cpu_ready(pcpu.nr_cpus);  /* last: opens pcpu_current_cpu()'s inline path */
	return 0;

fail_region:
	free(pcpu.chunk_table);
	free(pcpu.chunk_used);
	free(pcpu.slots);
	os_unreserve(pcpu.mapping, pcpu.mapping_size);
fail_layout:
	layout_free(pcpu.layout);
	memset(&pcpu.layout, 0, sizeof(pcpu) - offsetof(struct pcpu_state, layout));
	pthread_mutex_init(&pcpu.lock, NULL);
	pthread_mutex_init(&pcpu.pop_mutex, NULL);
	errno = ENOMEM;
	return -1;
}

static int init_locked(const struct pcpu_config *cfg)
{
	static bool atfork_done;

	if (do_init(cfg))
		return -1;
	pcpu_debug_init();             /* PCPU_STATS, PCPU_VERIFY, memory checkers */
	if (!atfork_done) {
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
		atfork_done = true;
	}
	__atomic_store_n(&pcpu.ready, true, __ATOMIC_RELEASE);
	return 0;
}

PCPU_API int pcpu_init(const struct pcpu_config *cfg)
{
	int ret;

	pthread_mutex_lock(&init_mutex);
	if (pcpu.ready) {
		errno = EBUSY;
		ret = -1;
	} else {
		ret = init_locked(cfg);
	}
	pthread_mutex_unlock(&init_mutex);
	return ret;
}

int pcpu_ensure_init(void)
{
	int ret = 0;

	if (__builtin_expect(__atomic_load_n(&pcpu.ready, __ATOMIC_ACQUIRE), 1))
		return 0;
	pthread_mutex_lock(&init_mutex);
	if (!pcpu.ready)
		ret = init_locked(NULL);
	pthread_mutex_unlock(&init_mutex);
	return ret;
}

/* ---- fork ---------------------------------------------------------------- */

/*
 * Hold every allocator lock across fork so the child's copy of the
 * metadata is consistent.  The forking thread owns them in both processes
 * afterwards and releases them; the child has no balancer thread.
 */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&pcpu.pop_mutex);
	pthread_mutex_lock(&pcpu.lock);
	pcpu_balance_atfork_prepare();
}

static void atfork_parent(void)
{
	pcpu_balance_atfork_parent();
	pthread_mutex_unlock(&pcpu.lock);
	pthread_mutex_unlock(&pcpu.pop_mutex);
}

static void atfork_child(void)
{
	pcpu_balance_atfork_child();
	pthread_mutex_unlock(&pcpu.lock);
	pthread_mutex_unlock(&pcpu.pop_mutex);
}

/* ---- allocation ---------------------------------------------------------- */

/*
 * Search the slot lists for `bits` at align_bits, starting at the slot for
 * size and ending with the free slot.  With pop_only, only populated pages
 * qualify and nothing is sidelined (a miss there says nothing about the
 * chunk's free space).  `lock` held.  Returns the chunk and sets *off (bits).
 */
static struct pcpu_chunk *find_area(size_t size, int bits, int align_bits, bool pop_only, int *off)
{
	unsigned long todo = pcpu.slot_mask & ~((1UL << pcpu_size_to_slot(size)) - 1) &
			     ((2UL << pcpu.free_slot) - 1);

	while (todo) {
		int slot = __builtin_ctzl(todo);
		struct pcpu_chunk *ch, *next;

		todo &= todo - 1;

		for (ch = pcpu.slots[slot].head; ch; ch = next) {
			int start, oslot, before;

			next = ch->next;
			start = chunk_find_fit(ch->map, bits, align_bits, pop_only);
			if (start < 0) {
				if (!pop_only && slot < SLOT_FAIL_THRESHOLD)
					chunk_move(ch, pcpu.sidelined_slot, false);
				continue;
			}
			oslot = pcpu_chunk_slot(ch);
			before = ch->map->nr_empty_pop_pages;
			*off = chunk_alloc_area(ch->map, bits, align_bits, start);
			if (*off < 0)
				continue;
			if (pcpu_chunk_in_pool(ch))
				pcpu.nr_empty_pop_pages += ch->map->nr_empty_pop_pages - before;
			pcpu_chunk_relocate(ch, oslot);
			return ch;
		}
	}
	return NULL;
}

/* Serve a PCPU_RESERVED request from the reserved chunk.  `lock` held. */
static struct pcpu_chunk *find_reserved(int bits, int align_bits, int *off)
{
	struct pcpu_chunk *rc = pcpu.reserved_chunk;
	int start;

	if (!rc)
		return NULL;
	start = chunk_find_fit(rc->map, bits, align_bits, false);
	if (start < 0 || (*off = chunk_alloc_area(rc->map, bits, align_bits, start)) < 0)
		return NULL;
	return rc;
}

static void account_alloc(size_t size)
{
	struct pcpu_stats *st = &pcpu.stats;

	st->nr_alloc++;
	if (++st->nr_cur_alloc > st->nr_max_alloc)
		st->nr_max_alloc = st->nr_cur_alloc;
	if (!st->min_alloc_size || size < st->min_alloc_size)
		st->min_alloc_size = size;
	if (size > st->max_alloc_size)
		st->max_alloc_size = size;
}

/* Pages populated at once on the allocation path: fewer system calls (and
 * TLB flushes) per page, at the cost of up to POP_BATCH - 1 pages early. */
#define POP_BATCH 4

/* Populate every unpopulated page under [off, off + bits).  pop_mutex held. */
static int populate_area(struct pcpu_chunk *ch, int off, int bits)
{
	int ps = off >> ch->map->block_shift;
	int pe = (off + bits + ch->map->block_bits - 1) >> ch->map->block_shift;
	size_t s, e;

	for (s = (size_t)ps; bitmap_next_clear_run(ch->map->populated, (size_t)pe, &s, &e); s = e) {
		/* Extend the last run ahead into unpopulated pages. */
		if ((int)e == pe && (int)e - (int)s < POP_BATCH) {
			size_t limit = s + POP_BATCH < (size_t)ch->map->nr_pages ? s + POP_BATCH :
										  (size_t)ch->map->nr_pages;

			e = bitmap_next_set(ch->map->populated, limit, e);
		}
		if (pcpu_populate_pages(ch, (int)s, (int)e))
			return -1;
		pthread_mutex_lock(&pcpu.lock);
		pcpu_note_populated(ch, (int)s, (int)e);
		pthread_mutex_unlock(&pcpu.lock);
	}
	return 0;
}

/* Free [off, ...) of ch under `lock`, keeping the pool count and slot right. */
static void free_area_locked(struct pcpu_chunk *ch, int off, int bits)
{
	int oslot = pcpu_chunk_slot(ch), before = ch->map->nr_empty_pop_pages;

	chunk_free_area(ch->map, off, bits);
	if (pcpu_chunk_in_pool(ch))
		pcpu.nr_empty_pop_pages += ch->map->nr_empty_pop_pages - before;
	pcpu_chunk_relocate(ch, oslot);
}

static void zero_units(void *handle, size_t size)
{
	for (unsigned cpu = 0; cpu < pcpu.nr_cpus; cpu++) {
		char *p = pcpu_ptr(handle, cpu);

		if (size == 4)
			*(uint32_t *)p = 0;
		else if (size == 8)
			memset(p, 0, 8);   /* may be only 4-aligned: no uint64_t store */
		else
			memset(p, 0, size);
	}
}

#define KNOWN_FLAGS (PCPU_ATOMIC | PCPU_RESERVED | PCPU_NOWARN)

PCPU_API void __percpu *pcpu_alloc_flags(size_t size, size_t align, unsigned int flags)
{
	bool atomic = flags & PCPU_ATOMIC;
	struct pcpu_chunk *ch = NULL;
	int bits, align_bits, off = -1;
	bool pool_low;          /* read under the lock: wake the balancer after */
	const char *err;

	if (pcpu_ensure_init())
		return NULL;
	/* align 0 means "no requirement"; any other align must be a power of
	 * two (checked before rounding up to 4, so 3 is refused). */
	bool bad_align = align & (align - 1);

	if (align < PCPU_MIN_ALLOC_BYTES)
		align = PCPU_MIN_ALLOC_BYTES;
	if (!size || size > pcpu.unit_size || bad_align || align > pcpu.page_size ||
	    (flags & ~KNOWN_FLAGS)) {
		pcpu_warn(flags, "pcpu_alloc(size %zu, align %zu, flags %#x): invalid request",
			  size, align, flags);
		PCPU_PROBE(alloc_fail, size, align, flags, PCPU_FAIL_INVALID, "invalid request");
		errno = EINVAL;
		return NULL;
	}
	size = (size + PCPU_MIN_ALLOC_BYTES - 1) & ~(size_t)(PCPU_MIN_ALLOC_BYTES - 1);
	bits = (int)(size / PCPU_MIN_ALLOC_BYTES);
	align_bits = (int)(align / PCPU_MIN_ALLOC_BYTES);

	pthread_mutex_lock(&pcpu.lock);
	if (flags & PCPU_RESERVED) {
		ch = find_reserved(bits, align_bits, &off);
		err = "reserved area exhausted";
		goto found;
	}
	ch = find_area(size, bits, align_bits, true, &off);
	if (ch || atomic) {
		err = "no populated space for an atomic allocation";
		goto found;
	}
	pthread_mutex_unlock(&pcpu.lock);

	/* Blocking path: unpopulated pages allowed, chunks may be created. */
	pthread_mutex_lock(&pcpu.pop_mutex);
	for (;;) {
		pthread_mutex_lock(&pcpu.lock);
		ch = find_area(size, bits, align_bits, false, &off);
		if (ch)
			break;
		/* Chunks isolated for reclaim still hold free space: before a new
		 * chunk is made (or the address space runs out), take them back. */
		if (pcpu.slots[pcpu.to_depopulate_slot].head) {
			while (pcpu.slots[pcpu.to_depopulate_slot].head)
				pcpu_reintegrate_chunk(pcpu.slots[pcpu.to_depopulate_slot].head);
			pthread_mutex_unlock(&pcpu.lock);
			continue;
		}
		bool have_free = pcpu.slots[pcpu.free_slot].head != NULL;

		pthread_mutex_unlock(&pcpu.lock);
		if (have_free || !pcpu_create_chunk()) {
			pthread_mutex_unlock(&pcpu.pop_mutex);
			err = "out of memory or address space";
			pthread_mutex_lock(&pcpu.lock);
			ch = NULL;
			goto found;
		}
	}
	account_alloc(size);
	pcpu_hook_alloc_locked(ch, off, size);
	pool_low = pcpu.nr_empty_pop_pages < pcpu.empty_pop_low;
	pthread_mutex_unlock(&pcpu.lock);
	if (populate_area(ch, off, bits)) {
		pthread_mutex_lock(&pcpu.lock);
		free_area_locked(ch, off, bits);
		pcpu.stats.nr_alloc--;
		pcpu_hook_alloc_undo(ch, off, size);
		pcpu.stats.nr_cur_alloc--;
		pthread_mutex_unlock(&pcpu.pop_mutex);
		err = "cannot populate memory";
		ch = NULL;
		goto found;
	}
	pthread_mutex_unlock(&pcpu.pop_mutex);
	goto done;

found:
	if (!ch) {
		pcpu.stats.nr_alloc_fail++;
		if (atomic) {
			pcpu.stats.nr_atomic_fail++;
			pcpu_note_atomic_failure();
		}
		pthread_mutex_unlock(&pcpu.lock);
		if (atomic)
			pcpu_balance_wake();
		pcpu_warn(flags, "pcpu_alloc(size %zu, align %zu, flags %#x) failed: %s", size, align,
			  flags, err);
		PCPU_PROBE(alloc_fail, size, align, flags, pcpu_fail_reason(flags, err), err);
		pcpu_hook_op(PCPU_OP_ALLOC);
		errno = ENOMEM;
		return NULL;
	}
	account_alloc(size);
	pcpu_hook_alloc_locked(ch, off, size);
	pool_low = pcpu.nr_empty_pop_pages < pcpu.empty_pop_low;
	pthread_mutex_unlock(&pcpu.lock);
done:
	if (pool_low)
		pcpu_balance_wake();
	void *handle = pcpu_chunk_handle(ch, off * PCPU_MIN_ALLOC_BYTES);

	PCPU_PROBE(alloc, size, align, flags, handle, ch->index, (size_t)off * PCPU_MIN_ALLOC_BYTES);
	pcpu_hook_alloc(ch, off, size);
	zero_units(handle, size);
	return handle;
}

PCPU_API void __percpu *pcpu_alloc(size_t size, size_t align)
{
	return pcpu_alloc_flags(size, align, 0);
}

/* Chunk and bit offset of a live allocation, or abort naming the pointer.
 * `lock` held; released before aborting. */
static struct pcpu_chunk *validate(const char *fn, const void *ptr, int *bit_off, int *bits)
{
	struct pcpu_chunk *ch = pcpu_handle_chunk(ptr, bit_off);
	const char *why = "not a per-CPU handle from this allocator";

	if (ch) {
		if (*bit_off % PCPU_MIN_ALLOC_BYTES) {
			why = "misaligned: not the start of an allocation";
		} else {
			*bit_off /= PCPU_MIN_ALLOC_BYTES;
			*bits = chunk_area_bits(ch->map, *bit_off);
			if (*bits)
				return ch;
			if (*bit_off < ch->map->start_bits && ch->immutable)
				why = "a static per-CPU variable, not a dynamic allocation";
			else
				why = "not a live allocation (never allocated, interior, or already freed)";
		}
	}
	pthread_mutex_unlock(&pcpu.lock);
	invalid_pointer(fn, ptr, why);
}

PCPU_API void pcpu_free(void __percpu *ptr)
{
	struct pcpu_chunk *ch;
	int off, bits;
	bool wake = false;

	if (!ptr)
		return;
	if (!__atomic_load_n(&pcpu.ready, __ATOMIC_ACQUIRE))
		invalid_pointer("pcpu_free", ptr, "the allocator has made no allocation");
	pthread_mutex_lock(&pcpu.lock);
	ch = validate("pcpu_free", ptr, &off, &bits);
	PCPU_PROBE(free, ptr, (size_t)bits * PCPU_MIN_ALLOC_BYTES);
	pcpu_hook_free_locked(ch, off, bits);
	free_area_locked(ch, off, bits);
	pcpu.stats.nr_dealloc++;
	pcpu.stats.nr_cur_alloc--;
	/*
	 * A second fully free chunk is worth handing back.  A chunk with at
	 * least a quarter of its pages empty and populated, while the pool
	 * would stay above the high mark without them, is isolated so the
	 * balancer can depopulate those pages.
	 */
	if (ch->slot == pcpu.free_slot) {
		wake = pcpu.slots[pcpu.free_slot].head->next != NULL;
	} else if (!ch->immutable && !ch->isolated && ch != pcpu.reserved_chunk &&
		   ch->map->nr_empty_pop_pages > 0 &&
		   ch->map->nr_empty_pop_pages >= ch->map->nr_pages / pcpu.reclaim_frac &&
		   pcpu.nr_empty_pop_pages > pcpu.empty_pop_high + ch->map->nr_empty_pop_pages) {
		pcpu_isolate_chunk(ch);
		wake = true;
	}
	pthread_mutex_unlock(&pcpu.lock);
	if (wake)
		pcpu_balance_wake();
	pcpu_hook_op(PCPU_OP_FREE);
}

PCPU_API size_t pcpu_alloc_size(const void __percpu *ptr)
{
	int off, bits;

	if (!__atomic_load_n(&pcpu.ready, __ATOMIC_ACQUIRE))
		invalid_pointer("pcpu_alloc_size", ptr, "the allocator has made no allocation");
	pthread_mutex_lock(&pcpu.lock);
	validate("pcpu_alloc_size", ptr, &off, &bits);
	pthread_mutex_unlock(&pcpu.lock);
	return (size_t)bits * PCPU_MIN_ALLOC_BYTES;
}

/* ---- CPUs ---------------------------------------------------------------- */

PCPU_API unsigned int pcpu_nr_cpus(void)
{
	if (pcpu_ensure_init())
		return 1;
	return pcpu.nr_cpus;
}
