/*
 * test_stats.c - statistics, the printed report and the debugging
 * environment variables.
 *
 *   - pcpu_stats_get against counts this test keeps itself over a random
 *     workload (allocations of random size, alignment and flags, frees,
 *     invalid requests), checked every few dozen steps;
 *   - pcpu_stats_print parsed back: every section and field present, the
 *     global numbers equal to pcpu_stats_get, the size histogram equal to
 *     the test's own, and every chunk block equal to what the test computes
 *     from its live allocations (count, sizes, free space, fragmentation,
 *     longest free run, empty populated pages);
 *   - pcpu_layout_print: the sizes line and every CPU exactly once;
 *   - PCPU_STATS=path (with %p) and PCPU_STATS=1 print the report at exit,
 *     PCPU_VERIFY=1 aborts with the report when an invariant breaks, and the
 *     variables are read once, at initialisation.
 *
 * Scenarios needing their own environment run in forked children started
 * before this process initialises the allocator.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "bitops.h"
#include "cache_bins.h"
#include "pool_init.h"
#include "pool_verify.h"
#include "kit.h"
#include "percpu.h"

/* ---- the report, parsed ------------------------------------------------- */

#define LINE_MAX_ 160

struct kv {
	char name[LINE_MAX_];
	char val[LINE_MAX_];
};

struct section {
	char title[LINE_MAX_];
	struct kv kv[40];
	int n;
};

struct report {
	struct section sec[128];
	int n;
	bool header;            /* first line "Percpu Memory Statistics" */
	int bad_lines;          /* lines that fit no expected shape */
};

static struct report rep;

static void parse_report(const char *text)
{
	const char *line = text;

	memset(&rep, 0, sizeof(rep));
	rep.header = strncmp(text, "Percpu Memory Statistics\n", 25) == 0;
	if (rep.header)
		line += 25;
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[LINE_MAX_];

		snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
		line += len + (nl != NULL);
		if (!buf[0] || strspn(buf, "-") == strlen(buf))
			continue;
		if (buf[0] != ' ') {                 /* a section title */
			if (rep.n == (int)(sizeof(rep.sec) / sizeof(rep.sec[0]))) {
				rep.bad_lines++;
				continue;
			}
			snprintf(rep.sec[rep.n++].title, sizeof(rep.sec[0].title), "%s", buf);
			continue;
		}
		char *colon = strchr(buf, ':');
		struct section *s = rep.n ? &rep.sec[rep.n - 1] : NULL;

		if (!colon || !s || s->n == 40 || strncmp(buf, "  ", 2)) {
			rep.bad_lines++;
			continue;
		}
		*colon = '\0';
		char *name = buf + 2, *val = colon + 1, *end = colon - 1;

		while (end > name && *end == ' ')
			*end-- = '\0';
		while (*val == ' ')
			val++;
		snprintf(s->kv[s->n].name, sizeof(s->kv[0].name), "%s", name);
		snprintf(s->kv[s->n].val, sizeof(s->kv[0].val), "%s", val);
		s->n++;
	}
}

static const struct section *find_section(const char *title)
{
	for (int i = 0; i < rep.n; i++)
		if (strcmp(rep.sec[i].title, title) == 0)
			return &rep.sec[i];
	return NULL;
}

/* The numeric value of field name in s; sets *ok false if absent or not a number. */
static long long field(const struct section *s, const char *name, bool *ok)
{
	for (int i = 0; s && i < s->n; i++) {
		if (strcmp(s->kv[i].name, name) == 0) {
			char *end;
			long long v = strtoll(s->kv[i].val, &end, 10);

			if (*end || end == s->kv[i].val)
				break;
			return v;
		}
	}
	*ok = false;
	return -1;
}

static char *capture_report(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	REQUIRE(f, "open_memstream");
	pcpu_stats_print(f);
	fclose(f);
	return buf;
}

/* ---- the test's own model ------------------------------------------------ */

#define MAX_LIVE 4096

struct obj {
	void *h;
	size_t size;
	const struct pcpu_chunk *ch;
	int off;                /* byte offset in the chunk */
};

