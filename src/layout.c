/*
 * layout.c - grouping CPUs by distance and sizing units, groups and chunks.
 *
 * The userspace counterpart of the kernel's first-chunk "alloc info" builder:
 * pure arithmetic over a distance function, no memory system calls, so tests
 * can feed it any fabricated topology.  See layout.h for the vocabulary.
 *
 * Steps:
 *   1. sizes: min_unit = the larger of page-rounded (static + reserved + dyn)
 *      and page-rounded min_unit_size; alloc_size = min_unit rounded up to a
 *      whole number of atoms.
 *   2. groups: CPUs are visited in increasing order; a CPU joins the first
 *      group in which every member is at local distance from it in both
 *      directions, otherwise it opens a new group.
 *   3. upa (units per allocation), see choose_upa().
 *   4. placement: groups back to back from offset 0, each rounded up to a
 *      multiple of upa units.  A group is then a whole number of alloc_size
 *      pieces, and alloc_size is a whole number of atoms, so every group base
 *      is atom aligned with no gaps.  Inside a group CPUs take units in
 *      increasing CPU order; trailing units stay unused.
 */
#include "layout.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "util.h"

/*
 * Distance oracle used while grouping.  With a caller-supplied function every
 * CPU is its own "class" and distances are asked per CPU pair.  With the
 * default (NUMA) distance a CPU's class is its node, so a group need only be
 * checked against one CPU per distinct node it holds rather than against
 * every member -- same answer, O(nodes) instead of O(members) per check.
 */
struct oracle {
	int (*fn)(unsigned, unsigned);  /* NULL: node distances */
	int *klass;                     /* [nr_cpus] node, when fn is NULL */
};

static int is_local(const struct oracle *o, unsigned a, unsigned b)
{
	if (o->fn)
		return o->fn(a, b) == OS_LOCAL_DISTANCE &&
		       o->fn(b, a) == OS_LOCAL_DISTANCE;
	return os_node_distance(o->klass[a], o->klass[b]) == OS_LOCAL_DISTANCE &&
	       os_node_distance(o->klass[b], o->klass[a]) == OS_LOCAL_DISTANCE;
}

/*
 * Assign every CPU a group.  Each group keeps a linked list of
 * "representatives" (CPUs with distinct classes) that a newcomer is tested
 * against.  Fills grp[cpu] and cnt[group]; returns the number of groups or
 * -1 when out of memory.
 */
static int group_cpus(unsigned n, const struct oracle *o, int *grp, int *cnt)
{
	int *rep_next = malloc(n * sizeof(int));
	int *rep_head = malloc(n * sizeof(int));
	int *rep_tail = malloc(n * sizeof(int));
	int nr_groups = 0;

	if (!rep_next || !rep_head || !rep_tail) {
		free(rep_next);
		free(rep_head);
		free(rep_tail);
		return -1;
	}
	for (unsigned cpu = 0; cpu < n; cpu++) {
		int g, dup = 0;

		rep_next[cpu] = -1;
		for (g = 0; g < nr_groups; g++) {
			int ok = 1;

			dup = 0;
			for (int r = rep_head[g]; r >= 0 && ok; r = rep_next[r]) {
				if (!o->fn && o->klass[r] == o->klass[cpu])
					dup = 1;
				ok = is_local(o, cpu, (unsigned)r);
			}
			if (ok)
				break;
		}
		if (g == nr_groups) {
			nr_groups++;
			rep_head[g] = (int)cpu;
			rep_tail[g] = (int)cpu;
			cnt[g] = 0;
		} else if (!dup) {
			rep_next[rep_tail[g]] = (int)cpu;
			rep_tail[g] = (int)cpu;
		}
		grp[cpu] = g;
		cnt[g]++;
	}
	free(rep_next);
	free(rep_head);
	free(rep_tail);
	return nr_groups;
}

