/*
 * os_topo.c - machine topology: possible CPUs, online NUMA nodes, the node
 * of every CPU and the node distance matrix, and the page size.
 *
 * A snapshot of sysfs is taken once, on first use, and then read without
 * locks; os_topology_reload() swaps in a new snapshot (tests feed
 * fabricated trees) and keeps the old one reachable, so a reader never
 * holds a dangling pointer.  The sysfs list parser lives here too.
 */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OS_MAX_LIST_VALUE (1u << 22)    /* sanity bound for sysfs list values */

struct topo {
	unsigned nr_cpus;       /* possible CPUs (highest + 1) */
	int nr_nodes;           /* online nodes */
	int *nodes;             /* [nr_nodes] online node ids, ascending */
	int *cpu_node;          /* [nr_cpus] node of each CPU; NULL = all 0 */
	int *dist;              /* [nr_nodes^2] by position in nodes[]; NULL = default */
	struct topo *older;     /* snapshot this one replaced (kept, never freed) */
};

static int topo_node0 = 0;
static struct topo topo_fallback = { 1, 1, &topo_node0, NULL, NULL, NULL };
static struct topo *g_topo;
static pthread_once_t topo_once = PTHREAD_ONCE_INIT;

/*
 * Read a whole (small) file into a NUL-terminated malloc'd string.  sysfs
 * files claim a size of 4096 whatever they hold, so read up to EOF.
 */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0;

	if (!f)
		return NULL;
	if (getdelim(&buf, &cap, '\0', f) < 0) {      /* empty file, or error */
		free(buf);
		buf = ferror(f) ? NULL : strdup("");
	}
	fclose(f);
	return buf;
}

const char *os_parse_uint(const char *s, unsigned long *out, unsigned long max)
{
	unsigned long v = 0;

	if (*s < '0' || *s > '9')
		return NULL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (max - d) / 10)
			return NULL;
		v = v * 10 + d;
	}
	*out = v;
	return s;
}

long os_parse_list(const char *s, void (*fn)(unsigned v, void *arg), void *arg)
{
	long count = 0;

	if (!s)
		goto bad;
	while (os_is_space(*s))
		s++;
	if (!*s)
		return 0;               /* an empty list, e.g. a CPU-less node */
	for (;;) {
		unsigned long lo, hi;

		s = os_parse_uint(s, &lo, OS_MAX_LIST_VALUE);
		if (!s)
			goto bad;
		hi = lo;
		if (*s == '-') {
			s = os_parse_uint(s + 1, &hi, OS_MAX_LIST_VALUE);
			if (!s || hi < lo)
				goto bad;
		}
		for (unsigned long v = lo; v <= hi; v++, count++)
			if (fn)
				fn((unsigned)v, arg);
		if (*s == ',') {
			s++;
			continue;
		}
		while (os_is_space(*s))
			s++;
		if (*s)
			goto bad;
		return count;
	}
bad:
	errno = EINVAL;
	return -1;
}

static void max_cb(unsigned v, void *arg)
{
	unsigned *m = arg;

	if (v + 1 > *m)
		*m = v + 1;
}

struct node_list { int *ids; int n, cap; };

static void node_cb(unsigned v, void *arg)
{
	struct node_list *l = arg;

	if (l->n == l->cap || v >= OS_MAX_NODES)
		return;
	l->ids[l->n++] = (int)v;
}

struct cpu_fill { int *map; unsigned nr; int node; };

static void cpu_cb(unsigned v, void *arg)
{
	struct cpu_fill *f = arg;

	if (v < f->nr)
		f->map[v] = f->node;
}

static int topo_pos(const struct topo *t, int node)
{
	for (int i = 0; i < t->nr_nodes; i++)
		if (t->nodes[i] == node)
			return i;
	return -1;
}

/* Fill t->dist from nodeN/distance rows; rows that do not parse fall back. */
static void load_distances(struct topo *t, const char *root)
{
	char path[PATH_MAX];
	size_t n = (size_t)t->nr_nodes;

	t->dist = malloc(n * n * sizeof(*t->dist));
	if (!t->dist)
		return;
	for (size_t i = 0; i < n; i++) {
		char *txt;
		const char *p;
		size_t j = 0;

		for (size_t k = 0; k < n; k++)
			t->dist[i * n + k] = i == k ? OS_LOCAL_DISTANCE : OS_REMOTE_DISTANCE;
		snprintf(path, sizeof(path), "%s/node/node%d/distance", root, t->nodes[i]);
		txt = read_text(path);
		if (!txt)
			continue;
		/* one entry per online node, in the order of node/online */
		for (p = txt; j < n; j++) {
			unsigned long d;

			while (os_is_space(*p))
				p++;
			p = os_parse_uint(p, &d, INT_MAX);
			if (!p)
				break;
			t->dist[i * n + j] = (int)d;
		}
		free(txt);
	}
}

