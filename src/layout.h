/*
 * layout.h - how CPUs map onto units and groups inside every chunk.
 *
 * Every chunk is one contiguous piece of address space holding one unit per
 * CPU slot.  CPUs that are close to each other (local distance both ways,
 * normally: same NUMA node) form a group; a group's units sit next to each
 * other so the group can be bound to its node as one range.  The layout is
 * computed once, at initialisation, and the same cpu -> offset table then
 * serves every chunk: a CPU's copy of an allocation at chunk offset `off` is
 * at chunk_base + unit_off[cpu] + off.
 *
 * Sizes (all in bytes):
 *
 *   unit_size   one CPU's share of a chunk; a multiple of the page size, at
 *               least static + reserved + dyn and at least min_unit_size;
 *   atom_size   the granularity/alignment of the memory groups are carved
 *               from (a large page size, say); every group starts on an atom
 *               boundary and spans a whole number of atoms;
 *   alloc_size  one atom-multiple allocation = upa units, where upa ("units
 *               per allocation") is picked by layout_build (see layout.c).
 *
 * A group's unit count is rounded up to a multiple of upa; the extra units
 * are unused (their cpu_map entry is LAYOUT_NO_CPU) and are never populated.
 * layout_build guarantees at least 75% of all units are used.
 */
#ifndef PCPU_LAYOUT_H
#define PCPU_LAYOUT_H

#include <stddef.h>
#include <stdio.h>

#define LAYOUT_NO_CPU 0xffffffffu
#define LAYOUT_MAX_CPUS 65536u
#define LAYOUT_DEFAULT_MIN_UNIT (32u * 1024)

struct layout_group {
	int nr_units;          /* units in this group, including unused ones (padding to upa) */
	size_t base_offset;    /* byte offset of the group's first unit from the chunk base */
	unsigned *cpu_map;     /* nr_units entries: the cpu in each unit, or LAYOUT_NO_CPU */
	int node;              /* NUMA node of the group's CPUs (-1 if unknown or mixed) */
};

struct layout_params {
	unsigned nr_cpus;      /* 1 .. LAYOUT_MAX_CPUS */
	size_t static_size, reserved_size, dyn_size; /* first chunk regions, bytes */
	size_t min_unit_size;  /* 0 = LAYOUT_DEFAULT_MIN_UNIT (32 KiB) */
	size_t atom_size;      /* 0 = page size; a power of two; below the page size means the page size */
	size_t page_size;      /* 0 = os_page_size(); a power of two */
	int (*cpu_distance)(unsigned from, unsigned to); /* NULL = os_cpu_distance */
	int (*cpu_node)(unsigned cpu);                   /* NULL = os_cpu_node; used only to label groups */
};

struct layout {
	/*
	 * dyn_size is the requested dynamic size grown so that static +
	 * reserved + dyn ends on a page boundary (the kernel does the same):
	 * the slack would otherwise be wasted.
	 */
	size_t static_size, reserved_size, dyn_size, unit_size, atom_size, alloc_size, page_size;
	unsigned nr_cpus;
	int upa;                /* units per allocation: alloc_size / unit_size */
	int nr_groups;
	int nr_units;           /* total units over all groups (including unused padding units) */
	struct layout_group *groups;
	size_t *unit_off;       /* [nr_cpus]: byte offset of cpu's unit from the chunk base; the same table serves every chunk */
	int *cpu_unit;          /* [nr_cpus]: global unit index of cpu */
	size_t chunk_span;      /* bytes from the chunk base to the end of the last group's last unit */
};

/*
 * Compute the layout.  Returns a new layout (free with layout_free), or NULL
 * with errno EINVAL for impossible parameters (nr_cpus 0 or above
 * LAYOUT_MAX_CPUS, atom or page size not a power of two, sizes that overflow)
 * or ENOMEM.  Calls cpu_distance O(nr_cpus^2) times in the worst case (all
 * CPUs in one group); the default distance costs O(nr_cpus * nodes).
 */
struct layout *layout_build(const struct layout_params *p);
void layout_free(struct layout *l);

/*
 * Print the layout like the kernel's boot-time dump: a summary line, then the
 * groups, one "[group]" tag per allocation followed by the CPU of each of its
 * units ("--" for an unused unit).  Every CPU appears exactly once.
 */
void layout_print(const struct layout *l, FILE *out);

#endif /* PCPU_LAYOUT_H */