static struct obj live[MAX_LIVE];
static int nr_live;
static bool caches_on;          /* the workload runs with the per-CPU caches */

static struct {
	uint64_t nr_alloc, nr_dealloc, max_cur, fail, atomic_fail, passes;
	size_t min_size, max_size;
	uint64_t hist[PCPU_SIZE_HIST_BUCKETS];
	size_t chunk_max[1024];       /* by chunk index; [1023]: reserved */
} model;

static int model_key(const struct pcpu_chunk *ch)
{
	return ch == pcpu_pool.reserved_chunk ? 1023 : ch->index;
}

static int log2_floor(size_t v)
{
	int b = 0;

	while (v >>= 1)
		b++;
	return b;
}

static void do_alloc(void)
{
	static const size_t aligns[] = { 4, 8, 16, 64, 256 };
	size_t size = rng_below(8) ? 1 + rng_below(128) : 1 + rng_below(6000);
	size_t align = aligns[rng_below(5)];
	unsigned flags = PCPU_NOWARN;
	struct obj *o;
	int off;

	if (rng_below(20) == 0)
		flags |= PCPU_RESERVED;
	else if (rng_below(4) == 0)
		flags |= PCPU_ATOMIC;
	if (nr_live == MAX_LIVE)
		return;
	o = &live[nr_live];
	o->h = pcpu_alloc_flags(size, align, flags);
	if (!o->h) {
		CHECK(errno == ENOMEM, "size %zu flags %#x: errno %d", size, flags, errno);
		model.fail++;
		model.atomic_fail += (flags & PCPU_ATOMIC) && !(flags & PCPU_RESERVED);
		return;
	}
	o->size = (size + 3) & ~(size_t)3;
	o->ch = pool_handle_chunk(o->h, &off);
	o->off = off;
	REQUIRE(o->ch, "handle %p has no chunk", o->h);
	CHECK(pcpu_alloc_size(o->h) == o->size, "pcpu_alloc_size %zu, want %zu",
	      pcpu_alloc_size(o->h), o->size);
	nr_live++;
	model.nr_alloc++;
	if ((uint64_t)nr_live > model.max_cur)
		model.max_cur = (uint64_t)nr_live;
	if (!model.min_size || o->size < model.min_size)
		model.min_size = o->size;
	if (o->size > model.max_size)
		model.max_size = o->size;
	model.hist[log2_floor(o->size)]++;
	if (o->size > model.chunk_max[model_key(o->ch)])
		model.chunk_max[model_key(o->ch)] = o->size;
}

static void do_free(int i)
{
	pcpu_free(live[i].h);
	live[i] = live[--nr_live];
	model.nr_dealloc++;
}

