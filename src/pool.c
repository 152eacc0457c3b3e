/*
 * pool.c - the chunks on their slot lists: which chunk an allocation tries
 * first, relocation after every change, sidelining, reintegration, the
 * search for a fit, and the O(1) handle -> chunk lookup; what reclaim and
 * zeroing need to know of each allocation and free (when pages became
 * empty, which memory is still known to be zero).  Everything here runs
 * under `lock` unless it says otherwise.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <string.h>
#include <time.h>

#include "bitops.h"

struct pcpu_pool pcpu_pool = {
	.lock = PCPU_LOCK_SPIN_INITIALIZER,      /* PCPU_ATOMIC takes it by spinning */
	.pop_mutex = PCPU_LOCK_INITIALIZER,
};

/* ---- slots --------------------------------------------------------------- */

static int fls_size(size_t v)
{
	return v ? (int)(8 * sizeof(long)) - __builtin_clzl((unsigned long)v) : 0;
}

int pool_size_to_slot(size_t size)
{
	int slot;

	if (size == pcpu_pool.unit_size)
		return pcpu_pool.free_slot;
	slot = fls_size(size) - POOL_SLOT_BASE_SHIFT + 2;
	return slot < 1 ? 1 : slot;
}

int pool_chunk_slot(const struct pcpu_chunk *ch)
{
	if (ch->map->free_bytes < PCPU_MIN_ALLOC_BYTES || ch->map->chunk_md.contig == 0)
		return 0;
	return pool_size_to_slot((size_t)chunk_contig_bytes(ch->map));
}

static void list_del(struct pcpu_chunk *ch)
{
	if (ch->prev)
		ch->prev->next = ch->next;
	else if (!(pcpu_pool.slots[ch->slot].head = ch->next))
		pcpu_pool.slot_mask &= ~(1UL << ch->slot);
	if (ch->next)
		ch->next->prev = ch->prev;
	ch->prev = ch->next = NULL;
}

