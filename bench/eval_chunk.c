/*
 * eval_chunk.c - evaluations 1 to 3, at chunk level: the area map
 * and the bitmap chunk, each under the same driver (inchunk.h), so the
 * ratios isolate the in-chunk allocator.
 *
 *   eval1  N objects of 4..1024 B allocated, then freed in order,
 *          alternating (even indices, then odd) and in reverse; worst
 *          alloc and worst free time over the three orders.
 *   eval2  the second half of every page pre-filled, then N objects,
 *          freed in order.
 *   eval3  N objects of 4 B at 8 B alignment; the area map is run at the
 *          largest N (doubling from 2^12) that finishes within --cap-sec.
 *
 * Each measurement uses a fresh driver on pre-faulted chunk memory (see
 * driver_pool_prepare); the two allocators take turns going first inside
 * every repetition so machine noise hits both alike, and every figure is
 * the median of the runs with its spread (figures.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "inchunk.h"

#define NR_ALLOCS 2
#define NR_SIZES  5
#define OBJ_ALIGN 4             /* evals 1 and 2: the minimum alignment */

static const struct inchunk_ops *const allocs[NR_ALLOCS] = {
	&inchunk_areamap_ops, &inchunk_bitmap_ops,
};
static const long sizes[NR_SIZES] = { 4, 16, 64, 256, 1024 };

/* The seed's published worst-case figures (ms): commit message and thread. */
static const struct bench_row seed1_area[NR_SIZES] = {
	{ 4, 310, 4770 }, { 16, 557, 1325 }, { 64, 436, 273 }, { 256, 776, 131 }, { 1024, 3280, 122 },
};
static const struct bench_row seed1_bitmap[NR_SIZES] = {
	{ 4, 490, 70 }, { 16, 515, 75 }, { 64, 610, 80 }, { 256, 950, 100 }, { 1024, 3520, 200 },
};
static const struct bench_row seed2_area[NR_SIZES] = {
	{ 4, 4118, 4892 }, { 16, 1651, 1163 }, { 64, 598, 285 }, { 256, 771, 158 }, { 1024, 3034, 160 },
};
static const struct bench_row seed2_bitmap[NR_SIZES] = {
	{ 4, 481, 67 }, { 16, 506, 69 }, { 64, 636, 75 }, { 256, 892, 90 }, { 1024, 3262, 147 },
};
#define SEED3_AREA_MS   (52.0 * 60 * 1000)      /* "52 minutes" */
#define SEED3_BITMAP_MS (16.0 * 1000)           /* "approximately 16 seconds" */

enum free_order { FREE_IN_ORDER, FREE_ALTERNATING, FREE_REVERSE, NR_ORDERS };
static const char *const order_names[NR_ORDERS] = { "in-order", "alternating", "reverse" };

static long *handles;           /* one per object of the current measurement */

/* --sizes: is this object size selected? */
static bool size_on(long size)
{
	const char *p = bench_opts.sizes;

	if (!p)
		return true;
	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			return false;           /* malformed: nothing more matches */
		if (v == size)
			return true;
		for (p = end; *p == ',' || *p == 'B' || *p == ' '; p++)
			;
	}
	return false;
}

struct measure {
	double alloc_ms;
	double free_ms;         /* < 0 when the free phase did not run */
	bool capped;            /* the alloc phase hit the time cap */
	int chunks;
	int sidelined;
};

