/*
 * chunk_hints.c - the run tree over a chunk's blocks and the chunk-wide
 * hints it backs (see chunk_hints.h).  Pure logic on chunk metadata.
 */
#include "chunk_hints.h"

/* ---- the run tree ---------------------------------------------------- */

/*
 * Combine two children, each covering w bits, into their parent; the right
 * child starts at bit rstart.  Leaves past the last block are padding: a
 * right child made only of padding is ignored, one partly made of it counts
 * its real length.  Ties keep the leftmost run.  Returns whether the parent
 * changed.
 */
static inline bool tree_combine(const struct chunk *c, struct run_node *out, const struct run_node *l,
				const struct run_node *r, int w, int rstart)
{
	int rlen = c->nr_bits - rstart;
	struct run_node n = *l;

	if (rlen > 0) {
		int mid = l->suf + r->pre;

		if (rlen > w)
			rlen = w;
		if (n.pre == w)
			n.pre += r->pre;
		n.suf = r->suf == rlen ? rlen + l->suf : r->suf;
		if (mid > n.best) {
			n.best = mid;
			n.best_start = rstart - l->suf;
		}
		if (r->best > n.best) {
			n.best = r->best;
			n.best_start = r->best_start;
		}
	}
	if (n.pre == out->pre && n.suf == out->suf && n.best == out->best &&
	    n.best_start == out->best_start)
		return false;
	*out = n;
	return true;
}

/* chunk_md's contig and edge runs, read from the tree's root. */
static void chunk_md_from_root(struct chunk *c)
{
	c->chunk_md.contig = c->tree[1].best;
	c->chunk_md.contig_start = c->tree[1].best ? c->tree[1].best_start : 0;
	c->chunk_md.left_free = c->tree[1].pre;
	c->chunk_md.right_free = c->tree[1].suf;
}

/* Build the whole tree bottom up from the block hints: one combine per inner node. */
void chunk_tree_build(struct chunk *c)
{
	int total = c->tree_leaves << c->block_shift;

	for (int b = 0; b < c->nr_pages; b++) {
		const struct block_md *md = &c->md[b];

		c->tree[c->tree_leaves + b] = (struct run_node){
			md->left_free, md->right_free, md->contig, (b << c->block_shift) + md->contig_start };
	}
	for (int b = c->nr_pages; b < c->tree_leaves; b++)
		c->tree[c->tree_leaves + b] = (struct run_node){ 0 };     /* padding */
	c->tree[0] = (struct run_node){ 0 };
	for (int i = c->tree_leaves - 1, w = c->block_bits; i >= 1; i--) {
		if (i < c->tree_leaves && (i & (i + 1)) == 0 && i != c->tree_leaves - 1)
			w *= 2;     /* i = 2^k - 1: the level above starts here */
		c->tree[i].pre = -1;
		tree_combine(c, &c->tree[i], &c->tree[2 * i], &c->tree[2 * i + 1], w,
			     (2 * i + 1) * w - total);
	}
	chunk_md_from_root(c);
}

/*
 * Bring the tree up to date: re-summarise every dirty leaf and walk its
 * path towards the root, stopping where a node comes out unchanged.  Node
 * j of a level of N nodes covers w = total / N bits starting at
 * j * w - total (total = tree_leaves * block_bits).  Then chunk_md's
 * contig and edge runs are read from the root.
 */
void chunk_tree_flush(struct chunk *c)
{
	int total = c->tree_leaves << c->block_shift;
	size_t b = 0;

	if (!c->tree_built) {
		/* First use of a chunk created with nothing in use: build it all. */
		bitmap_clear_range(c->dirty, 0, (size_t)c->nr_pages);
		c->tree_built = true;
		chunk_tree_build(c);
		return;
	}
	while ((b = bitmap_next_set(c->dirty, (size_t)c->nr_pages, b)) < (size_t)c->nr_pages) {
		const struct block_md *md = &c->md[b];
		int i = c->tree_leaves + (int)b;

		bit_clear(c->dirty, b);
		c->tree[i] = (struct run_node){ md->left_free, md->right_free, md->contig,
						((int)b << c->block_shift) + md->contig_start };
		for (int w = c->block_bits; i > 1; i >>= 1, w *= 2) {
			int p = i >> 1;

			if (!tree_combine(c, &c->tree[p], &c->tree[2 * p], &c->tree[2 * p + 1], w,
					  (2 * p + 1) * w - total))
				break;
		}
		b++;
	}
	chunk_md_from_root(c);
}

