/*
 * test_layout.c - tests for the unit/group layout builder (src/layout.c).
 *
 * Topologies are fabricated through cpu_distance / cpu_node callbacks (and,
 * for the default NUMA path, through a fake sysfs tree fed to
 * os_topology_reload).  Every layout is checked against the full list of
 * invariants in check_layout(); a few hand-computed cases pin the exact upa
 * choice; a seeded random sweep covers the rest.
 *
 * Usage: test_layout [seed]   (or PCPU_SEED=seed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kit.h"
#include "layout.h"
#include "os.h"

static const char *cur_case = "";

/* every check names the topology case it ran in */
#define CHK(cond) CHECK(cond, "[%s]", cur_case)

/* ---- fabricated topologies -------------------------------------------- */

#define MAXC 64
static int node_of[MAXC];               /* node of each CPU */
static int ndist[8][8];                 /* node distance matrix */
static int asym_a = -1, asym_b = -1;    /* cpu_distance(a, b) is remote */

static int dist_nodes(unsigned a, unsigned b)
{
	if ((int)a == asym_a && (int)b == asym_b)
		return 20;
	return ndist[node_of[a]][node_of[b]];
}

static int node_cb(unsigned cpu)
{
	return node_of[cpu];
}

static int odd_even_node(unsigned cpu)
{
	return (int)(cpu & 1);
}

static int negative_node(unsigned cpu)
{
	(void)cpu;
	return -5;
}

/* 0-1 local, 1-2 local, 0-2 remote: locality that is not transitive. */
static int dist_chain(unsigned a, unsigned b)
{
	unsigned d = a > b ? a - b : b - a;

	return d <= 1 ? 10 : 20;
}

static void set_symmetric_nodes(int nr_nodes)
{
	for (int i = 0; i < 8; i++)
		for (int j = 0; j < 8; j++)
			ndist[i][j] = i == j ? 10 : 20 + 2 * (i > j ? i - j : j - i);
	(void)nr_nodes;
	asym_a = asym_b = -1;
}

/* ---- invariants -------------------------------------------------------- */

static size_t eff_min_unit(const struct layout_params *p)
{
	return p->min_unit_size ? p->min_unit_size : LAYOUT_DEFAULT_MIN_UNIT;
}

/* Parse layout_print output: every CPU once, "--" for every unused unit. */
static void check_print(const struct layout *l)
{
	char *buf = NULL, *save = NULL, *tok;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int *seen = calloc(l->nr_cpus, sizeof(int));
	int unused = 0, tags = 0, bogus = 0, lines = 0;

	CHK(f != NULL && seen != NULL);
	if (!f || !seen) {
		free(seen);
		return;
	}
	layout_print(l, f);
	fclose(f);
	CHK(!strncmp(buf, "pcpu-alloc: s", 13));
	CHK(strstr(buf, " alloc=") && strstr(buf, " atom=") && strstr(buf, " u"));
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *s2 = NULL;

		CHK(!strncmp(line, "pcpu-alloc:", 11));
		if (lines++ == 0)
			continue;
		for (tok = strtok_r(line + 11, " ", &s2); tok; tok = strtok_r(NULL, " ", &s2)) {
			char *end;
			unsigned long v;

			if (tok[0] == '[') {
				tags++;
			} else if (tok[0] == '-' && tok[1] == '-') {
				unused++;
			} else {
				v = strtoul(tok, &end, 10);
				if (*end || v >= l->nr_cpus)
					bogus++;
				else
					seen[v]++;
			}
		}
	}
	CHK(bogus == 0);
	CHK(unused == l->nr_units - (int)l->nr_cpus);
	CHK(tags == l->nr_units / l->upa);
	for (unsigned c = 0; c < l->nr_cpus; c++)
		CHK(seen[c] == 1);
	free(seen);
	free(buf);
}

/*
 * Everything layout.h promises.  dist may be NULL (default NUMA distance);
 * nodes, when given, is the node of every CPU as the test defined it.
 */