static void check_stats(const char *when)
{
	struct pcpu_stats st;
	uint64_t created_minus_destroyed;
	int table = 0;

	REQUIRE(pcpu_stats_get(&st) == 0, "pcpu_stats_get");
	CHECK(st.nr_alloc == model.nr_alloc, "%s: nr_alloc %llu, want %llu", when,
	      (unsigned long long)st.nr_alloc, (unsigned long long)model.nr_alloc);
	CHECK(st.nr_dealloc == model.nr_dealloc, "%s: nr_dealloc", when);
	CHECK(st.nr_cur_alloc == (uint64_t)nr_live, "%s: nr_cur_alloc %llu, want %d", when,
	      (unsigned long long)st.nr_cur_alloc, nr_live);
	if (caches_on)          /* peaks inside the caches alone may be missed */
		CHECK(st.nr_max_alloc >= (uint64_t)nr_live && st.nr_max_alloc <= model.max_cur,
		      "%s: nr_max_alloc %llu, live %d, true peak %llu", when,
		      (unsigned long long)st.nr_max_alloc, nr_live, (unsigned long long)model.max_cur);
	else
		CHECK(st.nr_max_alloc == model.max_cur, "%s: nr_max_alloc", when);
	CHECK(st.nr_alloc_fail == model.fail, "%s: nr_alloc_fail %llu, want %llu", when,
	      (unsigned long long)st.nr_alloc_fail, (unsigned long long)model.fail);
	CHECK(st.nr_atomic_fail == model.atomic_fail, "%s: nr_atomic_fail", when);
	CHECK(st.min_alloc_size == model.min_size && st.max_alloc_size == model.max_size,
	      "%s: min/max size %zu/%zu, want %zu/%zu", when, st.min_alloc_size,
	      st.max_alloc_size, model.min_size, model.max_size);
	CHECK(memcmp(st.size_hist, model.hist, sizeof(model.hist)) == 0, "%s: size histogram", when);
	CHECK(st.nr_balance_passes == model.passes, "%s: nr_balance_passes", when);
	for (int i = 1; i < pcpu_pool.chunk_hiwater; i++)
		table += pcpu_pool.chunk_table[i] != NULL;
	created_minus_destroyed = st.nr_chunks_created - st.nr_chunks_destroyed;
	CHECK(st.nr_chunks == (uint32_t)table && created_minus_destroyed == st.nr_chunks &&
	      st.nr_max_chunks >= st.nr_chunks, "%s: nr_chunks %u, table %d, created %llu destroyed %llu",
	      when, st.nr_chunks, table, (unsigned long long)st.nr_chunks_created,
	      (unsigned long long)st.nr_chunks_destroyed);
	CHECK(st.nr_units == (unsigned)pcpu_pool.layout->nr_units && st.unit_size == pcpu_pool.unit_size &&
	      st.page_size == pcpu_pool.page_size, "%s: layout fields", when);
}

static int cmp_obj_off(const void *a, const void *b)
{
	const struct obj *x = *(const struct obj *const *)a, *y = *(const struct obj *const *)b;

	return (x->off > y->off) - (x->off < y->off);
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

/* Compare one "Chunk:" block with the model of ch's live allocations. */
static void check_chunk_block(const struct pcpu_chunk *ch, const struct section *s, bool exact_max)
{
	const struct chunk *c = ch->map;
	const struct obj *objs[MAX_LIVE];
	size_t sizes[MAX_LIVE], sum = 0;
	int n = 0, start = c->start_bits * 4, end = c->end_bits * 4, page = (int)pcpu_pool.page_size;
	long long sum_frag = 0, max_frag = 0, contig = 0, first_free = -1, empty_pop = 0;
	bool ok = true;

	for (int i = 0; i < nr_live; i++)
		if (live[i].ch == ch)
			objs[n++] = &live[i];
	qsort(objs, (size_t)n, sizeof(objs[0]), cmp_obj_off);
	for (int i = 0, pos = start; i <= n; i++) {
		int next = i < n ? objs[i]->off : end;
		long long gap = next - pos;

		if (gap > 0 && first_free < 0)
			first_free = pos;
		if (gap > contig)
			contig = gap;
		if (i < n && gap > 0) {
			sum_frag += gap;
			max_frag = gap > max_frag ? gap : max_frag;
		}
		if (i < n) {
			sizes[i] = objs[i]->size;
			sum += objs[i]->size;
			pos = objs[i]->off + (int)objs[i]->size;
		}
	}
	for (int p = 0; p < c->nr_pages; p++) {
		bool used = p * page < start || (p + 1) * page > end;

		for (int i = 0; i < n && !used; i++)
			used = objs[i]->off < (p + 1) * page && objs[i]->off + (int)objs[i]->size > p * page;
		empty_pop += !used && bit_test(c->populated, (size_t)p);
	}
	qsort(sizes, (size_t)n, sizeof(sizes[0]), cmp_size);

#define EQ(name, want) do {                                                          \
		bool ok_ = true;                                                     \
		long long got_ = field(s, name, &ok_);                               \
		CHECK(ok_ && got_ == (long long)(want), "%s: %s = %lld, want %lld%s", \
		      s->title, name, got_, (long long)(want), ok_ ? "" : " (missing)"); \
	} while (0)
	EQ("nr_alloc", n);
	EQ("free_size", end - start - (long long)sum);
	EQ("contig_hint", contig);
	EQ("sum_frag", sum_frag);
	EQ("max_frag", max_frag);
	EQ("cur_min_alloc", n ? sizes[0] : 0);
	EQ("cur_med_alloc", n ? sizes[(n - 1) / 2] : 0);
	EQ("cur_max_alloc", n ? sizes[n - 1] : 0);
	EQ("empty_pop_pages", empty_pop);
	EQ("nr_pages", c->nr_pages);
	EQ("nr_populated", c->nr_populated);
	if (first_free >= 0)
		EQ("first_free_block", first_free / page);
	long long max_alloc = field(s, "max_alloc_size", &ok);

	CHECK(ok && max_alloc >= (n ? (long long)sizes[n - 1] : 0) &&
	      max_alloc <= (long long)model.max_size, "%s: max_alloc_size %lld", s->title, max_alloc);
	if (exact_max && !caches_on)   /* a cache's refill batch counts as served */
		EQ("max_alloc_size", model.chunk_max[model_key(ch)]);
	EQ("nr_cached", 0);     /* check_report drains the caches first */
#undef EQ
	CHECK(s->n == 15 && s->kv[14].val[0] && !strcmp(s->kv[14].name, "state"),
	      "%s: %d fields, the last one state", s->title, s->n);
}