/*
 * Units per allocation.  Each group must span a whole number of allocations
 * (alloc_size bytes, which is a whole number of atoms), so a group of c CPUs
 * occupies ceil(c / upa) allocations and leaves the rest of their units
 * unused.  A candidate upa must
 *
 *   - divide alloc_size into page-multiple units at least min_unit bytes
 *     long: alloc_size % upa == 0, (alloc_size / upa) % page == 0 and
 *     upa <= alloc_size / min_unit;
 *   - waste at most a third of the CPU count in unused units:
 *     3 * (sum over groups of ceil(c / upa) * upa  -  nr_cpus) <= nr_cpus,
 *     which is exactly what keeps >= 75% of the units in use.
 *
 * upa = 1 always qualifies (no waste, unit = alloc_size).  The number of
 * allocations, A(upa) = sum of ceil(c / upa), only grows as upa shrinks, so
 * the largest acceptable upa uses the fewest allocations -- the least memory.
 * Among the candidates with that same A we take the smallest upa: the memory
 * spent is identical but each unit is larger, so every chunk offers more room
 * per CPU.  Candidates above nr_cpus * 4 / 3 are never acceptable -- a
 * group holds at least one CPU -- so the search starts there at most.
 *
 * What this means in practice, page and atom being powers of two: with the
 * default atom (one page) alloc_size == min_unit and upa is 1.  With a big
 * atom (say 2 MiB) alloc_size is one atom, every candidate is a power of two,
 * and the tie-break never fires -- keeping A while halving upa would need
 * every group to fit in half an allocation, i.e. waste more than the CPUs
 * used -- so the rule reduces to "the largest power-of-two upa whose padding
 * stays within a third of nr_cpus".  E.g. 4 nodes x 3 CPUs, 32 KiB minimum,
 * 2 MiB atom: 16 and 8 waste 52 and 20 units, 4 wastes 4 <= 12 / 3, so upa
 * = 4 and units are 512 KiB.
 */
static int choose_upa(size_t alloc_size, size_t min_unit, size_t page,
		      unsigned nr_cpus, const int *cnt, int nr_groups)
{
	size_t max_upa = alloc_size / min_unit;
	size_t cap = (size_t)nr_cpus + nr_cpus / 3;
	size_t best_allocs = SIZE_MAX;
	int best = 1;

	if (max_upa > cap)
		max_upa = cap;
	for (size_t upa = max_upa; upa >= 1; upa--) {
		size_t allocs = 0, waste = 0;
		int g;

		if (alloc_size % upa || (alloc_size / upa) % page)
			continue;
		for (g = 0; g < nr_groups; g++) {
			size_t a = ((size_t)cnt[g] + upa - 1) / upa;

			allocs += a;
			waste += a * upa - (size_t)cnt[g];
			if (3 * waste > nr_cpus)
				break;
		}
		if (g < nr_groups)
			continue;               /* too wasteful */
		if (allocs > best_allocs)
			break;                  /* more memory: stop */
		best_allocs = allocs;
		best = (int)upa;
	}
	return best;
}

/* Node label of one CPU, -1 if unknown. */
static int label_node(const struct layout_params *p, unsigned cpu)
{
	int node;

	node = p->cpu_node ? p->cpu_node(cpu) : os_cpu_node(cpu);
	return node < 0 ? -1 : node;
}

void layout_free(struct layout *l)
{
	if (!l)
		return;
	if (l->groups)
		free(l->groups[0].cpu_map);
	free(l->groups);
	free(l->unit_off);
	free(l->cpu_unit);
	free(l);
}