static struct driver_cfg driver_config(bool sideline)
{
	return (struct driver_cfg){
		.unit_bytes = bench_opts.unit_kb * 1024,
		.page_size = bench_opts.page_size,
		.nr_units = bench_opts.nr_cpus,
		.sideline = sideline,
	};
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/*
 * Fill the region pool for a measurement of n objects taking `bytes` each
 * (untimed), so that the timed phases run on resident memory.
 */
static int prepare_memory(long n, long bytes)
{
	struct driver_cfg cfg = driver_config(true);
	long unit = cfg.unit_bytes, regions = (n * bytes + unit - 1) / unit + 2;

	if (bench_opts.no_pool)
		return 0;
	bench_progress("preparing %ld MiB of chunk memory", regions * unit * cfg.nr_units >> 20);
	if (driver_pool_prepare(&cfg, regions)) {
		printf("  cannot pre-fault %ld chunks of memory\n", regions);
		return -1;
	}
	return 0;
}

/* --check: live objects must not overlap and every chunk must verify. */
static int check_live(struct driver *d, long n, long size, const char *who)
{
	char msg[256];
	long *sorted = malloc(sizeof(*sorted) * (size_t)n);

	if (!sorted)
		return 0;
	memcpy(sorted, handles, sizeof(*sorted) * (size_t)n);
	qsort(sorted, (size_t)n, sizeof(*sorted), cmp_long);
	for (long i = 1; i < n; i++) {
		if (sorted[i - 1] + size > sorted[i]) {
			printf("  CHECK FAILED (%s): objects at handles %ld and %ld overlap (size %ld)\n",
			       who, sorted[i - 1], sorted[i], size);
			free(sorted);
			return -1;
		}
	}
	free(sorted);
	if (driver_verify(d, msg, sizeof(msg))) {
		printf("  CHECK FAILED (%s): %s\n", who, msg);
		return -1;
	}
	return 0;
}

/*
 * Pre-fill for eval2: enough chunks that N objects of `size` exactly fill
 * the first halves of their pages, each with the second half of every
 * page taken by objects of the same size.  Per page: one half-page
 * placeholder, then the second half in `size` objects, all placed in
 * order in a fresh chunk (checked); then the placeholders are freed.
 * Returns the bytes left allocated, or -1.
 */
static long prefill(struct driver *d, long n, long size, const char *who)
{
	int unit = bench_opts.unit_kb * 1024, page = bench_opts.page_size, half = page / 2;
	int pages = unit / page;
	long nchunks = (n * size + (unit / 2) - 1) / (unit / 2), used = 0;
	long *hold = malloc(sizeof(*hold) * (size_t)pages);

	if (!hold || size > half || half % size) {
		printf("  prefill: object size %ld does not tile half a page (%d B)\n", size, half);
		free(hold);
		return -1;
	}
	for (long ci = 0; ci < nchunks; ci++) {
		struct drv_chunk *c = driver_new_chunk(d);

		if (!c) {
			printf("  prefill (%s): cannot create chunk %ld\n", who, ci);
			free(hold);
			return -1;
		}
		for (int p = 0; p < pages; p++) {
			long base = ci * unit + (long)p * page;

			hold[p] = driver_alloc_in(d, c, (size_t)half, OBJ_ALIGN);
			if (hold[p] != base) {
				printf("  prefill (%s): placeholder for page %d landed at %ld, not %ld\n",
				       who, p, hold[p] - ci * unit, base - ci * unit);
				free(hold);
				return -1;
			}
			for (long off = half; off < page; off += size) {
				long h = driver_alloc_in(d, c, (size_t)size, OBJ_ALIGN);

				if (h != base + off) {
					printf("  prefill (%s): object landed at %ld, not %ld\n", who,
					       h - ci * unit, base + off - ci * unit);
					free(hold);
					return -1;
				}
				used += size;
			}
		}
		for (int p = 0; p < pages; p++)
			driver_free(d, hold[p]);
	}
	free(hold);
	return used;
}

/*
 * One measurement on a fresh driver: (pre-fill,) allocate n objects, then
 * free them in `order`.  cap_ms > 0 stops the alloc phase once it runs
 * longer (checked every 256 allocations; the free phase is then skipped).
 */
static int measure(const struct inchunk_ops *ops, bool sideline, long n, long size, long align,
		   enum free_order order, bool prefilled, double cap_ms, struct measure *m)
{
	struct driver_cfg cfg = driver_config(sideline);
	struct driver *d = driver_create(ops, &cfg);
	long left = 0;
	double t0;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	m->free_ms = -1;
	if (!d) {
		printf("  cannot create the driver (unit %d KiB)\n", bench_opts.unit_kb);
		return -1;
	}
	if (prefilled && (left = prefill(d, n, size, ops->name)) < 0)
		goto out;

