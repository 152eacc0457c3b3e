/*
 * stats.c - observability of the whole allocator: pcpu_stats_get, the
 * kernel-style reports (pcpu_stats_print, pcpu_layout_print), pcpu_verify
 * (the pool's checker, pool_verify.c), and the environment switch
 * PCPU_STATS, which prints the report at exit.
 *
 * pcpu_stats_print collects everything under `lock` in one go (so the
 * numbers of one report agree with each other), then writes with no lock
 * held.  Per chunk it walks the allocation and boundary maps once: each
 * live allocation's size (its start bit in bound_map to the next set bit)
 * and each free fragment before the last allocation.  The size buffer is
 * allocated outside the lock and the collection retried if the chunks grew
 * meanwhile, as the kernel's percpu_stats does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitops.h"
#include "diag.h"
#include "pool_init.h"
#include "pool_verify.h"

static void fill_layout(struct pcpu_stats *st)
{
	const struct layout *l = pcpu_pool.layout;

	st->nr_units = (unsigned)l->nr_units;
	st->nr_groups = (unsigned)l->nr_groups;
	st->unit_size = l->unit_size;
	st->static_size = l->static_size;
	st->reserved_size = l->reserved_size;
	st->dyn_size = l->dyn_size;
	st->atom_size = l->atom_size;
	st->alloc_size = l->alloc_size;
	st->page_size = l->page_size;
}

/* The counters part of a snapshot; `lock` held. */
static void snapshot_locked(struct pcpu_stats *out)
{
	struct pool_census cen;
	uint64_t cur;

	*out = pcpu_pool.stats;
	out->nr_empty_pop_pages = (uint64_t)pcpu_pool.nr_empty_pop_pages;
	out->nr_populated_pages = (uint64_t)pcpu_pool.nr_populated;
	/* The caches' share (user allocations and frees they served). */
	pool_census(&cen, false);
	out->nr_alloc += cen.nr_alloc;
	out->nr_dealloc += cen.nr_dealloc;
	cur = out->nr_alloc - out->nr_dealloc;
	out->nr_cur_alloc = cur;
	if (cur > pcpu_pool.stats.nr_max_alloc)
		pcpu_pool.stats.nr_max_alloc = cur;
	out->nr_max_alloc = pcpu_pool.stats.nr_max_alloc;
	for (int b = 0; b < PCPU_SIZE_HIST_BUCKETS; b++)
		out->size_hist[b] += cen.size_hist[b];
	if (cen.min_alloc_size && (!out->min_alloc_size || cen.min_alloc_size < out->min_alloc_size))
		out->min_alloc_size = cen.min_alloc_size;
	if (cen.max_alloc_size > out->max_alloc_size)
		out->max_alloc_size = cen.max_alloc_size;
	out->nr_cached = cen.nr_cached;
	out->cached_bytes = cen.cached_bytes;
	out->cache_limit_bytes = cen.cache_limit_bytes;
	out->nr_cache_hits = cen.nr_cache_hits;
	out->nr_cache_refills = cen.nr_cache_refills;
	out->nr_cache_drains = cen.nr_cache_drains;
	out->nr_populate_calls = __atomic_load_n(&pcpu_pool.nr_populate_calls, __ATOMIC_RELAXED);
	out->nr_depopulate_calls = __atomic_load_n(&pcpu_pool.nr_depopulate_calls, __ATOMIC_RELAXED);
	out->nr_mprotect_calls = __atomic_load_n(&pcpu_pool.nr_mprotect_calls, __ATOMIC_RELAXED);
	out->decay_ms = pcpu_pool.decay_ms;
}

/* The 0.1 layout of struct pcpu_stats: every field up to size_hist. */
#define STATS_SIZE_0_1 PCPU_ALIGN_UP(offsetof(struct pcpu_stats, size_hist) + \
				     sizeof(((struct pcpu_stats *)0)->size_hist), \
				     _Alignof(struct pcpu_stats))

PCPU_PUBLIC int pcpu_stats_get_sized(struct pcpu_stats *out, size_t out_size)
{
	struct pcpu_stats st;

	if (!out || out_size < STATS_SIZE_0_1) {
		errno = EINVAL;
		return -1;
	}
	if (pool_ensure_init())
		return -1;
	pcpu_lock(&pcpu_pool.lock);
	snapshot_locked(&st);
	pcpu_unlock(&pcpu_pool.lock);
	fill_layout(&st);
	memcpy(out, &st, out_size < sizeof(st) ? out_size : sizeof(st));
	if (out_size > sizeof(st))
		memset((char *)out + sizeof(st), 0, out_size - sizeof(st));
	return 0;
}

