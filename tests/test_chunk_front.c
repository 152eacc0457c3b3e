/*
 * test_chunk_front.c - the in-chunk allocator's front path: a request that
 * fits at the front of the first free bit's block, whose only free run
 * starts there, is placed at the first free bit, in every shape of the
 * maps' words (inside one word, up to a word's end, whole words, spans),
 * over boundary words never written (the metadata starts out as 0xff
 * bytes) and over stale boundaries left by frees.  After every step
 * chunk_verify recomputes every hint from the maps, a plain array of used
 * bits checks that no two allocations overlap, and chunk_area_bits gives
 * back each live allocation's size.
 *
 * Usage: test_chunk_front [seed [steps]]   (defaults: random seed, 100000 steps)
 */
#include <string.h>

#include "check.h"
#include "chunk.h"

struct live {
	int off, bits;
};

struct state {
	struct chunk *c;
	void *meta;
	unsigned char *used;    /* one byte per bit of the chunk */
	struct live *lives;
	int nr_lives;
	unsigned long front_hits;
};

static void verify(struct state *s, const char *what)
{
	char msg[256];

	REQUIRE(chunk_verify(s->c, msg, sizeof(msg)) == 0, "%s: %s", what, msg);
}

/* A chunk on metadata that starts out as 0xff bytes, like reused memory. */
static void state_init(struct state *s, int pages, size_t page, size_t head, size_t tail)
{
	size_t bytes = chunk_meta_bytes(pages, page, head, tail);

	memset(s, 0, sizeof(*s));
	s->meta = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	REQUIRE(s->meta, "metadata");
	memset(s->meta, 0xff, bytes);
	s->c = chunk_create_in(s->meta, pages, page, head, tail);
	REQUIRE(s->c, "create %d x %zu", pages, page);
	chunk_mark_populated(s->c, 0, pages);
	s->used = calloc((size_t)s->c->nr_bits, 1);
	s->lives = calloc((size_t)s->c->nr_bits, sizeof(*s->lives));
	REQUIRE(s->used && s->lives, "model");
}

static void state_fini(struct state *s)
{
	chunk_destroy(s->c);
	free(s->meta);
	free(s->used);
	free(s->lives);
}

/* Would the front path (or an open run) take this request: the first free
 * bit's block has one free run, it starts there and holds the request, at
 * the alignment? */
static bool front_applies(const struct chunk *c, int bits, int align_bits)
{
	int ff = c->chunk_md.first_free;
	const struct block_md *md;

	if (ff >= c->nr_bits)
		return false;
	if (c->run_bits)        /* an open run: the only free run is the tail from ff */
		return c->chunk_md.contig >= bits && !(ff & (align_bits - 1));
	md = &c->md[ff >> c->block_shift];
	return md->free == md->contig && md->contig >= bits && !(ff & (align_bits - 1));
}

/* Allocate; -1 when the chunk says no.  Checks placement and the maps. */
static int do_alloc(struct state *s, int bits, int align_bits, bool pop_only, const char *what)
{
	struct chunk *c = s->c;
	int ff = c->chunk_md.first_free, front = front_applies(c, bits, align_bits), off;

	off = chunk_alloc(c, (size_t)bits * 4, (size_t)align_bits * 4, pop_only);
	if (front) {
		s->front_hits++;
		REQUIRE(off == ff * 4, "%s: %d bits at %d-bit alignment: front path at bit %d, got byte %d",
			what, bits, align_bits, ff, off);
	}
	if (off < 0)
		return -1;
	off /= 4;
	REQUIRE(off >= c->start_bits && off + bits <= c->end_bits && !(off & (align_bits - 1)),
		"%s: %d bits at bit %d", what, bits, off);
	for (int i = off; i < off + bits; i++) {
		REQUIRE(!s->used[i], "%s: bit %d given twice", what, i);
		s->used[i] = 1;
	}
	s->lives[s->nr_lives++] = (struct live){ off, bits };
	verify(s, what);
	/* the lock-free reader is not for open runs (their maps are not
	 * written yet); the pool never opens one */
	REQUIRE(chunk_area_bits(c, off) == bits &&
		(c->run_bits || chunk_area_bits_shared(c, off, bits) == bits),
		"%s: size of the allocation at %d: %d, shared %d, not %d", what, off,
		chunk_area_bits(c, off), chunk_area_bits_shared(c, off, bits), bits);
	return off;
}

static void do_free(struct state *s, int k, const char *what)
{
	struct live l = s->lives[k];

	REQUIRE(chunk_area_bits(s->c, l.off) == l.bits, "%s: size of %d before its free", what, l.off);
	REQUIRE(chunk_free(s->c, l.off * 4) == l.bits * 4, "%s: free of %d", what, l.off);
	memset(s->used + l.off, 0, (size_t)l.bits);
	s->lives[k] = s->lives[--s->nr_lives];
	verify(s, what);
}

/*
 * The shape of evaluation 2: the second half of every block taken by
 * objects (after a placeholder over the first half, freed), then objects
 * of the same size allocated in order fill the first halves; every one of
 * those goes to the first free bit.  Sizes cover every word shape.
 */
