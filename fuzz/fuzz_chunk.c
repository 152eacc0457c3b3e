/*
 * fuzz_chunk.c - libFuzzer target for the in-chunk bitmap allocator alone
 * (src/chunk.h: no OS, no locks), checked against a plain model: one byte
 * per 4-byte fragment, used or free, and the list of live areas.
 *
 * Input: a 4-byte header chooses the chunk (page size 256..4096 B, 1..64
 * pages, hidden head and tail, pages populated up front, chunk_verify after
 * every operation or every 8th); the rest is a program of operations:
 *
 *   find_fit + alloc_area (bits, alignment, pop_only), chunk_alloc in bytes,
 *   free a live area (after checking chunk_area_bits on it and inside it),
 *   chunk_free at an arbitrary byte offset (must free exactly the live
 *   areas and refuse everything else, changing nothing), populate or
 *   depopulate a page range, chunk_sync + chunk_verify, a cache refill's
 *   batch (chunk_bump_many, then chunk_find_next_fit, which must agree with
 *   chunk_find_fit), a drain's span free (chunk_free_span).
 *
 * After every operation: the chunk's longest free run, free bytes, live
 * count and empty / empty-populated page counts equal the model's (they are
 * exact after every allocation and free, chunk.h); and chunk_verify() == 0
 * (after every operation for a quarter of the inputs, every 8th otherwise,
 * and on request, so the lazily refreshed run tree also goes stale between
 * checks).  An allocation must return an aligned
 * area, free in the model, inside [start_bits, end_bits), on populated
 * pages with pop_only; a failure is allowed only when no free run (on
 * populated pages with pop_only) holds `bits` fragments at the requested
 * alignment -- the guarantee in chunk.h, exact.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitops.h"
#include "bytes.h"
#include "chunk.h"

struct area {
	int off, bits;
};

static struct chunk *c;
static uint64_t *used;            /* model: bit i set = fragment i used */
static struct area *areas;
static int nareas;
static unsigned long long n_inputs, n_ops, n_allocs, n_fails, n_frees, n_verifies;

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz_chunk (%d pages of %d bits, head %d, tail from %d): ", c->nr_pages,
		c->block_bits, c->start_bits, c->end_bits);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static bool populated(int bit)
{
	return bit_test(c->populated, (size_t)(bit >> c->block_shift));
}

/* The model is a bitmap of 64-bit words; a block is at least 64 bits (256 B
 * pages), so a word never straddles two blocks. */
NO_COVERAGE static bool model_used(int bit)
{
	return used[bit / 64] >> (bit % 64) & 1;
}

NO_COVERAGE static void model_set(int off, int bits, bool v)
{
	for (int i = off; i < off + bits; i++)
		if (v)
			used[i / 64] |= 1ull << (i % 64);
		else
			used[i / 64] &= ~(1ull << (i % 64));
}

/* Longest run of free bits in the model (on populated pages if pop_only). */
NO_COVERAGE static int model_longest(bool pop_only)
{
	int best = 0, cur = 0, words = c->nr_bits / 64;

	for (int i = 0; i < words; i++) {
		uint64_t w = used[i];

		if (pop_only && !populated(i * 64))
			w = ~0ull;
		for (int pos = 0; pos < 64;) {
			uint64_t rest = w >> pos;
			int len = rest ? __builtin_ctzll(rest) : 64 - pos;

			cur += len;
			if (cur > best)
				best = cur;
			pos += len;
			if (pos >= 64)
				break;
			rest = ~(w >> pos);         /* bit pos is used: skip the used run */
			pos += rest ? __builtin_ctzll(rest) : 64 - pos;
			cur = 0;
		}
	}
	return best;
}

/* Free bits, empty blocks and empty populated blocks in the model. */
NO_COVERAGE static int model_counts(int *empty, int *empty_pop)
{
	int used_bits = 0, wpb = c->block_bits / 64;

	*empty = *empty_pop = 0;
	for (int b = 0; b < c->nr_pages; b++) {
		bool e = true;

		for (int i = b * wpb; i < (b + 1) * wpb; i++) {
			used_bits += __builtin_popcountll(used[i]);
			e &= !used[i];
		}
		*empty += e;
		*empty_pop += e && bit_test(c->populated, (size_t)b);
	}
	return c->nr_bits - used_bits;
}