/* Move ch to the front or the back of slot's list; slot -1 unlinks. */
static void chunk_move(struct pcpu_chunk *ch, int slot, bool front)
{
	pcpu_assert_held(&pcpu_pool.lock);
	if (ch->slot >= 0)
		list_del(ch);
	ch->slot = slot;
	if (slot < 0)
		return;
	struct pcpu_list *l = &pcpu_pool.slots[slot];

	pcpu_pool.slot_mask |= 1UL << slot;
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

void pool_chunk_move(struct pcpu_chunk *ch, int slot)
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
void pool_chunk_relocate(struct pcpu_chunk *ch, int oslot)
{
	int nslot = pool_chunk_slot(ch);

	if (ch->isolated || ch == pcpu_pool.reserved_chunk)
		return;
	if (oslot != nslot || ch->slot < 0)
		chunk_move(ch, nslot, oslot > nslot);
}

void pool_reintegrate_chunk(struct pcpu_chunk *ch)
{
	pcpu_assert_held(&pcpu_pool.lock);
	ch->isolated = false;
	pcpu_pool.nr_empty_pop_pages += ch->map->nr_empty_pop_pages;
	pool_chunk_relocate(ch, -1);
}

bool pool_reintegrate_all(void)
{
	struct pcpu_list *l = &pcpu_pool.slots[pcpu_pool.to_depopulate_slot];

	if (!l->head)
		return false;
	while (l->head)
		pool_reintegrate_chunk(l->head);
	return true;
}

/* ---- handles ------------------------------------------------------------- */

struct pcpu_chunk *pool_handle_chunk(const void *handle, int *off)
{
	struct pcpu_chunk *ch;
	size_t idx;

	if (!pool_handle_locate(handle, &idx, off) || !(ch = pcpu_pool.chunk_table[idx]))
		return NULL;
	return idx == 0 && *off < pcpu_pool.reserved_end ? pcpu_pool.reserved_chunk : ch;
}

/* ---- reclaim and zeroing bookkeeping -------------------------------------- */

int64_t pool_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * An area [off, off + bits) of ch is being handed out: true if all of it
 * lies above its pages' zero marks (it reads zero), and raise the marks
 * past it.  With first fit, a fresh page fills from its start, so the
 * mark follows the allocations up the page.
 */
static bool hand_out(struct pcpu_chunk *ch, int off, int bits)
{
	int shift = ch->map->block_shift, end = off + bits;
	int p0 = off >> shift, p1 = (end - 1) >> shift;
	bool zero = off - (p0 << shift) >= ch->zero_from[p0];

	for (int p = p0; p <= p1; p++) {
		int top = (end < (p + 1) << shift ? end : (p + 1) << shift) - (p << shift);

		if (p > p0 && ch->zero_from[p] != 0)
			zero = false;
		if (ch->zero_from[p] < top)
			ch->zero_from[p] = top;
	}
	return zero;
}

bool pool_area_is_zero(struct pcpu_chunk *ch, int off, int bits)
{
	bool zero = ch->zero_off == off && ch->zero_bits == bits &&
		    !(pcpu_pool.debug & POOL_DEBUG_VALGRIND);

	pcpu_assert_held(&pcpu_pool.lock);
	ch->zero_off = -1;
	if (zero)
		pcpu_pool.stats.nr_alloc_prezeroed++;
	return zero;
}

/* The pages of [off, off + bits) were in use until `when` (or later). */
static void note_freed(struct pcpu_chunk *ch, int off, int bits, int64_t when)
{
	const struct chunk *c = ch->map;

	if (when == POOL_NOW)
		when = pool_now_ms();
	for (int p = off >> c->block_shift; p <= (off + bits - 1) >> c->block_shift; p++)
		if (ch->empty_since[p] < when)
			ch->empty_since[p] = when;
}

bool pool_free_wants_reclaim(const struct pcpu_chunk *ch)
{
	const struct chunk *c = ch->map;

	pcpu_assert_held(&pcpu_pool.lock);
	if (pcpu_pool.decay_ms != 0)
		return false;
	if (ch->slot == pcpu_pool.free_slot)
		return pcpu_pool.slots[pcpu_pool.free_slot].head->next != NULL;
	return !ch->immutable && !ch->isolated && ch != pcpu_pool.reserved_chunk &&
	       c->nr_empty_pop_pages > 0 && c->nr_empty_pop_pages >= c->nr_pages / pcpu_pool.reclaim_frac &&
	       pcpu_pool.nr_empty_pop_pages > pcpu_pool.empty_pop_high + c->nr_empty_pop_pages;
}

/* ---- searching and freeing ------------------------------------------------- */

/* What the pool's bookkeeping needs from a chunk before its map changes. */
struct chunk_before {
	int slot, empty_pop;
};

static inline struct chunk_before chunk_before(const struct pcpu_chunk *ch)
{
	return (struct chunk_before){ pool_chunk_slot(ch), ch->map->nr_empty_pop_pages };
}

/* After allocations or frees in ch: the pool's empty-page count and the
 * chunk's slot follow the map. */
static void chunk_settle(struct pcpu_chunk *ch, struct chunk_before b)
{
	if (pool_chunk_in_pool(ch))
		pcpu_pool.nr_empty_pop_pages += ch->map->nr_empty_pop_pages - b.empty_pop;
	pool_chunk_relocate(ch, b.slot);
}

/* chunk_alloc_area in ch from `start` (a find result), with the pool's
 * bookkeeping: zero tracking, the empty-page count, the chunk's slot. */
static int alloc_in_chunk(struct pcpu_chunk *ch, int bits, int align_bits, int start)
{
	struct chunk_before b = chunk_before(ch);
	int off = chunk_alloc_area(ch->map, bits, align_bits, start);

	if (off < 0)
		return -1;
	ch->zero_off = hand_out(ch, off, bits) ? off : -1;
	ch->zero_bits = bits;
	chunk_settle(ch, b);
	return off;
}

/*
 * Slots from the one for size up to the free slot, each list front to
 * back.  With pop_only, only populated pages qualify and nothing is
 * sidelined (a miss there says nothing about the chunk's free space).
 */
struct pcpu_chunk *pool_find_area(size_t size, int bits, int align_bits, bool pop_only, int *off)
{
	unsigned long todo = pcpu_pool.slot_mask & ~((1UL << pool_size_to_slot(size)) - 1) &
			     ((2UL << pcpu_pool.free_slot) - 1);

	pcpu_assert_held(&pcpu_pool.lock);
	while (todo) {
		int slot = __builtin_ctzl(todo);
		struct pcpu_chunk *ch, *next;

		todo &= todo - 1;

		for (ch = pcpu_pool.slots[slot].head; ch; ch = next) {
			int start;

			next = ch->next;
			start = chunk_find_fit(ch->map, bits, align_bits, pop_only);
			if (start < 0) {
				if (!pop_only && slot < POOL_SLOT_FAIL_THRESHOLD)
					chunk_move(ch, pcpu_pool.sidelined_slot, false);
				continue;
			}
			if ((*off = alloc_in_chunk(ch, bits, align_bits, start)) < 0)
				continue;
			return ch;
		}
	}
	return NULL;
}

struct pcpu_chunk *pool_find_area_either(size_t size, int bits, int align_bits, int min_align_bits,
					 bool pop_only, int *off)
{
	struct pcpu_chunk *ch = pool_find_area(size, bits, align_bits, pop_only, off);

	if (!ch && min_align_bits < align_bits)
		ch = pool_find_area(size, bits, min_align_bits, pop_only, off);
	return ch;
}

/* The pool's bookkeeping after m areas of `bits` were taken back to back
 * from bit `first` of ch (b: before they were): zero marks, slot; their
 * handles to out[].  Returns whether they read zero. */
static bool run_taken(struct pcpu_chunk *ch, struct chunk_before b, int first, int bits, int m,
		      void **out)
{
	char *h = pool_chunk_handle(ch, first * PCPU_MIN_ALLOC_BYTES);
	size_t size = (size_t)bits * PCPU_MIN_ALLOC_BYTES;
	bool zero = hand_out(ch, first, m * bits);

	ch->zero_off = -1;
	chunk_settle(ch, b);
	for (int i = 0; i < m; i++)
		out[i] = h + (size_t)i * size;
	return zero;
}

/*
 * A chunk whose longest free run starts at its first free bit
 * (chunk_bump_many) hands out up to `want` more areas back to back from
 * there, with the pool's bookkeeping done once for all of them.  Returns
 * how many.  A batch that would end inside a line of the live map ends
 * at the line's start instead when that keeps at least half of it, so
 * batches taken one after the other for different CPUs' caches do not
 * share the lines their allocations and frees write.
 */
static unsigned int bump_in_chunk(struct pcpu_chunk *ch, int bits, int align_bits, unsigned int want,
				  void **out, bool *zero, int *start)
{
	struct chunk_before b = chunk_before(ch);
	int first = ch->map->chunk_md.first_free, end = first + (int)want * bits, m;

	if (end % POOL_LIVE_LINE_BITS && end - end % POOL_LIVE_LINE_BITS >= first + (int)want * bits / 2)
		want = (unsigned int)((end - end % POOL_LIVE_LINE_BITS - first) / bits);
	m = chunk_bump_many(ch->map, bits, align_bits, (int)want, true);

	if (m <= 0)
		return 0;
	*zero = run_taken(ch, b, first, bits, m, out);
	*start = first;
	return (unsigned int)m;
}

/*
 * After an area placed at start - bits (in a hole): up to `want` more
 * areas back to back in the rest of that free run (chunk_take_run), with
 * the pool's bookkeeping done once.  Returns how many.
 */
static unsigned int run_in_chunk(struct pcpu_chunk *ch, int start, int bits, unsigned int want,
				 void **out, bool *zero)
{
	struct chunk_before b = chunk_before(ch);
	int m = chunk_take_run(ch->map, start, bits, (int)want, true);

	if (m <= 0)
		return 0;
	*zero = run_taken(ch, b, start, bits, m, out);
	return (unsigned int)m;
}

/* Append n areas (out[at..]) known zero or not to the batch's runs,
 * extending the last run when they follow it back to back. */
static void note_run(struct pool_batch *bt, unsigned int at, unsigned int n, size_t size, bool zero)
{
	struct pool_run *r = bt->nr_runs ? &bt->runs[bt->nr_runs - 1] : NULL;

	if (r && r->zero == zero && (char *)bt->out[at - 1] + size == (char *)bt->out[at])
		r->n += n;
	else
		bt->runs[bt->nr_runs++] = (struct pool_run){ n, zero };
}

/*
 * The area at bit off of ch, just found (pool_find_area, alloc_in_chunk),
 * goes to out[n], and after it as many more of up to `want` as lie back to
 * back: from the chunk's front run when `bump` (chunk_bump_many), else, or
 * when that gives none, from the rest of the area's free run.  Returns how
 * many areas in all; *last: the bit offset of the last.
 */
static unsigned int take_from(struct pcpu_chunk *ch, struct pool_batch *bt, unsigned int n,
			      unsigned int want, size_t size, int off, int bits, int align_bits, bool bump,
			      int *last)
{
	bool zero = ch->zero_off == off && ch->zero_bits == bits;  /* alloc_in_chunk's note */
	int first = off + bits;
	unsigned int m = 0;

	ch->zero_off = -1;
	bt->out[n] = pool_chunk_handle(ch, off * PCPU_MIN_ALLOC_BYTES);
	note_run(bt, n++, 1, size, zero);
	if (bump)
		m = bump_in_chunk(ch, bits, align_bits, want - n, bt->out + n, &zero, &first);
	if (!m && !(bits & (align_bits - 1)))   /* areas back to back stay aligned */
		m = run_in_chunk(ch, off + bits, bits, want - n, bt->out + n, &zero);
	if (m)
		note_run(bt, n, m, size, zero);
	*last = m ? first + (int)(m - 1) * bits : off;
	return m + 1;
}

unsigned int pool_find_areas(size_t size, int bits, int align_bits, unsigned int want,
			     struct pool_batch *bt)
{
	unsigned int n = 0;
	int off, start;

	bt->nr_runs = 0;
	while (n < want) {
		struct pcpu_chunk *ch = pool_find_area(size, bits, align_bits, true, &off);

		if (!ch)
			break;
		if (!n) {
			bt->first_ch = ch;
			bt->first_off = off;
		}
		if (size > ch->max_alloc_size)
			ch->max_alloc_size = size;
		n += take_from(ch, bt, n, want, size, off, bits, align_bits, true, &off);
		/* Go on in the same chunk while its hint walk finds room: each
		 * hole found takes as many objects as it holds. */
		while (n < want && (start = chunk_find_next_fit(ch->map, off, bits, align_bits, true)) >= 0 &&
		       (off = alloc_in_chunk(ch, bits, align_bits, start)) >= 0)
			n += take_from(ch, bt, n, want, size, off, bits, align_bits, false, &off);
	}
	return n;
}

struct pcpu_chunk *pool_find_reserved(int bits, int align_bits, int *off)
{
	struct pcpu_chunk *rc = pcpu_pool.reserved_chunk;
	int start;

	pcpu_assert_held(&pcpu_pool.lock);
	if (!rc)
		return NULL;
	start = chunk_find_fit(rc->map, bits, align_bits, false);
	if (start < 0 || (*off = chunk_alloc_area(rc->map, bits, align_bits, start)) < 0)
		return NULL;
	return rc;
}

/* Free nr_areas areas covering [off, off + bits) of ch (chunk_free_span)
 * with the pool's bookkeeping, the pages in use until `when`. */
static void free_span(struct pcpu_chunk *ch, int off, int bits, int nr_areas, int64_t when)
{
	struct chunk_before b = chunk_before(ch);

	pcpu_assert_held(&pcpu_pool.lock);
	chunk_free_span(ch->map, off, bits, nr_areas);
	note_freed(ch, off, bits, when);
	chunk_settle(ch, b);
}

void pool_free_area(struct pcpu_chunk *ch, int off, int bits, int64_t unused_since)
{
	free_span(ch, off, bits, 1, unused_since);
}

bool pool_free_handles(void *const *handles, unsigned int n, int bits, int64_t unused_since)
{
	int64_t when = unused_since == POOL_NOW ? pool_now_ms() : unused_since;
	uintptr_t bytes = (uintptr_t)bits * PCPU_MIN_ALLOC_BYTES;
	bool wake = false;

	for (unsigned int i = 0, k; i < n; i += k) {
		uintptr_t h = (uintptr_t)handles[i], next = i + 1 < n ? (uintptr_t)handles[i + 1] : 0;
		uintptr_t step = next == h + bytes || next == h - bytes ? next - h : 0, lo = h;
		struct pcpu_chunk *ch;
		int off = 0, last_off;

		/* The longest run from i of areas back to back, going up or
		 * down in address (step, modulo 2^N), inside one chunk. */
		for (k = 1; step && i + k < n && (uintptr_t)handles[i + k] == h + k * step;)
			k++;
		if (step != bytes)
			lo = h + (k - 1) * step;        /* going down: the last is the lowest */
		ch = pool_handle_chunk((void *)lo, &off);
		if (k > 1 && pool_handle_chunk((void *)(lo + (k - 1) * bytes), &last_off) != ch)
			k = 1, lo = h, ch = pool_handle_chunk((void *)h, &off);
		free_span(ch, off / PCPU_MIN_ALLOC_BYTES, (int)k * bits, (int)k, when);
		wake |= pool_free_wants_reclaim(ch);
	}
	return wake;
}

/* ---- balancing requests and clients --------------------------------------- */

/* Appended under clients_mutex, published with release stores: readers
 * walk the list without a lock.  Clients are never removed. */
static struct pool_client *clients;
static pthread_mutex_t clients_mutex = PTHREAD_MUTEX_INITIALIZER;

void pool_add_client(struct pool_client *c)
{
	struct pool_client **pp = &clients;

	pthread_mutex_lock(&clients_mutex);
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (!*pp) {
		c->next = NULL;
		__atomic_store_n(pp, c, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&clients_mutex);
}

struct pool_client *pool_first_client(void)
{
	return __atomic_load_n(&clients, __ATOMIC_ACQUIRE);
}

struct pool_client *pool_next_client(const struct pool_client *c)
{
	return __atomic_load_n(&c->next, __ATOMIC_ACQUIRE);
}

void pool_update_max(void)
{
	int64_t live = pcpu_pool.nr_live;

	pool_for_each_client(c)
		if (c->unreported_live)
			live += c->unreported_live();
	if (live > (int64_t)pcpu_pool.stats.nr_max_alloc)
		pcpu_pool.stats.nr_max_alloc = (uint64_t)live;
}

void pool_quiesce(bool on)
{
	pcpu_assert_held(&pcpu_pool.lock);
	pool_for_each_client(c)
		if (c->quiesce)
			c->quiesce(on);
}

void pool_census(struct pool_census *acc, bool quiesced)
{
	pcpu_assert_held(&pcpu_pool.lock);
	memset(acc, 0, sizeof(*acc));
	if (!quiesced)
		pool_quiesce(true);
	pool_for_each_client(c)
		if (c->census)
			c->census(acc);
	if (!quiesced)
		pool_quiesce(false);
}

bool pool_drain_clients(bool all, long idle_ms)
{
	bool holds = false;

	pool_for_each_client(c)
		if (c->drain)
			holds |= c->drain(all, idle_ms);
	return holds;
}

void pool_kick_balance(unsigned why)
{
	pool_want_balance(why | POOL_BALANCE_KICKED);
	for (struct pool_client *c = pool_first_client(); c; c = pool_next_client(c))
		if (c->kick)
			c->kick();
}
