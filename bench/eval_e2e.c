/*
 * eval_e2e.c - evaluations through the public API (SPEC 6.4, targets
 * T4-T7): pcpu_alloc/pcpu_free against one calloc(nr_cpus, round_up(size,
 * 64)) per object; the cost per operation as the number of live objects
 * grows; resident memory against the ideal, and after free-all + balance.
 *
 * The allocator is configured once per process, so every measurement runs
 * in a forked child (with the unit count it needs) and sends its numbers
 * back through a pipe.  Resident memory is read from /proc/self/statm.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bitops.h"
#include "pool_init.h"
#include "pool_verify.h"
#include "percpu.h"

struct e2e_result {
	double alloc_ms, free_ms;
	double rss_live_kb;     /* resident growth with every object live */
	double rss_after_kb;    /* resident growth after free-all (+ balance) */
	double meta_kb;         /* allocator metadata (pcpu only) */
	double data_kb;         /* populated unit memory (pcpu only) */
	long populated_after;   /* populated pages outside the first chunk after balance */
	long unit_pages;
	int ok;
};

static long rss_kb(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

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

/* One measurement in a child: N objects of `size`, allocated then freed. */
static void measure_child(int fd, bool use_calloc, unsigned cpus, long n, size_t size)
{
	struct e2e_result r = { 0 };
	void **h = malloc(sizeof(void *) * (size_t)n);
	size_t padded = (size + 63) & ~(size_t)63;
	long rss0;

	if (!use_calloc) {
		struct pcpu_config cfg = { .nr_cpus = cpus, .flags = PCPU_CFG_NO_BALANCER };

		if (pcpu_init(&cfg))
			goto out;
	}
	for (long i = 0; i < n; i++)    /* the handle array itself is not measured */
		h[i] = NULL;
	rss0 = rss_kb();
	double t0 = bench_now_ms();
	if (use_calloc) {
		for (long i = 0; i < n; i++)
			if (!(h[i] = calloc(cpus, padded)))
				goto out;
	} else {
		for (long i = 0; i < n; i++)
			if (!(h[i] = pcpu_alloc(size, 4)))
				goto out;
	}
	double t1 = bench_now_ms();
	r.rss_live_kb = (double)(rss_kb() - rss0);
	if (!use_calloc) {
		r.meta_kb = metadata_kb();
		r.data_kb = (double)pcpu_pool.nr_populated * (double)pcpu_pool.page_size * cpus / 1024;
		r.unit_pages = pcpu_pool.unit_pages;
	}
	double t2 = bench_now_ms();
	if (use_calloc) {
		for (long i = 0; i < n; i++)
			free(h[i]);
	} else {
		for (long i = 0; i < n; i++)
			pcpu_free(h[i]);
	}
	double t3 = bench_now_ms();
	if (!use_calloc) {
		pcpu_balance();
		r.populated_after = pcpu_pool.nr_populated - (long)(pcpu_pool.first_chunk_populated / pcpu_pool.page_size);
	}
	r.rss_after_kb = (double)(rss_kb() - rss0);
	r.alloc_ms = t1 - t0;
	r.free_ms = t3 - t2;
	r.ok = 1;
out:
	if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
	_exit(0);
}

static struct e2e_result measure(bool use_calloc, unsigned cpus, long n, size_t size)
{
	struct e2e_result r = { 0 };
	int fds[2];

	fflush(stdout);
	fflush(stderr);
	if (pipe(fds))
		return r;
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		measure_child(fds[1], use_calloc, cpus, n, size);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
		r.ok = 0;
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return r;
}

/* Median over bench_opts.runs children of each field that is timed. */
static struct e2e_result measure_median(const char *eval, bool use_calloc, unsigned cpus, long n,
					size_t size)
{
	int runs = bench_opts.runs;
	double a[32], f[32];
	struct e2e_result r = { 0 }, last = { 0 };

	if (runs > 32)
		runs = 32;
	for (int i = 0; i < runs; i++) {
		char ncase[32];

		bench_progress("%s: %s, %u units, %ld objects, run %d/%d", eval,
			       use_calloc ? "calloc" : "pcpu", cpus, n, i + 1, runs);
		last = measure(use_calloc, cpus, n, size);
		if (!last.ok)
			return last;
		a[i] = last.alloc_ms;
		f[i] = last.free_ms;
		snprintf(ncase, sizeof(ncase), "%u units", cpus);
		bench_csv(eval, use_calloc ? "calloc" : "pcpu", ncase, (long)size, 4, n, i, "alloc",
			  last.alloc_ms, "");
		bench_csv(eval, use_calloc ? "calloc" : "pcpu", ncase, (long)size, 4, n, i, "free",
			  last.free_ms, "");
	}
	r = last;
	r.alloc_ms = bench_median(a, runs);
	r.free_ms = bench_median(f, runs);
	return r;
}

static unsigned machine_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);

	return n > 0 ? (unsigned)n : 1;
}