static void check_report(bool exact_max)
{
	static const char *const info[] = { "unit_size", "static_size", "reserved_size", "dyn_size",
		"atom_size", "alloc_size", "page_size", "nr_units", "nr_groups" };
	static const char *const global[] = { "nr_alloc", "nr_dealloc", "nr_cur_alloc",
		"nr_max_alloc", "nr_alloc_fail", "nr_atomic_fail", "nr_chunks", "nr_max_chunks",
		"min_alloc_size", "max_alloc_size", "nr_empty_pop_pages", "nr_populated_pages",
		"nr_chunks_created", "nr_chunks_destroyed", "nr_pages_populated",
		"nr_pages_depopulated", "nr_balance_passes", "nr_balance_populated",
		"nr_balance_depopulated", "nr_cached", "cached_bytes", "cache_limit_bytes",
		"nr_cache_hits", "nr_cache_refills", "nr_cache_drains", "nr_populate_calls",
		"nr_depopulate_calls", "nr_mprotect_calls", "balance_ns", "nr_alloc_prezeroed",
		"decay_ms" };
	struct pcpu_stats st;
	char *text;
	const struct section *s;
	uint64_t hist_sum = 0;
	int nr_chunks = 0;
	long long chunk_allocs = 0;

	/* Cached objects sit in the chunks' maps; the model knows only live
	 * ones: give them back first (nothing a user sees changes). */
	pool_drain_clients(true, 0);
	REQUIRE(pcpu_stats_get(&st) == 0, "stats");
	CHECK(st.nr_cached == 0 && st.cached_bytes == 0, "caches drained");
	/* Four CPUs, each with a cache and a spare. */
	CHECK(st.cache_limit_bytes == (caches_on ? (1 + CACHE_SPARES) * 4ull * (32 << 10) : 0), "cache limit %llu",
	      (unsigned long long)st.cache_limit_bytes);
	text = capture_report();
	parse_report(text);
	CHECK(rep.header && rep.bad_lines == 0, "report shape: header %d, %d bad lines", rep.header,
	      rep.bad_lines);
	s = find_section("Allocation Info:");
	CHECK(s && s->n == 9, "Allocation Info: %d fields", s ? s->n : -1);
	const unsigned long long info_want[] = { st.unit_size, st.static_size, st.reserved_size,
		st.dyn_size, st.atom_size, st.alloc_size, st.page_size, st.nr_units, st.nr_groups };
	for (size_t i = 0; i < sizeof(info) / sizeof(info[0]); i++) {
		bool ok = true;
		long long v = field(s, info[i], &ok);

		CHECK(ok && (unsigned long long)v == info_want[i], "%s = %lld", info[i], v);
	}
	s = find_section("Global Stats:");
	CHECK(s && s->n == 31, "Global Stats: %d fields", s ? s->n : -1);
	const uint64_t global_want[] = { st.nr_alloc, st.nr_dealloc, st.nr_cur_alloc,
		st.nr_max_alloc, st.nr_alloc_fail, st.nr_atomic_fail, st.nr_chunks, st.nr_max_chunks,
		st.min_alloc_size, st.max_alloc_size, st.nr_empty_pop_pages, st.nr_populated_pages,
		st.nr_chunks_created, st.nr_chunks_destroyed, st.nr_pages_populated,
		st.nr_pages_depopulated, st.nr_balance_passes, st.nr_balance_populated,
		st.nr_balance_depopulated, st.nr_cached, st.cached_bytes, st.cache_limit_bytes,
		st.nr_cache_hits, st.nr_cache_refills, st.nr_cache_drains, st.nr_populate_calls,
		st.nr_depopulate_calls, st.nr_mprotect_calls, st.balance_ns, st.nr_alloc_prezeroed,
		(uint64_t)st.decay_ms };
	for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++) {
		bool ok = true;
		long long v = field(s, global[i], &ok);

		CHECK(ok && (uint64_t)v == global_want[i], "%s = %lld, want %llu", global[i], v,
		      (unsigned long long)global_want[i]);
	}
	s = find_section("Allocation Sizes:");
	CHECK(s != NULL, "Allocation Sizes section");
	for (int i = 0; s && i < s->n; i++) {
		unsigned long long lo, hi, count = strtoull(s->kv[i].val, NULL, 10);
		int b = sscanf(s->kv[i].name, "%llu-%llu", &lo, &hi) == 2 ? log2_floor(lo) : -1;

		CHECK(b >= 0 && lo == 1ULL << b && hi == 2 * lo - 1 && count == st.size_hist[b],
		      "size line %s: %s", s->kv[i].name, s->kv[i].val);
		hist_sum += count;
	}
	CHECK(hist_sum == st.nr_alloc, "size lines sum to %llu, nr_alloc %llu",
	      (unsigned long long)hist_sum, (unsigned long long)st.nr_alloc);
	CHECK(find_section("Per Chunk Stats:") != NULL, "Per Chunk Stats section");

	for (int i = 0; i < rep.n; i++) {
		bool ok = true;

		if (strncmp(rep.sec[i].title, "Chunk: ", 7))
			continue;
		nr_chunks++;
		chunk_allocs += field(&rep.sec[i], "nr_alloc", &ok);
	}
	CHECK(nr_chunks == (int)st.nr_chunks + 1 + (pcpu_pool.reserved_chunk != NULL),
	      "%d chunk blocks for %u dynamic chunks", nr_chunks, st.nr_chunks);
	CHECK(chunk_allocs == (long long)st.nr_cur_alloc, "chunks hold %lld allocations, %llu live",
	      chunk_allocs, (unsigned long long)st.nr_cur_alloc);
	if (pcpu_pool.reserved_chunk) {
		s = find_section("Chunk: <- Reserved Chunk");
		CHECK(s != NULL, "reserved chunk block");
		if (s)
			check_chunk_block(pcpu_pool.reserved_chunk, s, exact_max);
	}
	for (int i = 0; i < pcpu_pool.chunk_hiwater; i++) {
		char title[64];

		if (!pcpu_pool.chunk_table[i])
			continue;
		snprintf(title, sizeof(title), i ? "Chunk: %d" : "Chunk: %d <- First Chunk", i);
		s = find_section(title);
		CHECK(s != NULL, "block %s", title);
		if (s)
			check_chunk_block(pcpu_pool.chunk_table[i], s, exact_max);
	}
	free(text);
}