static void check_state(const char *after, bool verify)
{
	int longest = model_longest(false), empty, empty_pop;
	int free_bits = model_counts(&empty, &empty_pop);
	char msg[256];

	if (c->chunk_md.contig != longest)
		fail("after %s: contig %d, model %d", after, c->chunk_md.contig, longest);
	if (c->free_bytes != free_bits * 4 || c->nr_alloc != nareas)
		fail("after %s: free_bytes %d nr_alloc %d, model %d and %d", after, c->free_bytes,
		     c->nr_alloc, free_bits * 4, nareas);
	if (c->run_bits) {
		/* an open run: the empty-page counts are those of the chunk
		 * without the run's areas (chunk_map.h) */
		int span = c->chunk_md.first_free - c->run_start;

		model_set(c->run_start, span, false);
		model_counts(&empty, &empty_pop);
		model_set(c->run_start, span, true);
	}
	if (c->nr_empty_pages != empty || c->nr_empty_pop_pages != empty_pop)
		fail("after %s: empty pages %d (populated %d), model %d (%d)", after, c->nr_empty_pages,
		     c->nr_empty_pop_pages, empty, empty_pop);
	if (verify) {
		n_verifies++;
		if (chunk_verify(c, msg, sizeof(msg)))
			fail("after %s: chunk_verify: %s", after, msg);
	}
}

/* Record an allocation the chunk made, after checking it against the model. */
static void took(int off, int bits, int align_bits, bool pop_only)
{
	if (off < c->start_bits || off + bits > c->end_bits || off % align_bits)
		fail("alloc %d bits align %d: bad area at %d", bits, align_bits, off);
	for (int i = off; i < off + bits; i++)
		if (model_used(i))
			fail("alloc %d bits at %d overlaps a live area at bit %d", bits, off, i);
	if (pop_only && !chunk_range_populated(c, off, bits))
		fail("pop_only alloc %d bits at %d touches an unpopulated page", bits, off);
	for (int i = off; i < off + bits; i++)
		if (pop_only && !populated(i))
			fail("pop_only alloc at %d: bit %d on an unpopulated page", off, i);
	if (chunk_area_bits(c, off) != bits)
		fail("chunk_area_bits(%d) = %d after allocating %d", off, chunk_area_bits(c, off), bits);
	model_set(off, bits, true);
	areas[nareas++] = (struct area){ off, bits };
	n_allocs++;
}

/* Where the first free run of the model (on populated pages if pop_only)
 * that holds `bits` bits at alignment align_bits has them, or -1. */
NO_COVERAGE static int model_fit(int bits, int align_bits, bool pop_only)
{
	for (int s = 0, e; s < c->nr_bits; s = e + 1) {
		int at;

		while (s < c->nr_bits && (model_used(s) || (pop_only && !populated(s))))
			s++;
		for (e = s; e < c->nr_bits && !model_used(e) && (!pop_only || populated(e));)
			e++;
		at = (s + align_bits - 1) & ~(align_bits - 1);
		if (s < e && at + bits <= e)
			return at;
	}
	return -1;
}

/* A failure is allowed only when no free run holds the request at its
 * alignment (the guarantee in chunk.h, exact). */
static void missed(int bits, int align_bits, bool pop_only, const char *how)
{
	int at = model_fit(bits, align_bits, pop_only);

	if (at >= 0)
		fail("%s %d bits align %d%s failed, but they fit at bit %d (longest free run %d)", how,
		     bits, align_bits, pop_only ? " pop_only" : "", at, model_longest(pop_only));
	n_fails++;
}

static void op_alloc(struct input *in, bool bytes)
{
	unsigned v = get16(in), a = get8(in);
	int usable = c->end_bits - c->start_bits;
	int bits = v & 0x8000 ? 1 + (int)(v & 0x7fff) % usable : 1 + (int)(v & 31);
	int align_bits = 1 << (a % (unsigned)(c->block_shift + 1));
	bool pop_only = a & 0x80;

	if (bytes) {
		int off = chunk_alloc(c, (size_t)bits * 4 - (a & 0x40 ? 3 : 0), (size_t)align_bits * 4,
				      pop_only);

		if (off >= 0) {
			if (off % 4)
				fail("chunk_alloc returned byte offset %d", off);
			took(off / 4, bits, align_bits, pop_only);
		} else {
			missed(bits, align_bits, pop_only, "chunk_alloc");
		}
		return;
	}
	int start = chunk_find_fit(c, bits, align_bits, pop_only);

	if (start < 0) {
		missed(bits, align_bits, pop_only, "find_fit");
		return;
	}
	if (start >= c->nr_bits)
		fail("find_fit %d bits: start %d beyond the chunk", bits, start);
	int off = chunk_alloc_area(c, bits, align_bits, start);

	if (off < 0)
		fail("find_fit %d bits align %d%s gave %d but alloc_area failed", bits, align_bits,
		     pop_only ? " pop_only" : "", start);
	took(off, bits, align_bits, pop_only);
}