PCPU_PUBLIC int (pcpu_stats_get)(struct pcpu_stats *out)
{
	return pcpu_stats_get_sized(out, STATS_SIZE_0_1);
}

PCPU_PUBLIC void pcpu_layout_print(FILE *out)
{
	if (!out || pool_ensure_init())
		return;
	layout_print(pcpu_pool.layout, out);
}

/* ---- the per-chunk part of the report ------------------------------------ */

struct chunk_row {
	char name[40];
	const char *state;
	int nr_alloc, nr_cached, empty_pop_pages, first_free_block, free_size, contig_hint;
	int nr_pages, nr_populated;
	size_t max_alloc_size;
	long sum_frag;
	int max_frag, cur_min_alloc, cur_med_alloc, cur_max_alloc;
};

/* The k-th smallest of v[0..n) (quickselect; v is reordered). */
static int kth_smallest(int *v, int n, int k)
{
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		int pivot = v[lo + (hi - lo) / 2], i = lo, j = hi;

		while (i <= j) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j) {
				int t = v[i];

				v[i++] = v[j];
				v[j--] = t;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			break;
	}
	return v[k];
}

static const char *chunk_state(const struct pcpu_chunk *ch)
{
	if (ch == pcpu_pool.reserved_chunk)
		return "reserved";
	if (ch->isolated)
		return "reclaim";
	if (ch->slot == pcpu_pool.sidelined_slot)
		return "sidelined";
	if (ch->slot == pcpu_pool.free_slot)
		return "free";
	if (ch->slot < 0)
		return "unlisted";      /* between the lists and destruction */
	return ch->slot == 0 ? "full" : "in_use";
}

/*
 * Fill r from ch, using sizes[0..cap) for the sizes of its live
 * allocations.  `lock` held.  Fragmentation counts the free runs between
 * the start of the chunk's usable area and the end of its last allocation,
 * as the kernel does: free space after the last allocation is not
 * fragmentation.
 */
static void collect_chunk(const struct pcpu_chunk *ch, int *sizes, int cap, struct chunk_row *r)
{
	const struct chunk *c = ch->map;
	int pos = c->start_bits, end = c->end_bits, n = 0, min = 0, max = 0;
	/* Allocations held in a cache are allocated in the maps but not live:
	 * counted apart (the reserved chunk's are all live or static blocks). */
	const unsigned long *live = ch == pcpu_pool.reserved_chunk ? NULL : pcpu_pool.live_maps[ch->index];

	r->state = chunk_state(ch);
	r->nr_alloc = 0;
	r->nr_cached = 0;
	r->max_alloc_size = ch->max_alloc_size;
	r->empty_pop_pages = c->nr_empty_pop_pages;
	r->first_free_block = c->chunk_md.first_free >> c->block_shift;
	r->free_size = c->free_bytes;
	r->contig_hint = chunk_contig_bytes(c);
	r->nr_pages = c->nr_pages;
	r->nr_populated = c->nr_populated;
	r->sum_frag = 0;
	r->max_frag = 0;

	while (pos < end) {
		int e, len;

		if (bit_test(c->alloc_map, (size_t)pos)) {
			e = (int)bitmap_next_set(c->bound_map, (size_t)end + 1, (size_t)pos + 1);
			if (e > end)
				e = end;
			len = (e - pos) * PCPU_MIN_ALLOC_BYTES;
			if (live && !bit_test_atomic(live, (size_t)pos)) {
				r->nr_cached++;
				pos = e;
				continue;
			}
			r->nr_alloc++;
			if (n < cap)
				sizes[n] = len;
			if (!n || len < min)
				min = len;
			if (len > max)
				max = len;
			n++;
		} else {
			e = (int)bitmap_next_set(c->alloc_map, (size_t)end, (size_t)pos);
			if (e >= end)
				break;
			len = (e - pos) * PCPU_MIN_ALLOC_BYTES;
			r->sum_frag += len;
			if (len > r->max_frag)
				r->max_frag = len;
		}
		pos = e;
	}
	r->cur_min_alloc = min;
	r->cur_max_alloc = max;
	n = n < cap ? n : cap;
	r->cur_med_alloc = n ? kth_smallest(sizes, n, (n - 1) / 2) : 0;
}