static void check_layout(const struct layout *l, const struct layout_params *p,
			 int (*dist)(unsigned, unsigned), const int *nodes)
{
	size_t ps = p->page_size ? p->page_size : os_page_size();
	size_t atom = p->atom_size ? p->atom_size : ps;
	unsigned n = p->nr_cpus;
	int *units_seen, *cpu_seen, total = 0, used = 0;
	size_t base = 0;

	if (atom < ps)
		atom = ps;
	CHK(l != NULL);
	if (!l)
		return;
	CHK(l->nr_cpus == n);
	CHK(l->page_size == ps && l->atom_size == atom);
	CHK(l->static_size == p->static_size && l->reserved_size == p->reserved_size);
	CHK(l->dyn_size >= p->dyn_size && l->dyn_size - p->dyn_size < ps);
	CHK((l->static_size + l->reserved_size + l->dyn_size) % ps == 0);
	CHK(l->unit_size >= p->static_size + p->reserved_size + p->dyn_size);
	CHK(l->unit_size >= eff_min_unit(p));
	CHK(l->unit_size % ps == 0);
	CHK(l->upa >= 1 && l->alloc_size == (size_t)l->upa * l->unit_size);
	CHK(l->alloc_size % atom == 0);
	CHK(l->nr_groups >= 1 && l->nr_groups <= (int)n);

	units_seen = calloc((size_t)l->nr_units + 1, sizeof(int));
	cpu_seen = calloc(n, sizeof(int));
	if (!units_seen || !cpu_seen) {
		CHK(!"calloc");
		free(units_seen);
		free(cpu_seen);
		return;
	}
	for (int g = 0; g < l->nr_groups; g++) {
		const struct layout_group *gi = &l->groups[g];
		unsigned prev = 0;
		int members = 0, tail_unused = 0;

		CHK(gi->nr_units > 0 && gi->nr_units % l->upa == 0);
		CHK(gi->base_offset == base);          /* back to back */
		CHK(gi->base_offset % atom == 0);
		for (int u = 0; u < gi->nr_units; u++) {
			unsigned c = gi->cpu_map[u];

			if (c == LAYOUT_NO_CPU) {
				tail_unused = 1;
				continue;
			}
			CHK(!tail_unused);            /* used units come first */
			CHK(c < n);
			if (c >= n)
				continue;
			CHK(members == 0 || c > prev);  /* CPU order */
			prev = c;
			members++;
			cpu_seen[c]++;
			CHK(l->unit_off[c] == gi->base_offset + (size_t)u * l->unit_size);
			CHK(l->cpu_unit[c] == total + u);
			/* same node / local both ways with every other member */
			for (int v = 0; v < gi->nr_units; v++) {
				unsigned d = gi->cpu_map[v];

				if (d == LAYOUT_NO_CPU || d == c || d >= n)
					continue;
				if (dist)
					CHK(dist(c, d) == 10 && dist(d, c) == 10);
				if (nodes)
					CHK(nodes[c] == nodes[d]);
			}
			if (nodes && p->cpu_node)
				CHK(gi->node == nodes[c]);
		}
		/* padding is less than one allocation */
		CHK(gi->nr_units - members < l->upa);
		used += members;
		total += gi->nr_units;
		base += (size_t)gi->nr_units * l->unit_size;
	}
	CHK(total == l->nr_units);
	CHK(used == (int)n);
	CHK(l->chunk_span == base);
	CHK(l->chunk_span == (size_t)l->nr_units * l->unit_size);
	CHK(4 * (size_t)used >= 3 * (size_t)l->nr_units);      /* >= 75% used */
	for (unsigned c = 0; c < n; c++) {
		CHK(cpu_seen[c] == 1);
		CHK(l->unit_off[c] % ps == 0);
		CHK(l->unit_off[c] + l->unit_size <= l->chunk_span);
		CHK(l->cpu_unit[c] >= 0 && l->cpu_unit[c] < l->nr_units);
		if (l->cpu_unit[c] >= 0 && l->cpu_unit[c] < l->nr_units)
			units_seen[l->cpu_unit[c]]++;
		CHK(l->unit_off[c] == (size_t)l->cpu_unit[c] * l->unit_size);
	}
	for (int u = 0; u < l->nr_units; u++)
		CHK(units_seen[u] <= 1);              /* no shared units */
	check_print(l);
	free(units_seen);
	free(cpu_seen);
}

/* Number of distinct values among nodes[0..n). */
static int distinct_nodes(const int *nodes, unsigned n)
{
	int seen[8] = { 0 }, k = 0;

	for (unsigned c = 0; c < n; c++)
		if (!seen[nodes[c]]++)
			k++;
	return k;
}

/* Build and check a node-based topology; groups must equal nodes. */
static struct layout *run_nodes(struct layout_params *p)
{
	struct layout *l;

	p->cpu_distance = dist_nodes;
	p->cpu_node = node_cb;
	l = layout_build(p);
	check_layout(l, p, dist_nodes, node_of);
	if (l && asym_a < 0)
		CHK(l->nr_groups == distinct_nodes(node_of, p->nr_cpus));
	return l;
}