/* pcpu_layout_print: the sizes line, then every CPU exactly once. */
static void check_layout(void)
{
	char *buf = NULL, *tok, *save = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	unsigned seen[64] = { 0 }, n = pcpu_nr_cpus();
	char want[64];

	REQUIRE(f, "open_memstream");
	pcpu_layout_print(f);
	fclose(f);
	snprintf(want, sizeof(want), " u%zuK ", pcpu_pool.unit_size >> 10);
	CHECK(!strncmp(buf, "pcpu-alloc: s", 13) && strstr(buf, want) && strstr(buf, " atom="),
	      "layout sizes line: %s", buf);
	char *groups = strchr(buf, '\n');

	for (tok = strtok_r(groups, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		char *end;
		unsigned long cpu = strtoul(tok, &end, 10);

		if (*end == '\0' && end != tok && cpu < 64)
			seen[cpu]++;
	}
	for (unsigned cpu = 0; cpu < n && cpu < 64; cpu++)
		CHECK(seen[cpu] == 1, "cpu %u appears %u times in the layout", cpu, seen[cpu]);
	free(buf);
}

/* ---- the parent's workload ----------------------------------------------- */

/* The model workload; arg 1: with the per-CPU caches (nr_max_alloc may
 * then miss a peak made and undone inside the caches alone). */
static int workload(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 4, .min_unit_size = 64 << 10,
				   .flags = PCPU_CFG_NO_BALANCER | (arg ? 0 : PCPU_CFG_NO_CACHE) };

	caches_on = arg;
	REQUIRE(pcpu_init(&cfg) == 0, "init");
	check_layout();
	check_stats("start");
	check_report(true);
	for (int step = 1; step <= 12000; step++) {
		unsigned r = (unsigned)rng_below(100);

		if (r < 3) {   /* invalid requests count nowhere */
			CHECK(!pcpu_alloc_flags(r ? 0 : 8, 24, PCPU_NOWARN) && errno == EINVAL, "EINVAL");
		} else if ((int)r < 55 + (step / 2000 % 2 ? 20 : -20) || !nr_live) {
			do_alloc();
		} else {
			do_free((int)rng_below((uint64_t)nr_live));
		}
		if (step % 53 == 0)
			check_stats("workload");
		if (step % 1500 == 0)
			check_report(true);
	}
	check_report(true);
	/* Free most, balance (chunks may be destroyed), check again. */
	while (nr_live > 40)
		do_free((int)rng_below((uint64_t)nr_live));
	CHECK(pcpu_balance() == 0, "balance");
	model.passes++;
	check_stats("after balance");
	check_report(false);
	CHECK(pcpu_verify() == 0, "verify");
	if (caches_on) {
		struct pcpu_stats st;

		CHECK(pcpu_stats_get(&st) == 0 && st.nr_cache_hits > 0 && st.nr_cache_refills > 0 &&
		      st.nr_cache_drains > 0, "the caches were used");
	}
	printf("model workload %s caches: %llu allocations checked\n", arg ? "with" : "without",
	       (unsigned long long)model.nr_alloc);
	return 0;
}