/* Chunks in report order: reserved, then the chunk table.  `lock` held. */
static int list_chunks(const struct pcpu_chunk **v, int cap, int *max_nr_alloc)
{
	int n = 0;

	*max_nr_alloc = 0;
	if (pcpu_pool.reserved_chunk) {
		if (n < cap)
			v[n] = pcpu_pool.reserved_chunk;
		n++;
		*max_nr_alloc = pcpu_pool.reserved_chunk->map->nr_alloc;
	}
	for (int i = 0; i < pcpu_pool.chunk_hiwater; i++) {
		const struct pcpu_chunk *ch = pcpu_pool.chunk_table[i];

		if (!ch)
			continue;
		if (n < cap)
			v[n] = ch;
		n++;
		if (ch->map->nr_alloc > *max_nr_alloc)
			*max_nr_alloc = ch->map->nr_alloc;
	}
	return n;
}

static void print_chunk(FILE *out, const struct chunk_row *r)
{
#define P(f) fprintf(out, "  %-22s: %12lld\n", #f, (long long)r->f)
	fprintf(out, "Chunk: %s\n", r->name);
	P(nr_alloc); P(nr_cached); P(max_alloc_size); P(empty_pop_pages); P(first_free_block);
	P(free_size); P(contig_hint); P(sum_frag); P(max_frag);
	P(cur_min_alloc); P(cur_med_alloc); P(cur_max_alloc);
	P(nr_pages); P(nr_populated);
#undef P
	fprintf(out, "  %-22s: %12s\n", "state", r->state);
	fputc('\n', out);
}

static void print_size_hist(FILE *out, const struct pcpu_stats *st)
{
	int lo = -1, hi = -1;

	fprintf(out, "Allocation Sizes:\n");
	fprintf(out, "----------------------------------------\n");
	for (int b = 0; b < PCPU_SIZE_HIST_BUCKETS; b++) {
		if (!st->size_hist[b])
			continue;
		if (lo < 0)
			lo = b;
		hi = b;
	}
	for (int b = lo; lo >= 0 && b <= hi; b++) {
		char label[48];

		snprintf(label, sizeof(label), "%llu-%llu", 1ULL << b, (2ULL << b) - 1);
		fprintf(out, "  %-22s: %12llu\n", label, (unsigned long long)st->size_hist[b]);
	}
	fputc('\n', out);
}

PCPU_PUBLIC void pcpu_stats_print(FILE *out)
{
	const struct pcpu_chunk **chunks = NULL;
	struct chunk_row *rows = NULL;
	struct pcpu_stats st;
	int *sizes = NULL, nr_rows = 0, cap_rows = 0, cap_sizes = 0;

	if (!out || pool_ensure_init())
		return;
	/* Size the buffers outside the lock; retry if the chunks outgrew them. */
	for (;;) {
		int max_nr_alloc, n;

		pcpu_lock(&pcpu_pool.lock);
		n = list_chunks(chunks, cap_rows, &max_nr_alloc);
		if (n <= cap_rows && max_nr_alloc <= cap_sizes)
			break;
		pcpu_unlock(&pcpu_pool.lock);
		free(chunks);
		free(rows);
		free(sizes);
		cap_rows = n + 4;
		cap_sizes = max_nr_alloc + max_nr_alloc / 4 + 64;
		chunks = calloc((size_t)cap_rows, sizeof(*chunks));
		rows = calloc((size_t)cap_rows, sizeof(*rows));
		sizes = malloc((size_t)cap_sizes * sizeof(*sizes));
		if (!chunks || !rows || !sizes) {
			free(chunks);
			free(rows);
			free(sizes);
			fprintf(out, "Percpu Memory Statistics: out of memory\n");
			return;
		}
	}
	/* `lock` held: one consistent snapshot. */
	nr_rows = list_chunks(chunks, cap_rows, &(int){ 0 });
	for (int i = 0; i < nr_rows; i++) {
		const struct pcpu_chunk *ch = chunks[i];

		collect_chunk(ch, sizes, cap_sizes, &rows[i]);
		if (ch == pcpu_pool.reserved_chunk)
			snprintf(rows[i].name, sizeof(rows[i].name), "<- Reserved Chunk");
		else if (ch == pcpu_pool.first_chunk)
			snprintf(rows[i].name, sizeof(rows[i].name), "%d <- First Chunk", ch->index);
		else
			snprintf(rows[i].name, sizeof(rows[i].name), "%d", ch->index);
	}
	snapshot_locked(&st);
	pcpu_unlock(&pcpu_pool.lock);
	fill_layout(&st);

	fprintf(out, "Percpu Memory Statistics\n");
	fprintf(out, "Allocation Info:\n");
	fprintf(out, "----------------------------------------\n");
#define L(f) fprintf(out, "  %-22s: %12llu\n", #f, (unsigned long long)st.f)
	L(unit_size); L(static_size); L(reserved_size); L(dyn_size); L(atom_size);
	L(alloc_size); L(page_size); L(nr_units); L(nr_groups);
	fputc('\n', out);
	fprintf(out, "Global Stats:\n");
	fprintf(out, "----------------------------------------\n");
	L(nr_alloc); L(nr_dealloc); L(nr_cur_alloc); L(nr_max_alloc); L(nr_alloc_fail);
	L(nr_atomic_fail); L(nr_chunks); L(nr_max_chunks); L(min_alloc_size); L(max_alloc_size);
	L(nr_empty_pop_pages); L(nr_populated_pages); L(nr_chunks_created); L(nr_chunks_destroyed);
	L(nr_pages_populated); L(nr_pages_depopulated); L(nr_balance_passes);
	L(nr_balance_populated); L(nr_balance_depopulated);
	L(nr_cached); L(cached_bytes); L(cache_limit_bytes); L(nr_cache_hits); L(nr_cache_refills);
	L(nr_cache_drains);
	L(nr_populate_calls); L(nr_depopulate_calls); L(nr_mprotect_calls); L(balance_ns);
	L(nr_alloc_prezeroed);
	fprintf(out, "  %-22s: %12lld\n", "decay_ms", (long long)st.decay_ms);
#undef L
	fputc('\n', out);
	print_size_hist(out, &st);
	fprintf(out, "Per Chunk Stats:\n");
	fprintf(out, "----------------------------------------\n");
	for (int i = 0; i < nr_rows; i++)
		print_chunk(out, &rows[i]);
	fflush(out);
	free(chunks);
	free(rows);
	free(sizes);
}