/* ---- evaluation 4: end to end against calloc-padded ----------------------- */

static int eval_e2e_calloc(void)
{
	unsigned configs[2] = { machine_cpus(), bench_opts.nr_cpus > 0 ? (unsigned)bench_opts.nr_cpus : 64 };
	long n = bench_opts.n;
	char nb[24];

	if (configs[1] == configs[0])
		configs[1] = 64;
	printf("  %s x 4 B through pcpu_alloc/pcpu_free against one calloc(nr_cpus, 64) per\n"
	       "  object (the padded-array idiom), each in a fresh process; resident memory is\n"
	       "  the growth of VmRSS with every object live.\n\n", bench_count_str(n, nb, sizeof(nb)));
	printf("        Units | Allocator | Alloc (ms) | Free (ms) | Total (ms) | Resident (MiB)\n");
	printf("        ------------------------------------------------------------------------\n");
	for (int c = 0; c < 2; c++) {
		struct e2e_result p = measure_median("eval4", false, configs[c], n, 4);
		struct e2e_result k = measure_median("eval4", true, configs[c], n, 4);

		bench_progress_clear();
		if (!p.ok || !k.ok) {
			printf("        measurement failed (out of memory?)\n");
			return -1;
		}
		printf("        %5u | %-9s | %10.1f | %9.1f | %10.1f | %14.1f\n", configs[c], "pcpu",
		       p.alloc_ms, p.free_ms, p.alloc_ms + p.free_ms, p.rss_live_kb / 1024);
		printf("        %5u | %-9s | %10.1f | %9.1f | %10.1f | %14.1f\n", configs[c], "calloc",
		       k.alloc_ms, k.free_ms, k.alloc_ms + k.free_ms, k.rss_live_kb / 1024);
		double speed = (k.alloc_ms + k.free_ms) / (p.alloc_ms + p.free_ms);
		double mem = p.rss_live_kb / (k.rss_live_kb > 0 ? k.rss_live_kb : 1);
		printf("        %5s   ratio: %.2fx faster, %.3f of the memory\n", "", speed, mem);
		char where[48];
		snprintf(where, sizeof(where), "%u units", configs[c]);
		if (c == 0) {
			bench_target("T4", "end to end 4 B alloc + free, calloc-padded / pcpu (time)",
				     BENCH_AT_LEAST, 2.0, speed, where, "");
			bench_target("T4m", "end to end 4 B, pcpu / calloc-padded (resident memory)",
				     BENCH_AT_MOST, 0.125, mem, where, "");
		}
	}
	printf("\n");
	return 0;
}

/* ---- evaluation 5: flat cost ---------------------------------------------- */