/* ---- environment variables, in children ---------------------------------- */

static char tmpdir[] = "/tmp/pcpu-test-stats-XXXXXX";

/* What run_child's child runs, and with which PCPU_STATS and PCPU_VERIFY. */
static struct {
	void (*fn)(void);
	const char *stats, *verify;
} g_env;

static int child_with_env(long arg)
{
	(void)arg;
	g_env.stats ? setenv("PCPU_STATS", g_env.stats, 1) : unsetenv("PCPU_STATS");
	g_env.verify ? setenv("PCPU_VERIFY", g_env.verify, 1) : unsetenv("PCPU_VERIFY");
	g_env.fn();
	exit(check_failed ? 1 : 0);   /* exit, not _exit: atexit handlers run */
}

/* Run fn in a forked child with the given environment (NULL: unset). */
static struct kit_child *run_child(void (*fn)(void), const char *stats, const char *verify)
{
	g_env.fn = fn, g_env.stats = stats, g_env.verify = verify;
	return kit_fork(child_with_env, 0, 0, 0);
}

static void child_small_workload(void)
{
	void *h[300];

	for (int i = 0; i < 300; i++)
		h[i] = pcpu_alloc(4 + 4 * (i % 9), 4);
	for (int i = 0; i < 300; i += 3)
		pcpu_free(h[i]);
	/* The switches were read at initialisation. */
	if (getenv("PCPU_VERIFY") && !(pcpu_pool.debug & POOL_DEBUG_VERIFY))
		_exit(3);
	if (!getenv("PCPU_VERIFY") && (pcpu_pool.debug & POOL_DEBUG_VERIFY))
		_exit(4);
	setenv("PCPU_VERIFY", "1", 1);          /* too late: no effect */
	pcpu_free(h[1]);
}