/* ---- cases ------------------------------------------------------------ */

static void test_single_node(void)
{
	size_t atoms[] = { 0, 16384, 65536, 2u << 20 };

	cur_case = "single node";
	set_symmetric_nodes(1);
	memset(node_of, 0, sizeof(node_of));
	for (unsigned n = 1; n <= MAXC; n++)
		for (size_t a = 0; a < sizeof(atoms) / sizeof(atoms[0]); a++) {
			struct layout_params p = { .nr_cpus = n, .static_size = 4096,
						   .reserved_size = 8192, .dyn_size = 20480,
						   .atom_size = atoms[a], .page_size = 4096 };

			layout_free(run_nodes(&p));
		}
}

/* Hand-computed upa choices (page 4 KiB, min unit 32 KiB). */
static void test_upa_exact(void)
{
	struct layout_params p = { .page_size = 4096, .dyn_size = 20480 };
	struct layout *l;

	set_symmetric_nodes(8);
	/* 4 nodes x 3 CPUs, 2 MiB atom: 16 and 8 waste too much, 4 wastes
	 * 4 <= 12/3, 2 would need more allocations */
	cur_case = "upa 4x3 2M";
	for (int c = 0; c < 12; c++)
		node_of[c] = c / 3;
	p.nr_cpus = 12;
	p.atom_size = 2u << 20;
	l = run_nodes(&p);
	CHK(l && l->upa == 4 && l->unit_size == 512 * 1024 && l->nr_units == 16);
	layout_free(l);

	/* one node of 64 CPUs fills one 2 MiB atom with 32 KiB units */
	cur_case = "upa 1x64 2M";
	memset(node_of, 0, sizeof(node_of));
	p.nr_cpus = 64;
	l = run_nodes(&p);
	CHK(l && l->upa == 64 && l->unit_size == 32 * 1024 && l->nr_units == 64);
	layout_free(l);

	/* one node of 10 CPUs: 8 wastes 6 > 3, 4 wastes 2 */
	cur_case = "upa 1x10 2M";
	p.nr_cpus = 10;
	l = run_nodes(&p);
	CHK(l && l->upa == 4 && l->unit_size == 512 * 1024 && l->nr_units == 12);
	layout_free(l);

	/* default atom (page): upa is always 1, unit is the minimum */
	cur_case = "upa page atom";
	p.atom_size = 0;
	l = run_nodes(&p);
	CHK(l && l->upa == 1 && l->unit_size == 32 * 1024 && l->nr_units == 10);
	layout_free(l);

	/* odd region sizes: dyn grows to the page boundary */
	cur_case = "odd sizes";
	p.static_size = 10000;
	p.reserved_size = 8192;
	p.dyn_size = 20000;
	l = run_nodes(&p);
	CHK(l && l->unit_size == 40960 && l->dyn_size == 40960 - 18192);
	layout_free(l);

	/* min unit above the regions, not a page multiple */
	cur_case = "min unit";
	p.min_unit_size = 100000;
	l = run_nodes(&p);
	CHK(l && l->unit_size == 102400);
	layout_free(l);

	/* atom smaller than a unit: unit rounds to whole atoms */
	cur_case = "atom < unit";
	p.min_unit_size = 48 * 1024;
	p.static_size = p.reserved_size = p.dyn_size = 0;
	p.atom_size = 32 * 1024;
	l = run_nodes(&p);
	CHK(l && l->upa == 1 && l->unit_size == 64 * 1024);
	layout_free(l);
}

/* Nodes of 1, 7, 3 and 5 CPUs: contiguous, then interleaved. */
static void test_uneven(void)
{
	static const int sizes[] = { 1, 7, 3, 5 };
	size_t atoms[] = { 0, 65536, 2u << 20 };
	int c = 0;

	set_symmetric_nodes(4);
	for (int nd = 0; nd < 4; nd++)
		for (int k = 0; k < sizes[nd]; k++)
			node_of[c++] = nd;
	for (size_t a = 0; a < 3; a++) {
		struct layout_params p = { .nr_cpus = 16, .dyn_size = 20480,
					   .atom_size = atoms[a], .page_size = 4096 };

		cur_case = "uneven contiguous";
		layout_free(run_nodes(&p));
		/* shuffle deterministically: same sizes, scattered numbering */
		for (int i = 0; i < 16; i++) {
			int j = (i * 7 + 3) % 16, t = node_of[i];

			node_of[i] = node_of[j];
			node_of[j] = t;
		}
		cur_case = "uneven scattered";
		layout_free(run_nodes(&p));
	}
}