/*
 * A cache refill: one find_fit + alloc_area, then more of the same size,
 * first as chunk_bump_many (exactly min(n, room / bits) areas when the
 * model's free run at its first free bit is its tail or the hint's longest
 * run and the request is aligned there, else none), then along chunk_find_next_fit: each area it finds must be the
 * one chunk_find_fit finds (a miss only ends the batch: the walk does not
 * go back to blocks before the previous area).
 */
static void op_batch(struct input *in)
{
	unsigned v = get8(in), a = get8(in), want = 1 + get8(in) % 64u;
	int bits = 1 + (int)(v & 63), align_bits = 1 << (a % (unsigned)(c->block_shift + 1));
	bool pop_only = a & 0x80;
	int prev = chunk_find_fit(c, bits, align_bits, pop_only), ff = -1, room = 0, expect = 0, m;

	if (prev < 0)
		return missed(bits, align_bits, pop_only, "batch find_fit");
	prev = chunk_alloc_area(c, bits, align_bits, prev);
	if (prev < 0)
		fail("batch: find_fit gave a start but alloc_area failed");
	took(prev, bits, align_bits, pop_only);

	for (int i = c->start_bits; i < c->end_bits && ff < 0; i++)
		if (!model_used(i))
			ff = i;
	if (ff >= 0) {
		int run = 0;

		while (ff + run < c->end_bits && !model_used(ff + run))
			run++;
		/* the tail, or the run the hint names as the longest (checked
		 * against the model after every op) */
		room = ff + run == c->end_bits || c->chunk_md.contig_start == ff ? run : 0;
		if (room && run != c->chunk_md.contig)
			fail("batch: the run at first free bit %d is %d bits, the hint's longest %d", ff,
			     run, c->chunk_md.contig);
		for (int i = ff; pop_only && i < ff + room; i++)
			if (!populated(i))
				room = i - ff;
		if (room >= bits && ff % align_bits == 0 && bits % align_bits == 0)
			expect = (int)want < room / bits ? (int)want : room / bits;
	}
	ff = c->chunk_md.first_free;
	m = chunk_bump_many(c, bits, align_bits, (int)want, pop_only);
	if (m != expect)
		fail("bump_many(%d bits align %d, %u%s) gave %d, model %d", bits, align_bits, want,
		     pop_only ? " pop_only" : "", m, expect);
	for (int k = 0; k < m; k++)
		took(ff + k * bits, bits, align_bits, pop_only);
	if (m)
		prev = ff + (m - 1) * bits;
	for (int k = m; k < (int)want; k++) {
		int next = chunk_find_next_fit(c, prev, bits, align_bits, pop_only), first;

		if (next < 0)
			return;         /* the batch ends; a fit the walk passed may remain */
		first = chunk_find_fit(c, bits, align_bits, pop_only);
		if (next != first)
			fail("find_next_fit after %d: %d, find_fit %d (%d bits align %d)", prev, next, first,
			     bits, align_bits);
		prev = chunk_alloc_area(c, bits, align_bits, next);
		if (prev < 0)
			fail("batch: find_next_fit gave %d but alloc_area failed", next);
		took(prev, bits, align_bits, pop_only);
	}
}

/* A drain: live area k and the live areas back to back after it (up to
 * 16) freed as one span. */
static void op_free_span(int k)
{
	int off = areas[k].off, end = off + areas[k].bits, n = 1;

	areas[k] = areas[--nareas];
	for (bool found = true; found && n < 16;) {
		found = false;
		for (int i = 0; i < nareas && !found; i++) {
			if (areas[i].off == end) {
				end += areas[i].bits;
				areas[i] = areas[--nareas];
				n++;
				found = true;
			}
		}
	}
	if (chunk_free_span(c, off, end - off, n) != end - off)
		fail("chunk_free_span(%d, %d, %d)", off, end - off, n);
	if (chunk_area_bits(c, off))
		fail("freed span at %d still live", off);
	model_set(off, end - off, false);
	n_frees += (unsigned long long)n;
}

static void free_area(int k)
{
	struct area a = areas[k];

	if (a.bits > 1 && chunk_area_bits(c, a.off + 1 + (int)((unsigned)a.off % (unsigned)(a.bits - 1))))
		fail("interior offset of %d+%d accepted", a.off, a.bits);
	if (chunk_area_bits(c, a.off) != a.bits)
		fail("chunk_area_bits(%d) = %d, want %d", a.off, chunk_area_bits(c, a.off), a.bits);
	if (chunk_free_area(c, a.off, a.bits) != a.bits)
		fail("chunk_free_area(%d, %d)", a.off, a.bits);
	if (chunk_area_bits(c, a.off))
		fail("freed area %d still live", a.off);
	model_set(a.off, a.bits, false);
	areas[k] = areas[--nareas];
	n_frees++;
}