static void child_corrupt(void)
{
	void *h = pcpu_alloc(16, 8);

	pcpu_free(h);
	pcpu_lock(&pcpu_pool.lock);
	pcpu_pool.stats.nr_dealloc += 5;             /* an invariant pcpu_verify checks */
	pcpu_unlock(&pcpu_pool.lock);
	pcpu_alloc(16, 8);                      /* must abort in the PCPU_VERIFY hook */
	_exit(5);
}

static void check_env(void)
{
	char stats[256], path[256];
	struct kit_child *c;
	char *text;

	/* PCPU_STATS=path with %p, PCPU_VERIFY=1: report appended to the file. */
	snprintf(stats, sizeof(stats), "%s/stats-%%p.txt", tmpdir);
	c = run_child(child_small_workload, stats, "1");
	KIT_EXPECT(c, KIT_EXIT(0), "PCPU_STATS=path child");
	snprintf(path, sizeof(path), "%s/stats-%ld.txt", tmpdir, (long)c->pid);
	text = kit_read_file(path);
	CHECK(text && strstr(text, "libpercpu: statistics of process ") &&
	      strstr(text, "Percpu Memory Statistics\n"), "report file written at exit");
	if (text) {
		char *body = strstr(text, "Percpu Memory Statistics\n");
		bool ok = true;

		parse_report(body ? body : text);
		CHECK(rep.header && rep.bad_lines == 0, "file report parses");
		CHECK(field(find_section("Global Stats:"), "nr_alloc", &ok) == 300 &&
		      field(find_section("Global Stats:"), "nr_dealloc", &ok) == 101 && ok,
		      "file report counts");
		unlink(path);
	}
	free(text);
	CHECK(!strstr(c->err, "Percpu Memory Statistics"), "nothing on stderr: %s", c->err);

	/* PCPU_STATS=1: the report on stderr. */
	c = run_child(child_small_workload, "1", NULL);
	KIT_EXPECT(c, KIT_EXIT(0), "PCPU_STATS=1 child");
	CHECK(strstr(c->err, "Percpu Memory Statistics\n") &&
	      strstr(c->err, "  nr_dealloc            :          101\n"), "stderr report");

	/* Neither set: silent. */
	c = run_child(child_small_workload, NULL, NULL);
	KIT_EXPECT(c, KIT_EXIT(0), "plain child");
	CHECK(c->err[0] == '\0', "plain child wrote to stderr: %s", c->err);

	/* PCPU_VERIFY=1 and a broken invariant: abort with the report. */
	c = run_child(child_corrupt, "0", "1");
	KIT_EXPECT(c, KIT_SIGNAL(SIGABRT), "corrupt child");
	CHECK(strstr(c->err, "pcpu_verify: live allocations") &&
	      strstr(c->err, "PCPU_VERIFY: invariant broken after pcpu_alloc() = 0x") &&
	      strstr(c->err, "Percpu Memory Statistics\n") && strstr(c->err, "Per Chunk Stats:"),
	      "corrupt child's stderr: %s", c->err);
}

int main(int argc, char **argv)
{
	test_seed(argc, argv);
	REQUIRE(mkdtemp(tmpdir), "mkdtemp");
	check_env();
	rmdir(tmpdir);
	KIT_EXPECT(kit_fork(workload, 0, rng_state, 0), KIT_EXIT(0), "model workload without caches");
	KIT_EXPECT(kit_fork(workload, 1, rng_state, 0), KIT_EXIT(0), "model workload with caches");
	TEST_DONE();
}