/* 1..8 nodes, 1..64 CPUs, cpu % nodes and sparse node ids. */
static void test_interleaved(void)
{
	set_symmetric_nodes(8);
	for (int nodes = 1; nodes <= 8; nodes++)
		for (unsigned n = 1; n <= MAXC; n += (n < 16 ? 1 : 7)) {
			struct layout_params p = { .nr_cpus = n, .dyn_size = 40960,
						   .atom_size = 2u << 20, .page_size = 4096 };
			struct layout *l;

			cur_case = "cpu % nodes";
			for (unsigned c = 0; c < n; c++)
				node_of[c] = (int)(c % (unsigned)nodes);
			l = run_nodes(&p);
			/* groups follow first appearance: group g is node g */
			for (int g = 0; l && g < l->nr_groups; g++)
				CHK(l->groups[g].node == g);
			layout_free(l);

			/* only ids 7, 3, 0, 5 in use, scattered over the CPUs */
			cur_case = "sparse ids";
			for (unsigned c = 0; c < n; c++) {
				static const int ids[] = { 7, 3, 0, 5 };
				unsigned k = nodes < 4 ? (unsigned)nodes : 4;

				node_of[c] = ids[(c * 5 + c / 4) % k];
			}
			layout_free(run_nodes(&p));
		}
}

static void test_asymmetric(void)
{
	struct layout_params p = { .nr_cpus = 8, .dyn_size = 20480, .page_size = 4096 };
	struct layout *l;

	/* all one node, but 5 -> 2 is remote: 5 cannot share 2's group */
	cur_case = "asymmetric";
	set_symmetric_nodes(1);
	memset(node_of, 0, sizeof(node_of));
	asym_a = 5;
	asym_b = 2;
	l = run_nodes(&p);
	CHK(l && l->nr_groups == 2);
	CHK(l && l->cpu_unit[5] >= l->groups[0].nr_units);
	layout_free(l);
	/* the other direction splits it just the same */
	asym_a = 2;
	asym_b = 5;
	l = run_nodes(&p);
	CHK(l && l->nr_groups == 2);
	layout_free(l);
	asym_a = asym_b = -1;

	/* the caller's node labels disagree with its distances: the group's
	 * node is "unknown" rather than one of them */
	cur_case = "mixed labels";
	p.cpu_distance = dist_nodes;
	p.cpu_node = odd_even_node;
	l = layout_build(&p);
	CHK(l && l->nr_groups == 1 && l->groups[0].node == -1);
	layout_free(l);
	p.cpu_node = negative_node;
	l = layout_build(&p);
	CHK(l && l->nr_groups == 1 && l->groups[0].node == -1);
	layout_free(l);

	/* local is not transitive: 0-1, 1-2 local, 0-2 remote */
	cur_case = "chain";
	p.cpu_distance = dist_chain;
	p.cpu_node = NULL;
	l = layout_build(&p);
	check_layout(l, &p, dist_chain, NULL);
	/* {0,1} {2,3} {4,5} {6,7} */
	CHK(l && l->nr_groups == 4);
	layout_free(l);
}

static void test_bad_params(void)
{
	struct layout_params ok = { .nr_cpus = 4, .dyn_size = 4096, .page_size = 4096 };
	struct layout_params p;
	struct layout *l;

	cur_case = "bad params";
#define BAD(mod) do {                                                   \
		p = ok;                                                 \
		mod;                                                    \
		errno = 0;                                              \
		CHK(layout_build(&p) == NULL && errno == EINVAL);     \
	} while (0)
	BAD(p.nr_cpus = 0);
	BAD(p.nr_cpus = LAYOUT_MAX_CPUS + 1);
	BAD(p.atom_size = 3000);
	BAD(p.atom_size = 3 << 20);
	BAD(p.page_size = 5000);
	BAD(p.static_size = SIZE_MAX);
	BAD((p.static_size = SIZE_MAX / 2 + 1, p.reserved_size = SIZE_MAX / 2 + 1));
	BAD((p.reserved_size = SIZE_MAX - 10, p.dyn_size = 11));
	BAD(p.min_unit_size = SIZE_MAX - 5);
	BAD(p.static_size = SIZE_MAX / 4 + 1);  /* 4 units overflow the span */