/* Validate parameters and derive page, atom, min_unit and alloc sizes. */
static int compute_sizes(const struct layout_params *p, struct layout *l,
			 size_t *min_unit)
{
	size_t ps = p->page_size ? p->page_size : os_page_size();
	size_t atom = p->atom_size ? p->atom_size : ps;
	size_t mus = p->min_unit_size ? p->min_unit_size : LAYOUT_DEFAULT_MIN_UNIT;
	size_t sum, sum_r, mu;

	if (p->nr_cpus == 0 || p->nr_cpus > LAYOUT_MAX_CPUS ||
	    !pcpu_is_pow2(ps) || !pcpu_is_pow2(atom))
		return -1;
	if (atom < ps)
		atom = ps;
	if (p->static_size > SIZE_MAX - p->reserved_size)
		return -1;
	sum = p->static_size + p->reserved_size;
	if (p->dyn_size > SIZE_MAX - sum)
		return -1;
	sum += p->dyn_size;
	if (!pcpu_align_up_checked(sum, ps, &sum_r) || !pcpu_align_up_checked(mus, ps, &mu))
		return -1;
	*min_unit = sum_r > mu ? sum_r : mu;
	if (!pcpu_align_up_checked(*min_unit, atom, &l->alloc_size))
		return -1;
	l->page_size = ps;
	l->atom_size = atom;
	l->static_size = p->static_size;
	l->reserved_size = p->reserved_size;
	l->dyn_size = sum_r - p->static_size - p->reserved_size;
	l->nr_cpus = p->nr_cpus;
	return 0;
}

/* Allocate the output tables and place every CPU (step 4). */
static int place_units(struct layout *l, const struct layout_params *p,
		       const int *grp, const int *cnt)
{
	unsigned n = l->nr_cpus;
	unsigned *map;
	int *filled;
	size_t unit = 0;

	l->groups = calloc((size_t)l->nr_groups, sizeof(*l->groups));
	map = malloc((size_t)l->nr_units * sizeof(*map));
	l->unit_off = malloc(n * sizeof(*l->unit_off));
	l->cpu_unit = malloc(n * sizeof(*l->cpu_unit));
	filled = calloc((size_t)l->nr_groups, sizeof(*filled));
	if (!l->groups || !map || !l->unit_off || !l->cpu_unit || !filled) {
		free(map);
		free(filled);
		return -1;
	}
	for (int i = 0; i < l->nr_units; i++)
		map[i] = LAYOUT_NO_CPU;
	for (int g = 0; g < l->nr_groups; g++) {
		struct layout_group *gi = &l->groups[g];

		gi->nr_units = (cnt[g] + l->upa - 1) / l->upa * l->upa;
		gi->base_offset = unit * l->unit_size;
		gi->cpu_map = map + unit;
		gi->node = -2;          /* not labelled yet */
		unit += (size_t)gi->nr_units;
	}
	for (unsigned cpu = 0; cpu < n; cpu++) {
		struct layout_group *gi = &l->groups[grp[cpu]];
		int idx = filled[grp[cpu]]++;
		int node = label_node(p, cpu);

		gi->cpu_map[idx] = cpu;
		l->cpu_unit[cpu] = (int)(gi->base_offset / l->unit_size) + idx;
		l->unit_off[cpu] = gi->base_offset + (size_t)idx * l->unit_size;
		if (gi->node == -2)
			gi->node = node;
		else if (gi->node != node)
			gi->node = -1;  /* the caller's nodes disagree with distances */
	}
	free(filled);
	return 0;
}

struct layout *layout_build(const struct layout_params *p)
{
	struct layout *l;
	struct oracle o = { NULL, NULL };
	int *grp = NULL, *cnt = NULL;
	size_t min_unit, units = 0;
	int err = ENOMEM;

