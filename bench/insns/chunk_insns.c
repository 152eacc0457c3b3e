/*
 * chunk_insns.c - a small driver of the chunk-level evaluations 1 and 2
 * for instruction counts: run it under callgrind with --toggle-collect on
 * alloc_phase or free_phase (the measured phases, without eval2's
 * pre-fill), read the inclusive instructions of chunk_alloc, areamap_alloc
 * or chunk_free (or of the whole phase) and divide by the calls it prints
 * (chunk_insns.sh does it).
 * It uses the benchmark's driver (bench/inchunk.c: slots, sidelining,
 * zeroing) exactly as pcpu-bench does, on memory mapped per chunk
 * (CHUNK_INSNS_POOL=1 in the environment: on resident memory prepared
 * before the measured phases, as pcpu-bench does; for perf stat).
 *
 * Usage: chunk-insns eval1|eval2 SIZE N areamap|bitmap|both [UNIT_KB [UNITS]]
 *   eval1: N objects of SIZE bytes allocated, then freed in order;
 *   eval2: the second half of every page pre-filled with SIZE objects
 *          (untimed set-up, as in pcpu-bench), then N objects, freed in order.
 * Prints the calls of the in-chunk allocator's alloc and free in the
 * measured phases, and their wall-clock time (for a quick look only: the
 * benchmark is pcpu-bench).  Environment: CHUNK_INSNS_POOL=1 resident
 * chunk memory; CHUNK_INSNS_FIXED=1 pcpu-bench's fixed malloc conditions;
 * CHUNK_INSNS_ROUNDS=R measurements each ("both": the sides alternate);
 * CHUNK_INSNS_ORDER=alternating|reverse the free order (default: in order);
 * CHUNK_INSNS_NOZERO=1 the driver does not zero the objects (diagnosis:
 * the in-chunk allocators' time without the memory traffic of zeroing).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "inchunk.h"

static const struct inchunk_ops *real;
static long n_alloc_calls, n_free_calls;
static int counting = 0;

static int count_alloc(void *c, size_t size, size_t align)
{
	n_alloc_calls += counting;
	return real->alloc(c, size, align);
}

static int count_free(void *c, int off)
{
	n_free_calls += counting;
	return real->free(c, off);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);   /* CPU time: a busy machine does not count */
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* eval2's pre-fill (bench/eval_chunk.c): per page a half-page placeholder,
 * the second half in `size` objects, then the placeholders are freed. */
static int prefill(struct driver *d, long n, long size, int unit, int page)
{
	int half = page / 2, pages = unit / page;
	long nchunks = (n * size + unit / 2 - 1) / (unit / 2);
	long *hold = malloc(sizeof(*hold) * (size_t)pages);

	if (!hold || size > half || half % size)
		return -1;
	for (long ci = 0; ci < nchunks; ci++) {
		struct drv_chunk *c = driver_new_chunk(d);

		if (!c)
			return -1;
		for (int p = 0; p < pages; p++) {
			hold[p] = driver_alloc_in(d, c, (size_t)half, 4);
			for (long off = half; off < page; off += size)
				if (driver_alloc_in(d, c, (size_t)size, 4) < 0)
					return -1;
		}
		for (int p = 0; p < pages; p++)
			driver_free(d, hold[p]);
	}
	free(hold);
	return 0;
}

/* The measured phases (what callgrind --toggle-collect names). */
static int __attribute__((noinline)) alloc_phase(struct driver *d, long *h, long n, long size)
{
	for (long i = 0; i < n; i++)
		if ((h[i] = driver_alloc(d, (size_t)size, 4)) < 0)
			return fprintf(stderr, "allocation %ld failed\n", i), 1;
	return 0;
}

/* Frees in order, or as CHUNK_INSNS_ORDER says: alternating (even indexes,
 * then odd) or reverse. */
static int __attribute__((noinline)) free_phase(struct driver *d, const long *h, long n)
{
	const char *order = getenv("CHUNK_INSNS_ORDER");
	bool alt = order && !strcmp(order, "alternating"), rev = order && !strcmp(order, "reverse");

	for (long k = 0; k < n; k++) {
		long i = rev ? n - 1 - k : !alt ? k : k < (n + 1) / 2 ? 2 * k : 2 * (k - (n + 1) / 2) + 1;

		if (driver_free(d, h[i]) < 0)
			return fprintf(stderr, "free %ld failed\n", i), 1;
	}
	return 0;
}

/* One measurement of `side` (fresh driver, as pcpu-bench's measure()). */
static int run_once(const char *eval, const struct inchunk_ops *side, long size, long n, long *h,
		    const struct driver_cfg *cfg)
{
	struct inchunk_ops ops = *side;
	struct driver *d;

	real = side;
	ops.alloc = count_alloc;
	ops.free = count_free;
	d = driver_create(&ops, cfg);
	if (!d)
		return 1;
	if (!strcmp(eval, "eval2") && prefill(d, n, size, cfg->unit_bytes, cfg->page_size)) {
		fprintf(stderr, "prefill failed\n");
		return 1;
	}
	n_alloc_calls = n_free_calls = 0;
	counting = 1;
	double t0 = now_ms();

	if (alloc_phase(d, h, n, size))
		return 1;
	double t1 = now_ms();

	if (free_phase(d, h, n))
		return 1;
	double t2 = now_ms();

	counting = 0;
	printf("%s %s %ldB n=%ld: alloc_calls %ld free_calls %ld chunks %d alloc_ms %.2f free_ms %.2f\n",
	       eval, side->name, size, n, n_alloc_calls, n_free_calls, driver_nr_chunks(d), t1 - t0,
	       t2 - t1);
	driver_destroy(d);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5 || (strcmp(argv[1], "eval1") && strcmp(argv[1], "eval2"))) {
		fprintf(stderr, "usage: %s eval1|eval2 SIZE N areamap|bitmap|both [UNIT_KB [UNITS]]\n",
			argv[0]);
		return 2;
	}
	long size = atol(argv[2]), n = atol(argv[3]);
	int unit_kb = argc > 5 ? atoi(argv[5]) : 256, units = argc > 6 ? atoi(argv[6]) : 2;
	int rounds = getenv("CHUNK_INSNS_ROUNDS") ? atoi(getenv("CHUNK_INSNS_ROUNDS")) : 1;
	struct driver_cfg cfg = { .unit_bytes = unit_kb * 1024, .page_size = (int)sysconf(_SC_PAGESIZE),
				  .nr_units = units, .sideline = true,
				  .no_zero = getenv("CHUNK_INSNS_NOZERO") != NULL };
	long *h = malloc(sizeof(*h) * (size_t)n);
	bool both = !strcmp(argv[4], "both");

	if (!h || size < 1 || n < 1)
		return 1;
	if (getenv("CHUNK_INSNS_FIXED"))
		bench_fixed_conditions();
	if (getenv("CHUNK_INSNS_POOL") &&
	    driver_pool_prepare(&cfg, (n * size * (strcmp(argv[1], "eval2") ? 1 : 2) + cfg.unit_bytes - 1) /
					      cfg.unit_bytes + 2))
		return 1;
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < (both ? 2 : 1); k++) {
			bool am = both ? (r + k) % 2 == 0 : !strcmp(argv[4], "areamap");

			if (run_once(argv[1], am ? &inchunk_areamap_ops : &inchunk_bitmap_ops, size, n, h, &cfg))
				return 1;
		}
	}
	free(h);
	return 0;
}
