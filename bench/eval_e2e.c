/*
 * eval_e2e.c - evaluations 4 to 6, through the public API (targets
 * T4-T7): pcpu_alloc/pcpu_free against one calloc(nr_cpus, round_up(size,
 * 64)) per object; the cost per operation as the number of live objects
 * grows; resident memory against the ideal, and after free-all + balance.
 *
 * The allocator is configured once per process, so every measurement runs
 * in a forked child (with the unit count it needs, under the fixed
 * conditions of bench_fixed_conditions) and sends its numbers back.  The
 * runs of the two sides of a comparison alternate, taking turns going
 * first.  Resident memory is read from /proc/self/statm.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bitops.h"
#include "pool_init.h"
#include "pool_verify.h"
#include "percpu.h"

/* Evaluation 4's passes in one process: the first touch, the second pass,
 * then STEADY_PASSES more, whose median is the steady state. */
#define STEADY_PASSES 3
#define PASSES (2 + STEADY_PASSES)
#define ROWS 3                  /* first touch, second pass, steady state */

struct e2e_args {
	bool use_calloc;
	unsigned cpus;
	long n;
	size_t size;
	int passes;             /* 1, or PASSES: the same work again in the same process */
};

struct e2e_result {
	double alloc_ms[PASSES], free_ms[PASSES];
	long faults[PASSES];    /* minor page faults during the pass */
	double rss_live_kb;     /* resident growth with every object live (pass 1) */
	double rss_after_kb;    /* resident growth after the last free-all (+ balance) */
	double meta_kb;         /* allocator metadata (pcpu only) */
	double data_kb;         /* populated unit memory (pcpu only) */
	long populated_after;   /* populated pages outside the first chunk after balance */
	long unit_pages;
	int ok;
};