#define TIE_SEARCH_BLOCKS 8       /* blocks chunk_hints_alloc looks at before the tree */

/*
 * Chunk hints after allocating [off, off + bits) (free_bytes already
 * counts it).  Runs only shrink, so the longest run is unchanged unless the
 * allocation cut it; when it cut the chunk's only free run, the longer of
 * the pieces left is the answer; when a block close by has a run as long as
 * the one cut, that run is.  Otherwise the tree decides.
 */
void chunk_hints_alloc(struct chunk *c, int off, int bits)
{
	struct block_md *cm = &c->chunk_md;
	int end = off + bits;

	if (off < cm->left_free)
		cm->left_free = off;
	if (end > c->nr_bits - cm->right_free)
		cm->right_free = c->nr_bits - end;
	if (!cm->contig || off >= cm->contig_start + cm->contig || end <= cm->contig_start)
		return;
	if (c->free_bytes / PCPU_MIN_ALLOC_BYTES + bits == cm->contig) {
		/* The run cut was the only free run: its pieces are all that is free. */
		int lo = off - cm->contig_start, hi = cm->contig_start + cm->contig - end;

		cm->contig = lo >= hi ? lo : hi;
		cm->contig_start = !cm->contig ? 0 : lo >= hi ? cm->contig_start : end;
		return;
	}
	/* Another run as long as the one cut keeps the longest length: look
	 * for one among the contig hints of a few blocks from here on.  A
	 * block run of that length is a whole free run (a longer one would
	 * be longer than the chunk's longest was). */
	for (int b = off >> c->block_shift, n = 0; b < c->nr_pages && n < TIE_SEARCH_BLOCKS; b++, n++) {
		if (c->md[b].contig == cm->contig) {
			cm->contig_start = (b << c->block_shift) + c->md[b].contig_start;
			return;
		}
	}
	chunk_tree_flush(c);
}

/*
 * Chunk hints after a free merged into the run whose part in the first
 * block starts at block offset `start` of block sb and whose part in the
 * last block ends at `end` of block eb.  The run's chunk-wide ends are
 * known when it stops inside those blocks or inside their neighbours, or
 * when it joins the chunk's leading or trailing run; then the run's length
 * updates the hints in O(1).  Otherwise (a fully free neighbour block in
 * the middle of the chunk) the tree decides.
 */
void chunk_hints_free(struct chunk *c, int sb, int start, int eb, int end)
{
	struct block_md *cm = &c->chunk_md;
	int lo, hi;

	if (start > 0)
		lo = (sb << c->block_shift) + start;
	else if (sb == 0 || cm->left_free >= sb << c->block_shift)
		lo = 0;
	else if (c->md[sb - 1].right_free < c->block_bits)
		lo = (sb << c->block_shift) - c->md[sb - 1].right_free;
	else
		return chunk_tree_flush(c);
	if (end < c->block_bits)
		hi = (eb << c->block_shift) + end;
	else if (eb + 1 == c->nr_pages || c->nr_bits - cm->right_free <= (eb + 1) << c->block_shift)
		hi = c->nr_bits;
	else if (c->md[eb + 1].left_free < c->block_bits)
		hi = ((eb + 1) << c->block_shift) + c->md[eb + 1].left_free;
	else
		return chunk_tree_flush(c);

	if (lo == 0)
		cm->left_free = hi;
	if (hi == c->nr_bits)
		cm->right_free = hi - lo;
	if (hi - lo > cm->contig) {
		cm->contig = hi - lo;
		cm->contig_start = lo;
	}
}

/* What inner node i (1 <= i < tree_leaves) should hold, from its children. */
struct run_node chunk_tree_expected(const struct chunk *c, int i)
{
	int level_nodes = 1, w;
	struct run_node out = c->tree[i];

	while (level_nodes * 2 <= i)
		level_nodes *= 2;
	w = (c->tree_leaves / level_nodes / 2) << c->block_shift;   /* child width */
	out.pre = -1;                                                 /* force a write */
	tree_combine(c, &out, &c->tree[2 * i], &c->tree[2 * i + 1], w,
		     (2 * i + 1) * w - (c->tree_leaves << c->block_shift));
	return out;
}
