/*
 * block.h - hint metadata for one block of an allocation bitmap.
 *
 * A chunk's allocation map is cut into blocks of one page's worth of bits
 * (page_size / PCPU_MIN_ALLOC_SIZE).  Each block carries hints that let the
 * allocator decide where to look without reading the bitmap.  This file is
 * pure logic over one block: no chunk, no OS.
 *
 * Invariants of a block (bits are "free" when clear in the allocation map;
 * a "run" is a maximal range of free bits inside the block):
 *   first_free  index of the first free bit, nr_bits if the block is full;
 *   left_free   length of the run starting at bit 0 (0 if bit 0 is used);
 *   right_free  length of the run ending at nr_bits (0 if the last bit is used);
 *   contig      length of the longest run; contig_start is the start of a run
 *               of exactly that length (0 / 0 when the block is full);
 *   scan        0, or the length of a run starting at scan_start that ends
 *               before contig_start, such that no run starting before
 *               scan_start is longer than scan.  A search for more than scan
 *               bits may therefore start at scan_start + scan;
 *   free        the number of free bits (free == contig: one run, or none).
 * All of these are exact after every allocation and every free.
 */
#ifndef PCPU_BLOCK_H
#define PCPU_BLOCK_H

struct block_md {
	int contig;
	int contig_start;
	int scan;
	int scan_start;
	int left_free;
	int right_free;
	int first_free;
	int free;
	int nr_bits;
};

/* A block with no bit in use. */
void block_init_empty(struct block_md *md, int nr_bits);
/* A block with every bit in use. */
void block_init_full(struct block_md *md, int nr_bits);

/*
 * The block's only free run is its longest (contig) and loses its first
 * `bits` bits, fewer than it has: the run start moves, every hint stays
 * exact in O(1) (the bump path).
 */
static inline void block_take_front(struct block_md *md, int bits)
{
	md->contig -= bits;
	md->free -= bits;
	md->contig_start += bits;
	md->first_free += bits;
	md->left_free = 0;
	if (md->right_free)
		md->right_free = md->contig;
}

/*
 * Record that [start, end) is a maximal run (both neighbours used or block
 * edges) that is new or has grown: used on the free path and while
 * rebuilding hints.  Runs not passed keep their previous status; `free` is
 * the caller's to count.
 */
void block_note_run(struct block_md *md, int start, int end);

/*
 * Update hints after bits [start, end) of this block were allocated, where
 * the allocation map (map, covering this block only) already has them set.
 * O(1) when the block had one free run; otherwise rescans at most this
 * block's bits, and only when the contig run broke.
 */
void block_note_alloc(struct block_md *md, const unsigned long *map, int start, int end);

/* Rebuild every hint of the block from its bitmap (used by verify, init). */
void block_rebuild(struct block_md *md, const unsigned long *map);

/*
 * Compare hints against the bitmap.  Returns 0 when they hold, else -1
 * with a description of the first broken invariant written to msg.
 */
int block_check(const struct block_md *md, const unsigned long *map, char *msg, size_t msglen);

#endif