PCPU_PUBLIC int pcpu_verify(void)
{
	if (pool_ensure_init())
		return -1;
	return pool_verify();
}

/* ---- PCPU_STATS: the report at exit ---------------------------------------- */

/* PCPU_STATS: on or off, and the path template (NULL: stderr). */
static char *stats_path;
static bool stats_on;

/* Expand "%p" to the process id; other characters are copied. */
static void expand_path(const char *tmpl, char *buf, size_t len)
{
	size_t n = 0;

	for (const char *t = tmpl; *t && n + 1 < len; t++) {
		if (t[0] == '%' && t[1] == 'p') {
			int w = snprintf(buf + n, len - n, "%ld", (long)getpid());

			n += w > 0 ? (size_t)w : 0;
			if (n >= len)
				n = len - 1;
			t++;
			continue;
		}
		buf[n++] = *t;
	}
	buf[n] = '\0';
}

/*
 * Open the report file for appending: created 0600 if missing, never
 * through a symbolic link, and only if it is a regular file.  O_NONBLOCK
 * keeps the open of a FIFO with no reader (or of a device) from waiting.
 * NULL after one line on stderr.
 */
static FILE *open_report(const char *path)
{
	struct stat st;
	const char *why;
	FILE *f;
	int fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
		  0600);
	if (fd < 0) {
		why = errno == ELOOP ? "a symbolic link" :
		      errno == EISDIR || errno == ENXIO ? "not a regular file" : strerror(errno);
		goto fail;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		why = "not a regular file";
		goto fail;
	}
	(void)fcntl(fd, F_SETFL, O_APPEND);        /* blocking writes again */
	f = fdopen(fd, "a");
	if (f)
		return f;
	why = strerror(errno);
	close(fd);
fail:
	fprintf(stderr, "libpercpu: PCPU_STATS: cannot write the report to %s: %s\n", path, why);
	return NULL;
}

static void stats_at_exit(void)
{
	char path[4096];
	FILE *out = stderr;

	if (!stats_on)
		return;
	if (stats_path) {
		expand_path(stats_path, path, sizeof(path));
		out = open_report(path);
		if (!out)
			return;
	}
	fprintf(out, "libpercpu: statistics of process %ld at exit\n", (long)getpid());
	pcpu_stats_print(out);
	if (out != stderr)
		fclose(out);
	else
		fflush(out);
}

/* Pool client: read PCPU_STATS once the allocator is ready. */
static void stats_ready(void)
{
	static bool registered;
	const char *v = pcpu_getenv("PCPU_STATS");

	if (!v || strcmp(v, "0") == 0)
		return;
	free(stats_path);
	stats_path = strcmp(v, "1") == 0 ? NULL : strdup(v);
	stats_on = true;
	if (!registered && atexit(stats_at_exit) == 0)
		registered = true;
}

static struct pool_client stats_client = {
	.ready = stats_ready,
	.report = pcpu_stats_print,
};

__attribute__((constructor(101))) static void stats_register(void)
{
	pool_add_client(&stats_client);
}