static int eval_flat(void)
{
	long ns[4] = { 1L << 16, 1L << 18, 1L << 20, 1L << 22 };
	double base_a = 0, base_f = 0;
	int count = bench_opts.quick ? 2 : 4;

	if (bench_opts.quick) {
		ns[0] = 1L << 12;
		ns[1] = 1L << 14;
	}
	printf("  ns per pcpu_alloc and per pcpu_free of 4 B objects, by the number of live\n"
	       "  objects at the end of the alloc phase (%u units):\n\n", machine_cpus());
	printf("        Live objects | Alloc (ns/op) | Free (ns/op)\n");
	printf("        ---------------------------------------------\n");
	for (int i = 0; i < count; i++) {
		struct e2e_result r = measure_median("eval5", false, machine_cpus(), ns[i], 4);
		char nb[24];

		bench_progress_clear();
		if (!r.ok)
			return -1;
		double a = r.alloc_ms * 1e6 / (double)ns[i], f = r.free_ms * 1e6 / (double)ns[i];
		printf("        %12s | %13.1f | %12.1f\n", bench_count_str(ns[i], nb, sizeof(nb)), a, f);
		if (i == 0) {
			base_a = a;
			base_f = f;
		}
		if (i == count - 1) {
			char where[64];

			snprintf(where, sizeof(where), "%s vs %s live", bench_count_str(ns[i], nb, sizeof(nb)),
				 bench_count_str(ns[0], (char[24]){ 0 }, 24));
			bench_target("T5", "ns per alloc, most live objects / fewest", BENCH_AT_MOST, 1.5,
				     a / base_a, where, "");
			bench_target("T5f", "ns per free, most live objects / fewest", BENCH_AT_MOST, 1.5,
				     f / base_f, where, "");
		}
	}
	printf("\n");
	return 0;
}

/* ---- evaluation 6: memory ---------------------------------------------------- */

static int eval_memory(void)
{
	long n = bench_opts.n;
	unsigned cpus = machine_cpus();
	struct e2e_result r = measure_median("eval6", false, cpus, n, 4);
	char nb[24];

	bench_progress_clear();
	if (!r.ok)
		return -1;
	double ideal = 4.0 * (double)n * cpus / 1024;
	double used = r.data_kb + r.meta_kb;

	printf("  %s live 4 B objects on %u units:\n\n", bench_count_str(n, nb, sizeof(nb)), cpus);
	printf("        ideal (4 B x N x units)       %10.1f KiB\n", ideal);
	printf("        populated unit memory         %10.1f KiB\n", r.data_kb);
	printf("        allocator metadata            %10.1f KiB\n", r.meta_kb);
	printf("        total / ideal                 %10.3f\n", used / ideal);
	printf("        VmRSS growth, all live        %10.1f KiB\n", r.rss_live_kb);
	printf("        VmRSS growth, after free-all + pcpu_balance()  %.1f KiB\n", r.rss_after_kb);
	printf("        populated pages outside the first chunk after balance: %ld (one chunk: %ld)\n\n",
	       r.populated_after, r.unit_pages);
	bench_target("T6", "resident memory of N live 4 B objects / ideal (metadata included)",
		     BENCH_AT_MOST, 1.15, used / ideal, "", "");
	bench_target("T7", "populated pages outside the first chunk after free-all + balance, in chunks",
		     BENCH_AT_MOST, 1.0, (double)r.populated_after / (double)(r.unit_pages ? r.unit_pages : 1),
		     "", r.rss_after_kb < r.rss_live_kb / 4 ? "RSS fell back" : "RSS did not fall back");
	return 0;
}

BENCH_EVAL(eval4_def, .name = "eval4", .title = "end to end: pcpu_alloc/pcpu_free against calloc-padded",
	   .order = 40, .run = eval_e2e_calloc)
BENCH_EVAL(eval5_def, .name = "eval5", .title = "flat cost: ns per operation as live objects grow",
	   .order = 50, .run = eval_flat)
BENCH_EVAL(eval6_def, .name = "eval6", .title = "memory: resident against the ideal, and after free-all",
	   .order = 60, .run = eval_memory)