/* Bytes of allocator metadata: chunk structs, maps, blocks, trees. */
static double metadata_kb(void)
{
	double bytes = 0;

	pcpu_lock(&pcpu_pool.lock);
	for (int i = 0; i < pcpu_pool.chunk_hiwater; i++) {
		const struct pcpu_chunk *ch = pcpu_pool.chunk_table[i];

		if (!ch)
			continue;
		const struct chunk *c = ch->map;
		bytes += sizeof(*ch) + sizeof(*c) + 2.0 * (double)BITS_TO_LONGS(c->nr_bits + 1) * 8 +
			 2.0 * (double)BITS_TO_LONGS(c->nr_pages) * 8 +
			 (double)c->nr_pages * sizeof(struct block_md) +
			 2.0 * c->tree_leaves * sizeof(struct run_node);
	}
	/* The chunk table and its in-use bitmap: only the pages touched so far. */
	bytes += (double)(((size_t)pcpu_pool.chunk_hiwater * sizeof(void *) + 4095) / 4096 * 4096);
	bytes += (double)BITS_TO_LONGS(pcpu_pool.max_chunks) * sizeof(long);
	pcpu_unlock(&pcpu_pool.lock);
	return bytes / 1024;
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/*
 * One measurement in a child: N objects of `size` allocated, then freed
 * in order, `passes` times.  Pass 1 starts from a fresh process, so its
 * times include the page faults of first touching the memory; the later
 * passes repeat the work on memory that stayed resident (no heap trimming,
 * no balancer): the allocators' own cost.  Pass 2 is the first in which
 * the program itself writes memory the kernel zeroed in pass 1 (pcpu's
 * objects come from pages populated by madvise, untouched by the
 * program until freed objects are zeroed for reuse), so it also pays
 * for bringing that memory into the caches.
 */
static void measure_child(void *argp, void *resp)
{
	const struct e2e_args *a = argp;
	struct e2e_result *r = resp;
	void **h = malloc(sizeof(void *) * (size_t)a->n);
	size_t padded = (a->size + 63) & ~(size_t)63;
	long rss0;

	memset(r, 0, sizeof(*r));
	bench_fixed_conditions();
	if (!h)
		return;
	if (!a->use_calloc) {
		struct pcpu_config cfg = { .nr_cpus = a->cpus, .flags = PCPU_CFG_NO_BALANCER };

		if (pcpu_init(&cfg))
			return;
	}
	for (long i = 0; i < a->n; i++)    /* the handle array itself is not measured */
		h[i] = NULL;
	rss0 = bench_rss_kb();
	for (int pass = 0; pass < a->passes; pass++) {
		long f0 = minor_faults();
		double t0 = bench_now_ms();

		if (a->use_calloc) {
			for (long i = 0; i < a->n; i++)
				if (!(h[i] = calloc(a->cpus, padded)))
					return;
		} else {
			for (long i = 0; i < a->n; i++)
				if (!(h[i] = pcpu_alloc(a->size, 4)))
					return;
		}
		double t1 = bench_now_ms();
		if (pass == 0) {
			r->rss_live_kb = (double)(bench_rss_kb() - rss0);
			if (!a->use_calloc) {
				r->meta_kb = metadata_kb();
				r->data_kb = (double)pcpu_pool.nr_populated * (double)pcpu_pool.page_size * a->cpus / 1024;
				r->unit_pages = pcpu_pool.unit_pages;
			}
		}
		double t2 = bench_now_ms();
		if (a->use_calloc) {
			for (long i = 0; i < a->n; i++)
				free(h[i]);
		} else {
			for (long i = 0; i < a->n; i++)
				pcpu_free(h[i]);
		}
		r->alloc_ms[pass] = t1 - t0;
		r->free_ms[pass] = bench_now_ms() - t2;
		r->faults[pass] = minor_faults() - f0;
	}
	if (!a->use_calloc) {
		pcpu_balance();
		r->populated_after = pcpu_pool.nr_populated - (long)(pcpu_pool.first_chunk_populated / pcpu_pool.page_size);
	}
	r->rss_after_kb = (double)(bench_rss_kb() - rss0);
	r->ok = 1;
	free(h);
}

static int measure(const char *eval, bool use_calloc, unsigned cpus, long n, size_t size,
		   int passes, int run, struct e2e_result *r)
{
	struct e2e_args a = { use_calloc, cpus, n, size, passes };
	const char *name = use_calloc ? "calloc" : "pcpu";
	char ncase[32], phase[32];

	bench_progress("%s: %-6s %u units, %ld objects, run %d/%d", eval, name, cpus, n, run,
		       bench_opts.runs);
	if (bench_in_child(measure_child, &a, r, sizeof(*r)) || !r->ok) {
		bench_progress_clear();
		printf("  %s: the %s measurement failed (out of memory?)\n", eval, name);
		return -1;
	}
	snprintf(ncase, sizeof(ncase), "%u units", cpus);
	for (int p = 0; p < passes; p++) {
		char pass[16] = "";

		if (p)
			snprintf(pass, sizeof(pass), "_pass%d", p + 1);
		snprintf(phase, sizeof(phase), "alloc%s", pass);
		bench_csv(eval, name, ncase, (long)size, 4, n, run, phase, r->alloc_ms[p], "");
		snprintf(phase, sizeof(phase), "free%s", pass);
		bench_csv(eval, name, ncase, (long)size, 4, n, run, phase, r->free_ms[p], "");
		snprintf(phase, sizeof(phase), "page_faults%s", pass);
		bench_csv_value(eval, name, ncase, (long)size, n, run, phase, (double)r->faults[p],
				"faults", "");
	}
	bench_csv_value(eval, name, ncase, (long)size, n, run, "rss_live", r->rss_live_kb, "KiB", "");
	return 0;
}

/* ---- evaluation 4: end to end against calloc-padded ----------------------- */

/* A process's figure for a table row: the first touch, the second pass, or
 * the steady state (the median of the passes after those two). */
static double row_of(const double *pass, int row)
{
	double v[STEADY_PASSES];

	if (row < 2)
		return pass[row];
	for (int p = 0; p < STEADY_PASSES; p++)
		v[p] = pass[2 + p];
	return bench_median(v, STEADY_PASSES);
}

static int eval_e2e_calloc(void)
{
	unsigned configs[2] = { bench_machine_cpus(), bench_opts.cpus_given ? (unsigned)bench_opts.nr_cpus : 64 };
	static const char *const row_name[ROWS] = { "first touch", "second pass", "steady state" };
	int runs = bench_opts.runs;
	long n = bench_opts.n;
	char nb[24];

	if (configs[1] == configs[0])
		configs[1] = 64;
	printf("  %s x 4 B through pcpu_alloc/pcpu_free against one calloc(nr_cpus, 64) per\n"
	       "  object (the padded-array idiom).  Each run is one fresh process per side, the\n"
	       "  sides alternating and taking turns going first; each process allocates and\n"
	       "  frees all objects %d times: the first touch (page faults included), the second\n"
	       "  pass (the first to write what the kernel zeroed for pcpu in the first, so it\n"
	       "  brings that memory into the caches), then the steady state: the median of %d\n"
	       "  more passes on memory that stayed resident, the allocators' own cost, which\n"
	       "  T4 judges.  Resident: VmRSS growth with every object live.\n"
	       "  Conditions: %s.\n",
	       bench_count_str(n, nb, sizeof(nb)), PASSES, STEADY_PASSES, bench_conditions_str());
	if (bench_page_reporting())
		printf("  This machine returns free memory to its hypervisor (virtio-balloon free page\n"
		       "  reporting), so a first touch costs a host fault as well when the memory\n"
		       "  was handed back: first-touch times vary with what ran before.\n");
	printf("\n        Units Allocator Pass         | %-20s | %-20s | %-20s | Resident (MiB)\n",
	       "Alloc (ms)", "Free (ms)", "Total (ms)");
	printf("        -------------------------------------------------------------------------"
	       "------------------------------------\n");
	for (int c = 0; c < 2; c++) {
		struct e2e_result res[2][BENCH_MAX_RUNS];
		double tot[2][ROWS][BENCH_MAX_RUNS], rss[2][BENCH_MAX_RUNS];
		struct bench_stat speed[ROWS], mem;
		long later_faults = 0;
		char where[48];

		for (int r = 0; r < runs; r++)
			for (int j = 0; j < 2; j++) {
				int side = (j + r) % 2;         /* 0 pcpu, 1 calloc */

				if (measure("eval4", side, configs[c], n, 4, PASSES, r + 1, &res[side][r]))
					return -1;
			}
		bench_progress_clear();
		for (int side = 0; side < 2; side++) {
			for (int p = 0; p < ROWS; p++) {
				double al[BENCH_MAX_RUNS], fr[BENCH_MAX_RUNS];

				for (int r = 0; r < runs; r++) {
					const struct e2e_result *e = &res[side][r];
					double sum[PASSES];

					for (int q = 0; q < PASSES; q++)
						sum[q] = e->alloc_ms[q] + e->free_ms[q];
					al[r] = row_of(e->alloc_ms, p);
					fr[r] = row_of(e->free_ms, p);
					tot[side][p][r] = row_of(sum, p);
				}
				printf("        %5u %-9s %-12s | %20s | %20s | %20s |", configs[c],
				       side ? "calloc" : "pcpu", row_name[p],
				       BENCH_STAT(bench_stat_of(al, runs), ""),
				       BENCH_STAT(bench_stat_of(fr, runs), ""),
				       BENCH_STAT(bench_stat_of(tot[side][p], runs), ""));
				for (int r = 0; r < runs; r++)
					rss[side][r] = res[side][r].rss_live_kb / 1024;
				printf(" %s\n", p ? "" : BENCH_STAT(bench_stat_of(rss[side], runs), ""));
			}
		}
		for (int p = 0; p < ROWS; p++)
			speed[p] = bench_stat_ratio(tot[1][p], tot[0][p], runs);
		for (int p = 1; p < PASSES; p++)
			later_faults += res[1][0].faults[p];
		mem = bench_stat_ratio(rss[0], rss[1], runs);
		printf("        %5s calloc / pcpu time: first touch %s, second pass %s,\n"
		       "        %5s steady state %s; pcpu / calloc resident memory: %s;\n"
		       "        %5s calloc's page faults, first touch / later passes: %ld / %ld\n"
		       "        %5s (pcpu populates by madvise)\n", "",
		       BENCH_STAT(speed[0], "x"), BENCH_STAT(speed[1], "x"), "", BENCH_STAT(speed[2], "x"),
		       BENCH_STAT(mem, ""), "", res[1][0].faults[0], later_faults, "");
		if (c == 0) {
			char note[160];

			snprintf(where, sizeof(where), "%u units, steady state", configs[c]);
			snprintf(note, sizeof(note), "first touch (page faults, host-dependent) %s; second pass %s",
				 BENCH_STAT(speed[0], "x"), BENCH_STAT(speed[1], "x"));
			bench_target("T4", "end to end 4 B alloc + free, calloc-padded / pcpu (time)",
				     BENCH_AT_LEAST, 2.0, speed[2], where, note);
			snprintf(where, sizeof(where), "%u units", configs[c]);
			bench_target("T4m", "end to end 4 B, pcpu / calloc-padded (resident memory)",
				     BENCH_AT_MOST, 0.125, mem, where, "");
		}
	}
	printf("\n");
	return 0;
}

/* ---- evaluation 5: flat cost ---------------------------------------------- */

#define FLAT_SIZES 4

static int eval_flat(void)
{
	long ns[FLAT_SIZES] = { 1L << 16, 1L << 18, 1L << 20, 1L << 22 };
	double a[FLAT_SIZES][BENCH_MAX_RUNS], f[FLAT_SIZES][BENCH_MAX_RUNS];
	int count = bench_opts.quick ? 2 : FLAT_SIZES, runs = bench_opts.runs, last;
	unsigned cpus = bench_machine_cpus();
	char nb[24], nb2[24], where[64];

	if (bench_opts.quick) {
		ns[0] = 1L << 12;
		ns[1] = 1L << 14;
	}
	last = count - 1;
	printf("  ns per pcpu_alloc and per pcpu_free of 4 B objects, by the number of live\n"
	       "  objects at the end of the alloc phase (%u units; a fresh process per\n"
	       "  measurement, the sizes interleaved in every run):\n\n", cpus);
	for (int r = 0; r < runs; r++) {
		for (int j = 0; j < count; j++) {
			int i = r % 2 ? count - 1 - j : j;      /* every other run backwards */
			struct e2e_result res;

			if (measure("eval5", false, cpus, ns[i], 4, 1, r + 1, &res))
				return -1;
			a[i][r] = res.alloc_ms[0] * 1e6 / (double)ns[i];
			f[i][r] = res.free_ms[0] * 1e6 / (double)ns[i];
		}
	}
	bench_progress_clear();
	printf("        Live objects | %-22s | %-22s\n", "Alloc (ns/op)", "Free (ns/op)");
	printf("        -------------------------------------------------------------\n");
	for (int i = 0; i < count; i++)
		printf("        %12s | %22s | %22s\n", bench_count_str(ns[i], nb, sizeof(nb)),
		       BENCH_STAT(bench_stat_of(a[i], runs), ""),
		       BENCH_STAT(bench_stat_of(f[i], runs), ""));
	printf("\n");
	snprintf(where, sizeof(where), "%s vs %s live", bench_count_str(ns[last], nb, sizeof(nb)),
		 bench_count_str(ns[0], nb2, sizeof(nb2)));
	bench_target("T5", "ns per alloc, most live objects / fewest", BENCH_AT_MOST, 1.5,
		     bench_stat_ratio(a[last], a[0], runs), where, "");
	bench_target("T5f", "ns per free, most live objects / fewest", BENCH_AT_MOST, 1.5,
		     bench_stat_ratio(f[last], f[0], runs), where, "");
	return 0;
}

/* ---- evaluation 6: memory ---------------------------------------------------- */

static int eval_memory(void)
{
	long n = bench_opts.n;
	unsigned cpus = bench_machine_cpus();
	int runs = bench_opts.runs;
	double ideal = 4.0 * (double)n * cpus / 1024, unit_pages = 1;
	double data[BENCH_MAX_RUNS], meta[BENCH_MAX_RUNS], ratio[BENCH_MAX_RUNS];
	double live[BENCH_MAX_RUNS], after[BENCH_MAX_RUNS], pop[BENCH_MAX_RUNS], chunks[BENCH_MAX_RUNS];
	char nb[24];

	for (int r = 0; r < runs; r++) {
		struct e2e_result res;

		if (measure("eval6", false, cpus, n, 4, 1, r + 1, &res))
			return -1;
		data[r] = res.data_kb;
		meta[r] = res.meta_kb;
		ratio[r] = (res.data_kb + res.meta_kb) / ideal;
		live[r] = res.rss_live_kb;
		after[r] = res.rss_after_kb;
		pop[r] = (double)res.populated_after;
		unit_pages = res.unit_pages ? res.unit_pages : 1;
		chunks[r] = pop[r] / unit_pages;
		bench_csv_value("eval6", "pcpu", "memory", 4, n, r + 1, "resident/ideal", ratio[r], "",
				"");
	}
	bench_progress_clear();
	struct bench_stat st_live = bench_stat_of(live, runs), st_after = bench_stat_of(after, runs);

	printf("  %s live 4 B objects on %u units (%d runs, a fresh process each):\n\n",
	       bench_count_str(n, nb, sizeof(nb)), cpus, runs);
	printf("        ideal (4 B x N x units)       %.1f KiB\n", ideal);
	printf("        populated unit memory         %s KiB\n", BENCH_STAT(bench_stat_of(data, runs), ""));
	printf("        allocator metadata            %s KiB\n", BENCH_STAT(bench_stat_of(meta, runs), ""));
	printf("        total / ideal                 %s\n", BENCH_STAT(bench_stat_of(ratio, runs), ""));
	printf("        VmRSS growth, all live        %s KiB\n", BENCH_STAT(st_live, ""));
	printf("        VmRSS growth, after free-all + pcpu_balance()  %s KiB\n", BENCH_STAT(st_after, ""));
	printf("        populated pages outside the first chunk after balance: %s (one chunk: %.0f)\n\n",
	       BENCH_STAT(bench_stat_of(pop, runs), ""), unit_pages);
	bench_target("T6", "resident memory of N live 4 B objects / ideal (metadata included)",
		     BENCH_AT_MOST, 1.15, bench_stat_of(ratio, runs), "", "");
	bench_target("T7", "populated pages outside the first chunk after free-all + balance, in chunks",
		     BENCH_AT_MOST, 1.0, bench_stat_of(chunks, runs), "",
		     st_after.max < st_live.min / 4 ? "RSS fell back in every run" :
		     "RSS did not fall back in every run");
	return 0;
}

BENCH_EVAL(eval4_def, .name = "eval4", .title = "end to end: pcpu_alloc/pcpu_free against calloc-padded",
	   .order = 40, .run = eval_e2e_calloc)
BENCH_EVAL(eval5_def, .name = "eval5", .title = "flat cost: ns per operation as live objects grow",
	   .order = 50, .run = eval_flat)
BENCH_EVAL(eval6_def, .name = "eval6", .title = "memory: resident against the ideal, and after free-all",
	   .order = 60, .run = eval_memory)