static void test_front_halves(void)
{
	static const int sizes[] = { 1, 3, 4, 16, 24, 64, 96, 128, 256 };
	static const size_t pages[] = { 256, 1024, 4096 };

	for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			int bits = sizes[k], half;
			struct state s;

			state_init(&s, 6, pages[p], 0, 0);
			half = s.c->block_bits / 2;
			if (bits > half) {
				state_fini(&s);
				continue;
			}
			int *hold = malloc(sizeof(int) * (size_t)s.c->nr_pages), n = 0;
			unsigned long hits;

			REQUIRE(hold, "placeholders");
			for (int b = 0; b < s.c->nr_pages; b++) {
				hold[b] = do_alloc(&s, half, s.c->block_bits, false, "placeholder");
				REQUIRE(hold[b] == b * s.c->block_bits, "placeholder of block %d at %d", b, hold[b]);
				for (int o = hold[b] + half; o + bits <= (b + 1) * s.c->block_bits; o += bits)
					REQUIRE(do_alloc(&s, bits, 1, false, "second half") == o,
						"block %d: %d bits at %d", b, bits, o);
			}
			for (int b = 0; b < s.c->nr_pages; b++)
				for (int i = 0; i < s.nr_lives; i++)
					if (s.lives[i].off == hold[b]) {
						do_free(&s, i, "placeholder");
						break;
					}
			hits = s.front_hits;
			while (do_alloc(&s, bits, 1, false, "first halves") >= 0)
				n++;
			CHECK(n >= s.c->nr_pages * (half / bits), "%zu B pages, %d bits: %d allocations after the "
			      "pre-fill", pages[p], bits, n);
			/* when bits divides the halves, every block has one run:
			 * the front path takes each allocation */
			if (!(half % bits))
				CHECK(s.front_hits - hits == (unsigned long)n,
				      "%zu B pages, %d bits: all %d by the front path", pages[p], bits, n);
			free(hold);
			state_fini(&s);
		}
	}
}

/*
 * Directed boundary-map shapes: an allocation up to the end of a word, a
 * span over unwritten words, and a reuse that straddles bound_clean (its
 * start before, its end in unwritten words), each read back by size.
 */
static void test_front_shapes(void)
{
	struct state s;
	int a, b;

	state_init(&s, 4, 1024, 0, 0);                   /* 256 bits per block */
	a = do_alloc(&s, 48, 1, false, "to bit 48");
	CHECK(a == 0, "first at 0");
	CHECK(do_alloc(&s, 16, 1, false, "to the word's end") == 48, "up to the end of word 0");
	CHECK(do_alloc(&s, 100, 1, false, "span") == 64, "a span from word 1");
	b = do_alloc(&s, 8, 1, false, "small");
	CHECK(b == 164, "after the span");
	do_free(&s, s.nr_lives - 1, "free the last");     /* bound_clean stays past it */
	CHECK(do_alloc(&s, 80, 1, false, "straddle") == 164, "a reuse straddling bound_clean");
	CHECK(do_alloc(&s, 12, 1, false, "fill") == 244, "the block's last bits");
	CHECK(s.c->chunk_md.first_free == 256, "first_free moves to the next block");
	CHECK(do_alloc(&s, 128, 64, false, "whole words") == 256, "whole words at a word boundary");
	CHECK(do_alloc(&s, 4, 64, false, "aligned") == 384, "64-bit alignment at the block's rest");
	state_fini(&s);
}

/*
 * Random sizes and alignments on chunks of several shapes (hidden heads
 * and tails too), allocating until a request fails, then a burst of
 * frees, so chunks fill in order (the front path) and refill
 * holes; whenever its conditions hold, the allocation
 * must land at the first free bit.
 */
static void test_front_random(unsigned long steps)
{
	static const struct { int pages; size_t page, head, tail; } shapes[] = {
		{ 4, 256, 0, 0 }, { 8, 1024, 0, 0 }, { 3, 4096, 1000, 2000 }, { 5, 256, 4, 96 },
		{ 16, 1024, 256, 0 },
	};
	unsigned long done = 0, hits = 0;

	while (done < steps) {
		for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]) && done < steps; k++) {
			struct state s;
			bool full = false;

			state_init(&s, shapes[k].pages, shapes[k].page, shapes[k].head, shapes[k].tail);
			for (int i = 0; i < 4 * s.c->nr_pages * 16 && done < steps; i++, done++) {
				if (full && s.nr_lives) {
					/* a burst of frees, at random (holes) or of the
					 * newest (a free tail again): stale boundaries */
					bool newest = rng_below(2);

					for (int n = 1 + (int)rng_below((uint64_t)s.nr_lives / 2 + 1); n-- && s.nr_lives;)
						do_free(&s, newest ? s.nr_lives - 1 : (int)rng_below((uint64_t)s.nr_lives),
							"burst free");
					full = false;
				} else {
					int bits = 1 + (int)rng_below(rng_below(3) ? 20 : (uint64_t)s.c->block_bits);
					int align = rng_below(4) ? 1 : 1 << rng_below(7);

					full = do_alloc(&s, bits, align, rng_below(8) == 0, "random alloc") < 0;
				}
			}
			while (s.nr_lives)
				do_free(&s, s.nr_lives - 1, "drain");
			CHECK(chunk_is_empty(s.c), "shape %zu drained", k);
			hits += s.front_hits;
			state_fini(&s);
		}
	}
	CHECK(hits > steps / 100, "the front path was taken (%lu of %lu steps)", hits, steps);
}

int main(int argc, char **argv)
{
	unsigned long steps = argc > 2 ? strtoul(argv[2], NULL, 0) : 100000;

	test_seed(argc, argv);
	test_front_halves();
	test_front_shapes();
	test_front_random(steps);
	TEST_DONE();
}