	if (!p) {
		errno = EINVAL;
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		goto fail;
	if (compute_sizes(p, l, &min_unit)) {
		err = EINVAL;
		goto fail;
	}
	grp = malloc(l->nr_cpus * sizeof(int));
	cnt = malloc(l->nr_cpus * sizeof(int));
	if (!grp || !cnt)
		goto fail;
	o.fn = p->cpu_distance;
	if (!o.fn) {
		o.klass = malloc(l->nr_cpus * sizeof(int));
		if (!o.klass)
			goto fail;
		for (unsigned cpu = 0; cpu < l->nr_cpus; cpu++)
			o.klass[cpu] = os_cpu_node(cpu);
	}
	l->nr_groups = group_cpus(l->nr_cpus, &o, grp, cnt);
	if (l->nr_groups < 0)
		goto fail;

	l->upa = choose_upa(l->alloc_size, min_unit, l->page_size, l->nr_cpus,
			    cnt, l->nr_groups);
	l->unit_size = l->alloc_size / (size_t)l->upa;
	for (int g = 0; g < l->nr_groups; g++)
		units += ((size_t)cnt[g] + (size_t)l->upa - 1) / (size_t)l->upa * (size_t)l->upa;
	l->nr_units = (int)units;       /* <= nr_cpus * 4 / 3, fits */
	if (units > SIZE_MAX / l->unit_size) {
		err = EINVAL;
		goto fail;
	}
	l->chunk_span = units * l->unit_size;
	if (place_units(l, p, grp, cnt))
		goto fail;
	free(grp);
	free(cnt);
	free(o.klass);
	return l;
fail:
	free(grp);
	free(cnt);
	free(o.klass);
	layout_free(l);
	errno = err;
	return NULL;
}

/* Format a byte count compactly: "64K", "2M", or plain bytes if not even. */
static const char *fmt_size(char *buf, size_t len, size_t v)
{
	if (v && v % (1024 * 1024) == 0)
		snprintf(buf, len, "%zuM", v / (1024 * 1024));
	else if (v && v % 1024 == 0)
		snprintf(buf, len, "%zuK", v / 1024);
	else
		snprintf(buf, len, "%zu", v);
	return buf;
}

static int digits(unsigned long v)
{
	int d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

void layout_print(const struct layout *l, FILE *out)
{
	char b[6][32];
	int gw, cw, per_line, on_line = 0;
	char dashes[16];

	if (!l || !out)
		return;
	fprintf(out, "pcpu-alloc: s%s r%s d%s u%s alloc=%d*%s atom=%s\n",
		fmt_size(b[0], sizeof(b[0]), l->static_size),
		fmt_size(b[1], sizeof(b[1]), l->reserved_size),
		fmt_size(b[2], sizeof(b[2]), l->dyn_size),
		fmt_size(b[3], sizeof(b[3]), l->unit_size), l->upa,
		fmt_size(b[4], sizeof(b[4]), l->unit_size),
		fmt_size(b[5], sizeof(b[5]), l->atom_size));

	/* fixed-width columns: group tags, then CPUs zero-padded like "07" */
	gw = digits(l->nr_groups > 1 ? (unsigned long)l->nr_groups - 1 : 0);
	cw = digits(l->nr_cpus > 1 ? l->nr_cpus - 1 : 0);
	if (cw < 2)
		cw = 2;
	memset(dashes, '-', sizeof(dashes));
	dashes[cw < (int)sizeof(dashes) ? cw : (int)sizeof(dashes) - 1] = '\0';
	/* allocations per line: as many as fit in ~72 columns, a power of two */
	per_line = 72 / (l->upa * (cw + 1) + gw + 3);
	if (per_line < 1)
		per_line = 1;
	while (per_line & (per_line - 1))
		per_line &= per_line - 1;

	for (int g = 0; g < l->nr_groups; g++) {
		const struct layout_group *gi = &l->groups[g];

		for (int u = 0; u < gi->nr_units; u++) {
			if (u % l->upa == 0) {
				if (on_line % per_line == 0)
					fprintf(out, "%spcpu-alloc:", on_line ? "\n" : "");
				fprintf(out, " [%0*d]", gw, g);
				on_line++;
			}
			if (gi->cpu_map[u] == LAYOUT_NO_CPU)
				fprintf(out, " %s", dashes);
			else
				fprintf(out, " %0*u", cw, gi->cpu_map[u]);
		}
	}
	fputc('\n', out);
}