	t0 = bench_now_ms();
	for (long i = 0; i < n; i++) {
		long h = driver_alloc(d, (size_t)size, (size_t)align);

		if (h < 0) {
			printf("  %s: allocation %ld of %ld B failed\n", ops->name, i, size);
			goto out;
		}
		handles[i] = h;
		if (cap_ms > 0 && (i & 255) == 255 && bench_now_ms() - t0 > cap_ms) {
			m->alloc_ms = bench_now_ms() - t0;
			m->capped = true;
			m->chunks = driver_nr_chunks(d);
			m->sidelined = driver_nr_sidelined(d);
			rc = 0;
			goto out;
		}
	}
	m->alloc_ms = bench_now_ms() - t0;
	m->chunks = driver_nr_chunks(d);
	m->sidelined = driver_nr_sidelined(d);
	if (bench_opts.check && check_live(d, n, size, ops->name))
		goto out;

	t0 = bench_now_ms();
	switch (order) {
	case FREE_IN_ORDER:
		for (long i = 0; i < n; i++)
			if (driver_free(d, handles[i]) < 0)
				goto bad_free;
		break;
	case FREE_ALTERNATING:
		for (long i = 0; i < n; i += 2)
			if (driver_free(d, handles[i]) < 0)
				goto bad_free;
		for (long i = 1; i < n; i += 2)
			if (driver_free(d, handles[i]) < 0)
				goto bad_free;
		break;
	default:
		for (long i = n; i-- > 0;)
			if (driver_free(d, handles[i]) < 0)
				goto bad_free;
		break;
	}
	m->free_ms = bench_now_ms() - t0;
	if (driver_used_bytes(d) != left) {
		printf("  %s: %ld bytes still allocated after freeing everything (expected %ld)\n",
		       ops->name, driver_used_bytes(d), left);
		goto out;
	}
	if (bench_opts.check && driver_verify(d, (char[256]){ 0 }, 256)) {
		printf("  CHECK FAILED (%s): a chunk does not verify after the frees\n", ops->name);
		goto out;
	}
	rc = 0;
	goto out;
bad_free:
	printf("  %s: free of a live handle was refused (%s order)\n", ops->name, order_names[order]);
out:
	driver_destroy(d);
	return rc;
}

static int ensure_handles(long n)
{
	static long cap;

	if (n <= cap)
		return 0;
	free(handles);
	handles = malloc(sizeof(*handles) * (size_t)n);
	if (!handles) {
		cap = 0;
		printf("  out of memory for %ld handles\n", n);
		return -1;
	}
	cap = n;
	return 0;
}

/* CSV rows for one measurement. */
static void record(const char *eval, const char *alloc, const char *scase, long size, long align,
		   long n, int run, const struct measure *m)
{
	char note[96];

	snprintf(note, sizeof(note), "chunks=%d sidelined=%d%s", m->chunks, m->sidelined,
		 m->capped ? " capped" : "");
	bench_csv(eval, alloc, scase, size, align, n, run, "alloc", m->capped ? -m->alloc_ms : m->alloc_ms,
		  note);
	if (m->free_ms >= 0)
		bench_csv(eval, alloc, scase, size, align, n, run, "free", m->free_ms, note);
}

/*
 * The figures of one object size in evals 1 and 2, over every run.  The
 * alloc phase is the same whatever the free order, so its figure pools
 * the runs of every order; the free figure is the worst order's (by
 * median).  Ratios pair the two allocators' measurements of the same run
 * and order, which ran back to back.
 */
struct size_figures {
	long size;
	bool ran;
	struct bench_stat alloc[NR_ALLOCS], free[NR_ALLOCS];
	int worst_order[NR_ALLOCS];
	struct bench_stat alloc_ratio;  /* area map / bitmap */
	struct bench_stat free_ratio;   /* area map's worst order / bitmap's worst order */
	struct bench_stat t3;           /* bitmap / area map, alloc */
};

/*
 * Evals 1 and 2: every size, `norders` free orders, bench_opts.runs
 * repetitions, the two allocators taking turns going first.
 */
static int run_sizes(const char *eval, bool prefilled, int norders, struct size_figures *fig)
{
	int runs = bench_opts.runs;
	long n = bench_opts.n;
	size_t cells = (size_t)(NR_ALLOCS * NR_ORDERS * runs);
	double *al = malloc(sizeof(double) * cells), *fr = malloc(sizeof(double) * cells);
	int rc = -1;

	if (!al || !fr || ensure_handles(n))
		goto out;
#define IDX(a, o, r) (((a) * NR_ORDERS + (o)) * runs + (r))
	for (int s = 0; s < NR_SIZES; s++) {
		struct size_figures *f = &fig[s];

		memset(f, 0, sizeof(*f));
		f->size = sizes[s];
		if (!size_on(sizes[s]))
			continue;
		if (prepare_memory(n, prefilled ? 2 * sizes[s] : sizes[s]))
			goto out;
		for (int r = 0; r < runs; r++) {
			for (int o = 0; o < norders; o++) {
				/* take turns going first: no allocator inherits a warmer machine */
				for (int k = 0; k < NR_ALLOCS; k++) {
					int a = (k + r + o) % NR_ALLOCS;
					struct measure m;
					const char *scase = prefilled ? "half-filled,in-order" : order_names[o];

					bench_progress("%s: %4ldB  run %d/%d  %-11s %-7s", eval, sizes[s],
						       r + 1, runs, order_names[o], allocs[a]->name);
					if (measure(allocs[a], true, n, sizes[s], OBJ_ALIGN, o, prefilled, 0,
						    &m))
						goto out;
					record(eval, allocs[a]->name, scase, sizes[s], OBJ_ALIGN, n, r + 1, &m);
					al[IDX(a, o, r)] = m.alloc_ms;
					fr[IDX(a, o, r)] = m.free_ms;
				}
			}
		}
		f->ran = true;
		for (int a = 0; a < NR_ALLOCS; a++) {
			/* orders are contiguous in al: the first norders * runs values */
			f->alloc[a] = bench_stat_of(&al[IDX(a, 0, 0)], norders * runs);
			for (int o = 0; o < norders; o++) {
				struct bench_stat st = bench_stat_of(&fr[IDX(a, o, 0)], runs);

				if (o == 0 || st.med > f->free[a].med) {
					f->free[a] = st;
					f->worst_order[a] = o;
				}
			}
		}
		f->alloc_ratio = bench_stat_ratio(&al[IDX(0, 0, 0)], &al[IDX(1, 0, 0)], norders * runs);
		f->t3 = bench_stat_ratio(&al[IDX(1, 0, 0)], &al[IDX(0, 0, 0)], norders * runs);
		f->free_ratio = bench_stat_ratio(&fr[IDX(0, f->worst_order[0], 0)],
						 &fr[IDX(1, f->worst_order[1], 0)], runs);
	}
#undef IDX
	rc = 0;
out:
	bench_progress_clear();
	driver_pool_release();
	free(al);
	free(fr);
	return rc;
}

static const char *ratio_str(double a, double b, char *buf, size_t len)
{
	char v[32];

	if (a <= 0 || b <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%sx", bench_num_str(a / b, v, sizeof(v)));
	return buf;
}

/* Tables, plot and the T3 cells shared by evals 1 and 2 (selected sizes only). */
static void report_sizes(const char *eval, const char *what, const struct size_figures *fig,
			 const struct bench_row *seed_a, const struct bench_row *seed_b)
{
	struct bench_row ra[NR_SIZES], rb[NR_SIZES];
	char title[200], nb[32], sz[24], sr[32];
	int k = 0;

	for (int s = 0; s < NR_SIZES; s++) {
		if (!fig[s].ran)
			continue;
		ra[k] = (struct bench_row){ fig[s].size, fig[s].alloc[0].med, fig[s].free[0].med };
		rb[k++] = (struct bench_row){ fig[s].size, fig[s].alloc[1].med, fig[s].free[1].med };
	}
	bench_table_print("Area Map Allocator", ra, k);
	bench_table_print("Bitmap Allocator", rb, k);

	printf("  %s:\n  ms, median [min..max] of the runs; ratio: area map / bitmap of each run (above\n"
	       "  1: the bitmap is faster); the seed: the ratio of its published times.\n\n", what);
	printf("        Size  Phase | %-24s | %-24s | %-22s | the seed\n", "Area map (ms)",
	       "Bitmap (ms)", "Ratio");
	printf("        ---------------------------------------------------------------------------"
	       "-----------------------\n");
	for (int s = 0; s < NR_SIZES; s++) {
		const struct size_figures *f = &fig[s];

		if (!f->ran)
			continue;
		snprintf(sz, sizeof(sz), "%ldB", f->size);
		printf("        %5s alloc | %24s | %24s | %22s | %s\n", sz, BENCH_STAT(f->alloc[0], ""),
		       BENCH_STAT(f->alloc[1], ""), BENCH_STAT(f->alloc_ratio, "x"),
		       ratio_str(seed_a[s].alloc_ms, seed_b[s].alloc_ms, sr, sizeof(sr)));
		printf("        %5s free  | %24s | %24s | %22s | %s\n", "", BENCH_STAT(f->free[0], ""),
		       BENCH_STAT(f->free[1], ""), BENCH_STAT(f->free_ratio, "x"),
		       ratio_str(seed_a[s].free_ms, seed_b[s].free_ms, sr, sizeof(sr)));
	}
	printf("\n");
	snprintf(title, sizeof(title), "%s: %s, %s objects, chunk level", eval, what,
		 bench_count_str(bench_opts.n, nb, sizeof(nb)));
	bench_plot_add(eval, title, "area map", ra, "bitmap", rb, k);
	for (int s = 0; s < NR_SIZES; s++) {
		char where[160];

		if (!fig[s].ran)
			continue;
		snprintf(where, sizeof(where), "%s %ldB: bitmap %s ms, area map %s ms", eval,
			 fig[s].size, BENCH_STAT(fig[s].alloc[1], ""), BENCH_STAT(fig[s].alloc[0], ""));
		bench_target("T3", "bitmap alloc / area map alloc, worst cell of evals 1 and 2",
			     BENCH_AT_MOST, 1.0, fig[s].t3, where,
			     "above 1: the bitmap allocated slower than the area map");
	}
}

/*
 * Evaluations 1 to 3 measure in this process under the fixed conditions of
 * the forked evaluations (bench_fixed_conditions): without them, freeing
 * one measurement's driver lets glibc trim the heap, and the next one pays
 * page faults for the chunks' metadata (the bitmap's two maps and hints, 20
 * KiB per 256 KiB chunk) that have nothing to do with either allocator --
 * the same reason the chunks' memory comes from a resident pool.
 */
static void chunk_conditions(void)
{
	bench_fixed_conditions();
	printf("  Conditions: %s\n  (in this process: metadata a measurement frees stays resident for the next).\n\n",
	       bench_conditions_str());
}

static int eval1_run(void)
{
	struct size_figures fig[NR_SIZES];
	char nb[32], where[200];

	chunk_conditions();
	if (run_sizes("eval1", false, NR_ORDERS, fig))
		return -1;
	printf("  %s objects per size, allocated in order, then freed in order, alternating and\n"
	       "  in reverse, %d runs of each order.  Alloc: all %d runs (the alloc phase does not\n"
	       "  depend on the order); free: the worst order by median.\n\n",
	       bench_count_str(bench_opts.n, nb, sizeof(nb)), bench_opts.runs,
	       NR_ORDERS * bench_opts.runs);
	report_sizes("eval1", "Evaluation 1 (worst over free orders)", fig, seed1_area, seed1_bitmap);
	printf("  worst free order per size (area map / bitmap):");
	for (int s = 0; s < NR_SIZES; s++)
		if (fig[s].ran)
			printf(" %ldB %s/%s", sizes[s], order_names[fig[s].worst_order[0]],
			       order_names[fig[s].worst_order[1]]);
	printf("\n\n");
	if (!fig[0].ran)
		return 0;
	snprintf(where, sizeof(where), "4B: area map %s ms (%s), bitmap %s ms (%s)",
		 BENCH_STAT(fig[0].free[0], ""), order_names[fig[0].worst_order[0]],
		 BENCH_STAT(fig[0].free[1], ""), order_names[fig[0].worst_order[1]]);
	bench_target("T1", "worst-case free of N x 4 B, area map / bitmap", BENCH_AT_LEAST, 50,
		     fig[0].free_ratio, where, "the seed: 4770 ms vs 70 ms = 68x");
	return 0;
}

static int eval2_run(void)
{
	struct size_figures fig[NR_SIZES];
	char nb[32];

	chunk_conditions();
	if (run_sizes("eval2", true, 1, fig))
		return -1;
	printf("  Pre-fill: each page's second half holds objects of the measured size (per page,\n"
	       "  a half-page placeholder is allocated, then the second half is filled, then the\n"
	       "  placeholders are freed; untimed).  Then %s objects fill the first halves, and\n"
	       "  are freed in order (%d runs):\n\n",
	       bench_count_str(bench_opts.n, nb, sizeof(nb)), bench_opts.runs);
	report_sizes("eval2", "Evaluation 2 (second half of each page pre-filled)", fig, seed2_area,
		     seed2_bitmap);
	return 0;
}

/* One capped eval3 measurement of n 4 B objects at 8 B alignment, recorded. */
static int eval3_one(const struct inchunk_ops *ops, bool sideline, long n, int run,
		     double cap_ms, struct measure *m)
{
	const char *scase = sideline ? "sidelining" : "no-sidelining";
	char nb[32];

	bench_progress("eval3: %s %-7s N=%s run %d/%d", scase, ops->name,
		       bench_count_str(n, nb, sizeof(nb)), run, bench_opts.runs);
	if (measure(ops, sideline, n, 4, 8, FREE_IN_ORDER, false, cap_ms, m))
		return -1;
	record("eval3", ops->name, scase, 4, 8, n, run, m);
	return 0;
}

/*
 * One chunk-management variant of eval3.  Search: the area map doubles N
 * from 2^12, each step paired with a bitmap run at the same N, while it
 * finishes within the cap; it stops before a doubling whose time,
 * extrapolated from the last doubling, would pass the cap.  The last
 * finished pair is run 1 at that N and runs - 1 more pairs follow, taking
 * turns going first.  The bitmap alone then runs at the full N if the
 * area map stopped short of it.  *ratio: area map / bitmap at the common N.
 */
static int eval3_variant(bool sideline, struct bench_stat *ratio, long *common_n,
			 double *extrapolated)
{
	double cap_ms = bench_opts.cap_sec * 1000, prev_ms = 0, k = 2;
	double am[BENCH_MAX_RUNS], bm[BENCH_MAX_RUNS], bfull[BENCH_MAX_RUNS];
	long nmax = bench_opts.n, best = 0, stopped_at = 0;
	int runs = bench_opts.runs, sidelined = 0;
	bool capped = false;
	struct measure m;
	char nb[32], nb2[32], nb3[32];

	if (ensure_handles(nmax) || prepare_memory(nmax, 8))
		return -1;
	for (long n = nmax < 4096 ? nmax : 4096;;) {
		if (eval3_one(&inchunk_areamap_ops, sideline, n, 1, cap_ms, &m))
			return -1;
		if (m.capped) {
			capped = true;
			stopped_at = n;
			break;
		}
		if (best)
			prev_ms = am[0];
		am[0] = m.alloc_ms;
		sidelined = m.sidelined;
		if (eval3_one(&inchunk_bitmap_ops, sideline, n, 1, cap_ms, &m))
			return -1;
		bm[0] = m.alloc_ms;
		best = n;
		if (n == nmax)
			break;
		/* growth exponent from the last doubling, when there was one */
		k = prev_ms > 0 && am[0] > prev_ms ? log2(am[0] / prev_ms) : 2.0;
		n = n * 2 < nmax ? n * 2 : nmax;
		if (am[0] * pow((double)n / (double)best, k) > cap_ms) {
			stopped_at = n;
			break;
		}
	}
	if (!best) {
		printf("  the area map did not finish %s objects within %.0f s\n",
		       bench_count_str(nmax < 4096 ? nmax : 4096, nb, sizeof(nb)), bench_opts.cap_sec);
		return -1;
	}
	for (int r = 1; r < runs; r++) {
		for (int j = 0; j < NR_ALLOCS; j++) {
			int a = (j + r) % NR_ALLOCS;

			if (eval3_one(allocs[a], sideline, best, r + 1, 0, &m))
				return -1;
			(a == 0 ? am : bm)[r] = m.alloc_ms;
		}
	}
	for (int r = 0; best != nmax && r < runs; r++) {
		if (eval3_one(&inchunk_bitmap_ops, sideline, nmax, r + 1, 0, &m))
			return -1;
		bfull[r] = m.alloc_ms;
	}
	bench_progress_clear();

	*ratio = bench_stat_ratio(am, bm, runs);
	*common_n = best;
	printf("  %s:\n\n", sideline ?
	       "Chunk management as in today's kernel: a chunk failing a small request is sidelined" :
	       "Chunk management as in 2017 (the seed's setting): no sidelining, every chunk of\n"
	       "  the slot is tried again on every allocation");
	printf("           Objects | %-26s | %-24s | Ratio\n", "Area Map Alloc (ms)",
	       "Bitmap Alloc (ms)");
	printf("        ------------------------------------------------------------------------"
	       "-------------\n");
	printf("        %10s | %26s | %24s | %s\n", bench_count_str(best, nb, sizeof(nb)),
	       BENCH_STAT(bench_stat_of(am, runs), ""), BENCH_STAT(bench_stat_of(bm, runs), ""),
	       BENCH_STAT(*ratio, "x"));
	*extrapolated = 0;
	if (best != nmax) {
		struct bench_stat full = bench_stat_of(bfull, runs);
		double est = bench_stat_of(am, runs).med * pow((double)nmax / (double)best, k);

		*extrapolated = est / full.med;
		printf("        %10s | %26s | %24s |\n", bench_count_str(nmax, nb, sizeof(nb)),
		       "over the cap", BENCH_STAT(full, ""));
		printf("\n  The area map %s the %.0f s cap at %s objects;\n"
		       "  %s is the largest N it ran.  Extrapolating its growth (x%.1f per doubling)\n"
		       "  to %s gives about %.0f s, i.e. ~%.0fx the bitmap (an estimate, not a\n"
		       "  measurement).\n",
		       capped ? "exceeded" : "would exceed (by extrapolation)", bench_opts.cap_sec,
		       bench_count_str(stopped_at, nb2, sizeof(nb2)),
		       bench_count_str(best, nb, sizeof(nb)), pow(2, k),
		       bench_count_str(nmax, nb3, sizeof(nb3)), est / 1e3, *extrapolated);
	}
	printf("\n  (%d interleaved runs of each at %s; the area map had %d sideline event%s)\n\n",
	       runs, bench_count_str(best, nb, sizeof(nb)), sidelined, sidelined == 1 ? "" : "s");
	return 0;
}

static int eval3_run(void)
{
	struct bench_stat r_old, r_new;
	double x_old, x_new;
	long n_old, n_new;
	char where[160], note[240], nb[32];

	chunk_conditions();
	printf("  N objects of 4 B at 8 B alignment (every allocation leaves a 4 B hole).\n"
	       "  The seed: 2^20 objects, area map 52 min (%.0f ms), bitmap ~16 s (%.0f ms) = %.0fx.\n\n",
	       SEED3_AREA_MS, SEED3_BITMAP_MS, SEED3_AREA_MS / SEED3_BITMAP_MS);
	if (eval3_variant(false, &r_old, &n_old, &x_old) ||
	    eval3_variant(true, &r_new, &n_new, &x_new)) {
		driver_pool_release();
		return -1;
	}
	driver_pool_release();

	snprintf(where, sizeof(where), "2017 slots (no sidelining), N=%s%s",
		 bench_count_str(n_old, nb, sizeof(nb)),
		 n_old == bench_opts.n ? "" : " (the largest N the area map ran within the cap)");
	snprintf(note, sizeof(note), "with sidelining (today's kernel): %s at N=%s%s",
		 BENCH_STAT(r_new, "x"), bench_count_str(n_new, nb, sizeof(nb)),
		 x_old > 0 ? "; see the extrapolation above" : "");
	bench_target("T2", "N x 4 B at 8 B alignment, alloc, area map / bitmap", BENCH_AT_LEAST, 100,
		     r_old, where, note);
	return 0;
}

BENCH_EVAL(eval1_def, .name = "eval1", .order = 10, .run = eval1_run,
	   .title = "chunk level: N objects of 4..1024 B, freed in order / alternating / reverse")
BENCH_EVAL(eval2_def, .name = "eval2", .order = 20, .run = eval2_run,
	   .title = "chunk level: second half of every page pre-filled, then N objects")
BENCH_EVAL(eval3_def, .name = "eval3", .order = 30, .run = eval3_run,
	   .title = "chunk level: N x 4 B at 8 B alignment")