/* Build a snapshot from a sysfs tree; NULL only when out of memory. */
static struct topo *topo_load(const char *root)
{
	char path[PATH_MAX];
	struct topo *t = calloc(1, sizeof(*t));
	struct node_list nl = { NULL, 0, 0 };
	char *txt;
	unsigned ncpu = 0;

	if (!t)
		return NULL;
	snprintf(path, sizeof(path), "%s/cpu/possible", root);
	txt = read_text(path);
	if (!txt || os_parse_list(txt, max_cb, &ncpu) <= 0)
		ncpu = 0;
	free(txt);
	if (ncpu == 0) {
		long c = sysconf(_SC_NPROCESSORS_CONF);

		ncpu = c > 0 && c < (long)OS_MAX_LIST_VALUE ? (unsigned)c : 1;
	}
	t->nr_cpus = ncpu;

	snprintf(path, sizeof(path), "%s/node/online", root);
	txt = read_text(path);
	if (txt) {
		long cnt = os_parse_list(txt, NULL, NULL);

		if (cnt > 0) {
			nl.cap = (int)(cnt < OS_MAX_NODES ? cnt : OS_MAX_NODES);
			nl.ids = malloc((size_t)nl.cap * sizeof(int));
			if (nl.ids)
				os_parse_list(txt, node_cb, &nl);
		}
		free(txt);
	}
	if (nl.n == 0) {
		free(nl.ids);
		nl.ids = malloc(sizeof(int));
		if (!nl.ids)
			goto nomem;
		nl.ids[0] = 0;
		nl.n = 1;
	}
	t->nodes = nl.ids;
	t->nr_nodes = nl.n;

	t->cpu_node = calloc(ncpu, sizeof(int));
	if (!t->cpu_node)
		goto nomem;
	for (int i = 0; i < t->nr_nodes; i++) {
		struct cpu_fill f = { t->cpu_node, ncpu, t->nodes[i] };

		snprintf(path, sizeof(path), "%s/node/node%d/cpulist", root, t->nodes[i]);
		txt = read_text(path);
		if (txt)
			os_parse_list(txt, cpu_cb, &f);
		free(txt);
	}
	if (t->nr_nodes > 1)
		load_distances(t, root);
	return t;
nomem:
	free(t->nodes);
	free(t);
	return NULL;
}

static void topo_init_default(void)
{
	struct topo *t = topo_load("/sys/devices/system");

	__atomic_store_n(&g_topo, t ? t : &topo_fallback, __ATOMIC_SEQ_CST);
}

static const struct topo *topo_get(void)
{
	pthread_once(&topo_once, topo_init_default);
	return __atomic_load_n(&g_topo, __ATOMIC_ACQUIRE);
}

int os_topology_reload(const char *sysfs_root)
{
	struct topo *t;

	pthread_once(&topo_once, topo_init_default);
	t = topo_load(sysfs_root ? sysfs_root : "/sys/devices/system");
	if (!t) {
		errno = ENOMEM;
		return -1;
	}
	/* readers may still hold the old one: keep it reachable, never free */
	t->older = __atomic_load_n(&g_topo, __ATOMIC_SEQ_CST);
	__atomic_store_n(&g_topo, t, __ATOMIC_RELEASE);
	return 0;
}

size_t os_page_size(void)
{
	static size_t cached;
	size_t ps = __atomic_load_n(&cached, __ATOMIC_RELAXED);

	if (!ps) {
		long v = sysconf(_SC_PAGESIZE);

		ps = v > 0 ? (size_t)v : 4096;
		__atomic_store_n(&cached, ps, __ATOMIC_RELAXED);
	}
	return ps;
}

unsigned os_possible_cpus(void)
{
	return topo_get()->nr_cpus;
}

int os_nr_nodes(void)
{
	return topo_get()->nr_nodes;
}

int os_cpu_node(unsigned cpu)
{
	const struct topo *t = topo_get();

	if (!t->cpu_node || cpu >= t->nr_cpus)
		return 0;
	return t->cpu_node[cpu];
}

int os_node_distance(int a, int b)
{
	const struct topo *t = topo_get();
	int i, j;

	if (t->dist && (i = topo_pos(t, a)) >= 0 && (j = topo_pos(t, b)) >= 0)
		return t->dist[i * t->nr_nodes + j];
	return a == b ? OS_LOCAL_DISTANCE : OS_REMOTE_DISTANCE;
}

int os_cpu_distance(unsigned a, unsigned b)
{
	return os_node_distance(os_cpu_node(a), os_cpu_node(b));
}
bool os_node_online(int node)
{
	return topo_pos(topo_get(), node) >= 0;
}