/* chunk_free at any byte offset: frees exactly a live area's start. */
static void op_free_at(struct input *in)
{
	int off = (int)(get16(in) % (unsigned)(c->nr_bits * 4 + 8)) - 4;
	int k = -1, free_bytes = c->free_bytes;

	if (off >= 0 && off % 4 == 0)
		for (int i = 0; i < nareas; i++)
			if (areas[i].off == off / 4)
				k = i;
	int r = chunk_free(c, off);

	if (k < 0) {
		if (r != -1 || c->free_bytes != free_bytes)
			fail("chunk_free(%d) of no live area returned %d", off, r);
		return;
	}
	if (r != areas[k].bits * 4)
		fail("chunk_free(%d) returned %d, want %d", off, r, areas[k].bits * 4);
	model_set(areas[k].off, areas[k].bits, false);
	areas[k] = areas[--nareas];
	n_frees++;
}

static void op_populate(struct input *in)
{
	int p0 = (int)(get8(in) % (unsigned)c->nr_pages);
	unsigned v = get8(in);
	int p1 = p0 + 1 + (int)((v >> 1) % (unsigned)(c->nr_pages - p0));

	if (v & 1)
		chunk_mark_populated(c, p0, p1);
	else
		chunk_mark_depopulated(c, p0, p1);
}

static bool setup(struct input *in)
{
	static const int pages[] = { 256, 512, 1024, 4096 };
	unsigned h0 = get8(in), h1 = get8(in), h2 = get16(in);
	size_t page = (size_t)pages[h0 & 3];
	int nr_pages = 1 + (int)(h1 % (page == 4096 ? 16u : 64u));
	int bits = nr_pages * (int)(page / 4);
	size_t head = h0 & 4 ? 4 * ((h2 & 0xff) * (size_t)bits / 256 / 2) : 0;
	size_t tail = h0 & 8 ? 4 * ((h2 >> 8) * (size_t)bits / 256 / 2) : 0;

	c = chunk_create(nr_pages, page, head, tail);
	if (!c) {
		fprintf(stderr, "chunk_create(%d, %zu, %zu, %zu) failed\n", nr_pages, page, head, tail);
		abort();
	}
	used = calloc((size_t)bits / 64, sizeof(*used));
	areas = malloc(sizeof(*areas) * (size_t)bits);
	if (!used || !areas)
		abort();
	model_set(0, c->start_bits, true);
	model_set(c->end_bits, bits - c->end_bits, true);
	nareas = 0;
	if (h0 & 16)
		chunk_mark_populated(c, 0, nr_pages);
	return (h0 & 0x60) == 0x60;     /* verify after every operation, else every 8th */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	bool verify_all = setup(&in);
	static const char *const names[10] = {
		"find_fit+alloc_area", "find_fit+alloc_area", "chunk_alloc", "free", "free",
		"chunk_free at offset", "populate", "verify", "refill batch", "span free",
	};

	n_inputs++;
	check_state("chunk_create", true);
	for (unsigned long step = 0; in.n; step++) {
		unsigned op = get8(&in) % 10;

		switch (op) {
		case 0: case 1: op_alloc(&in, false); break;
		case 2: op_alloc(&in, true); break;
		case 3: case 4:
			if (nareas)
				free_area((int)(get16(&in) % (unsigned)nareas));
			break;
		case 5: op_free_at(&in); break;
		case 6: op_populate(&in); break;
		case 7: chunk_sync(c); break;
		case 8: op_batch(&in); break;
		default:
			if (nareas)
				op_free_span((int)(get16(&in) % (unsigned)nareas));
			break;
		}
		check_state(names[op], verify_all || op == 7 || step % 8 == 7);
		n_ops++;
	}
	while (nareas)
		free_area(nareas - 1);
	check_state("freeing everything", true);
	if (!chunk_is_empty(c) || c->chunk_md.contig != c->end_bits - c->start_bits)
		fail("drained chunk is not one free run");
	chunk_destroy(c);
	free(used);
	free(areas);
	return 0;
}

static void report(void)
{
	fprintf(stderr,
		"fuzz_chunk: %llu inputs, %llu operations, %llu allocations (%llu failed), %llu frees, "
		"%llu chunk_verify\n", n_inputs, n_ops, n_allocs, n_fails, n_frees, n_verifies);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	atexit(report);
	return 0;
}