#undef BAD
	errno = 0;
	CHK(layout_build(NULL) == NULL && errno == EINVAL);
	layout_free(NULL);

	/* atom below the page size means the page size */
	p = ok;
	p.atom_size = 1024;
	l = layout_build(&p);
	CHK(l && l->atom_size == 4096);
	layout_free(l);
	/* the maximum CPU count is accepted (default distance: cheap) */
	p = ok;
	p.nr_cpus = LAYOUT_MAX_CPUS;
	l = layout_build(&p);
	CHK(l && l->nr_cpus == LAYOUT_MAX_CPUS && l->nr_units >= (int)LAYOUT_MAX_CPUS);
	CHK(l && l->nr_groups <= os_nr_nodes());
	layout_free(l);
}

/* The default (NUMA) path, on the real machine and on a fake sysfs. */
static void test_default_distance(void)
{
	char root[] = "/tmp/pcpu-lsysfs-XXXXXX";
	struct layout_params p = { .dyn_size = 20480 };
	struct layout *l;
	int fake_nodes[12];

	cur_case = "real topology";
	p.nr_cpus = os_possible_cpus();
	l = layout_build(&p);
	check_layout(l, &p, os_cpu_distance, NULL);
	CHK(l && l->nr_groups <= os_nr_nodes());
	layout_free(l);

	cur_case = "fake sysfs";
	static const char *const files[][2] = {
		{ "cpu/possible", "0-11\n" },
		{ "node/online", "0-1,4\n" },
		{ "node/node0/cpulist", "0,3,6,9\n" },
		{ "node/node1/cpulist", "1,4,7,10\n" },
		{ "node/node4/cpulist", "2,5,8,11\n" },
		{ "node/node0/distance", "10 20 30\n" },
		{ "node/node1/distance", "20 10 30\n" },
		{ "node/node4/distance", "30 30 10\n" },
	};
	if (!kit_tree_make(root, files, 8))
		return;
	CHK(os_topology_reload(root) == 0);
	for (int c = 0; c < 12; c++)
		fake_nodes[c] = c % 3 == 2 ? 4 : c % 3;
	p.nr_cpus = 12;
	p.atom_size = 64 * 1024;
	l = layout_build(&p);
	check_layout(l, &p, os_cpu_distance, fake_nodes);
	CHK(l && l->nr_groups == 3);
	for (int g = 0; l && g < l->nr_groups; g++)
		CHK(l->groups[g].node == (g == 2 ? 4 : g));   /* labels from sysfs */
	layout_free(l);
	CHK(os_topology_reload(NULL) == 0);
	kit_tree_remove(root, files, 8);
}

static unsigned rnd(unsigned n)
{
	return (unsigned)rng_below(n);
}

static void test_random(int iters)
{
	static const size_t atoms[] = { 0, 8192, 65536, 1u << 20, 2u << 20, 4u << 20 };
	static const size_t pages[] = { 4096, 16384, 65536 };

	cur_case = "random";
	for (int it = 0; it < iters; it++) {
		unsigned n = 1 + rnd(MAXC), nodes = 1 + rnd(8);
		struct layout_params p = {
			.nr_cpus = n,
			.page_size = pages[rnd(3)],
			.atom_size = atoms[rnd(6)],
			.static_size = rnd(3) ? rnd(100000) : 0,
			.reserved_size = rnd(2) ? rnd(50000) : 0,
			.dyn_size = rnd(200000),
			.min_unit_size = rnd(2) ? rnd(300000) : 0,
		};

		for (int i = 0; i < 8; i++)
			for (int j = 0; j < 8; j++)
				ndist[i][j] = i == j ? 10 : 11 + (int)rnd(30);
		for (unsigned c = 0; c < n; c++)
			node_of[c] = (int)rnd(nodes);
		asym_a = asym_b = -1;
		if (rnd(4) == 0) {
			asym_a = (int)rnd(n);
			asym_b = (int)rnd(n);
		}
		layout_free(run_nodes(&p));
		if (check_failed) {
			fprintf(stderr, "random iteration %d failed (n=%u nodes=%u)\n", it, n, nodes);
			return;
		}
	}
}

int main(int argc, char **argv)
{
	test_seed(argc, argv);          /* seeds rng_below() for test_random */
	test_single_node();
	test_upa_exact();
	test_uneven();
	test_interleaved();
	test_asymmetric();
	test_bad_params();
	test_default_distance();
	test_random(2000);
	printf("test_layout: %s\n", check_failed ? "FAIL" : "PASS");
	TEST_DONE();
}
