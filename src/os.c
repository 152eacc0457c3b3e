/*
 * os.c - topology discovery, address-space primitives and fault injection.
 *
 * The only file of the library that issues memory system calls (see os.h for
 * the contract).  Three independent parts:
 *
 *   topology   a snapshot of sysfs (possible CPUs, online nodes, the node of
 *              every CPU, the node distance matrix) taken once and then read
 *              without locks;
 *   memory     reserve / populate / depopulate / bind, each all-or-nothing
 *              where the kernel allows it;
 *   faults     per-operation counters and injected failures, all atomics so
 *              any thread may call anything at any time.
 */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23          /* Linux 5.14+ */
#endif
#define OS_MPOL_PREFERRED 1             /* from <linux/mempolicy.h> */
#define OS_MAX_NODES 4096               /* node ids we can express in a mask */
#define OS_MAX_LIST_VALUE (1u << 22)    /* sanity bound for sysfs list values */

/* ======================================================================
 * Topology
 * ====================================================================== */

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
static _Atomic(struct topo *) g_topo;
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

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse one decimal number without locale or errno games; NULL on error. */
static const char *parse_uint(const char *s, unsigned long *out, unsigned long max)
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
	while (is_space(*s))
		s++;
	if (!*s)
		return 0;               /* an empty list, e.g. a CPU-less node */
	for (;;) {
		unsigned long lo, hi;

		s = parse_uint(s, &lo, OS_MAX_LIST_VALUE);
		if (!s)
			goto bad;
		hi = lo;
		if (*s == '-') {
			s = parse_uint(s + 1, &hi, OS_MAX_LIST_VALUE);
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
		while (is_space(*s))
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

			while (is_space(*p))
				p++;
			p = parse_uint(p, &d, INT_MAX);
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

	atomic_store(&g_topo, t ? t : &topo_fallback);
}

static const struct topo *topo_get(void)
{
	pthread_once(&topo_once, topo_init_default);
	return atomic_load_explicit(&g_topo, memory_order_acquire);
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
	t->older = atomic_load(&g_topo);
	atomic_store_explicit(&g_topo, t, memory_order_release);
	return 0;
}

size_t os_page_size(void)
{
	static atomic_size_t cached;
	size_t ps = atomic_load_explicit(&cached, memory_order_relaxed);

	if (!ps) {
		long v = sysconf(_SC_PAGESIZE);

		ps = v > 0 ? (size_t)v : 4096;
		atomic_store_explicit(&cached, ps, memory_order_relaxed);
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

/* ======================================================================
 * Fault injection
 * ====================================================================== */

#define RAND_ONE (1ull << 53)   /* threshold meaning "always fail" */

struct fault_op {
	atomic_ulong calls;             /* attempts, failed or not */
	atomic_ulong nth_count;         /* 0: nth rule off */
	atomic_ulong nth_skip;
	atomic_ulong nth_pos;           /* calls seen since the rule was armed */
	atomic_ullong rand_thresh;      /* fail if draw < thresh; 0: off */
	atomic_ullong rand_state;
};

static struct fault_op g_fault[OS_NR_OPS];
static atomic_ulong g_injected;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static atomic_int g_env_status;

static const char *const op_names[OS_NR_OPS] = {
	[OS_OP_RESERVE] = "reserve",
	[OS_OP_POPULATE] = "populate",
	[OS_OP_DEPOPULATE] = "depopulate",
	[OS_OP_BIND] = "bind",
};

/* splitmix64 finaliser: turns a counter into well-mixed bits. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void set_nth(enum os_op op, unsigned long skip, unsigned long count)
{
	struct fault_op *f = &g_fault[op];

	/* disarm, reconfigure, re-arm: a racing call sees old or new rule */
	atomic_store(&f->nth_count, 0);
	atomic_store(&f->nth_skip, skip);
	atomic_store(&f->nth_pos, 0);
	atomic_store_explicit(&f->nth_count, count, memory_order_release);
}

static void set_random(enum os_op op, double p, unsigned long seed)
{
	struct fault_op *f = &g_fault[op];
	unsigned long long thresh;

	if (!(p > 0))           /* also catches NaN */
		thresh = 0;
	else if (p >= 1)
		thresh = RAND_ONE;
	else
		thresh = (unsigned long long)(p * (double)RAND_ONE);
	atomic_store(&f->rand_thresh, 0);
	atomic_store(&f->rand_state, mix64((uint64_t)seed ^ (0x9e3779b97f4a7c15ull * (op + 1))));
	atomic_store_explicit(&f->rand_thresh, thresh, memory_order_release);
}

static void clear_all(void)
{
	for (int op = 0; op < OS_NR_OPS; op++) {
		atomic_store(&g_fault[op].nth_count, 0);
		atomic_store(&g_fault[op].rand_thresh, 0);
	}
}

/* Parse a decimal probability ("1", "0.25", ".5") without strtod's locale. */
static int parse_prob(const char *s, const char *end, double *out)
{
	double v = 0, scale = 1;
	int digits = 0;

	for (; s < end && *s >= '0' && *s <= '9'; s++, digits++)
		v = v * 10 + (*s - '0');
	if (s < end && *s == '.')
		for (s++; s < end && *s >= '0' && *s <= '9'; s++, digits++)
			v += (*s - '0') * (scale /= 10);
	if (s != end || !digits || v > 1)
		return -1;
	*out = v;
	return 0;
}

struct fault_spec {
	int has_nth, has_p;
	unsigned long nth;
	double p;
};

/* Parse one "op:spec" or "seed=N" item occupying [s, end). */
static int parse_item(const char *s, const char *end, struct fault_spec *spec,
		      unsigned long *seed)
{
	const char *colon = memchr(s, ':', (size_t)(end - s));
	unsigned long v;
	const char *p;
	int op;

	if (!colon) {
		if ((size_t)(end - s) < 5 || memcmp(s, "seed=", 5))
			return -1;
		p = parse_uint(s + 5, &v, ULONG_MAX);
		if (!p || p != end)
			return -1;
		*seed = v;
		return 0;
	}
	for (op = 0; op < OS_NR_OPS; op++)
		if (strlen(op_names[op]) == (size_t)(colon - s) &&
		    !memcmp(s, op_names[op], (size_t)(colon - s)))
			break;
	if (op == OS_NR_OPS)
		return -1;
	s = colon + 1;
	if ((size_t)(end - s) >= 4 && !memcmp(s, "nth=", 4)) {
		p = parse_uint(s + 4, &v, ULONG_MAX);
		if (!p || p != end || v == 0)
			return -1;
		spec[op].has_nth = 1;
		spec[op].nth = v;
		return 0;
	}
	if (parse_prob(s, end, &spec[op].p))
		return -1;
	spec[op].has_p = 1;
	return 0;
}

/* Parse a whole PCPU_FAULT string and, only if all of it is valid, apply it. */
static int parse_and_apply(const char *str)
{
	struct fault_spec spec[OS_NR_OPS];
	unsigned long seed = 1;
	const char *s = str, *end;

	memset(spec, 0, sizeof(spec));
	if (!str) {
		errno = EINVAL;
		return -1;
	}
	while (is_space(*s))
		s++;
	while (*s) {
		const char *e;

		end = strchr(s, ',');
		if (!end)
			end = s + strlen(s);
		for (e = end; e > s && is_space(e[-1]); e--)
			;
		if (e == s || parse_item(s, e, spec, &seed)) {
			errno = EINVAL;
			return -1;
		}
		if (!*end)
			break;
		for (s = end + 1; is_space(*s); s++)
			;
		if (!*s) {              /* trailing comma */
			errno = EINVAL;
			return -1;
		}
	}
	clear_all();
	for (int op = 0; op < OS_NR_OPS; op++) {
		if (spec[op].has_nth)
			set_nth(op, spec[op].nth - 1, 1);
		if (spec[op].has_p)
			set_random(op, spec[op].p, seed);
	}
	return 0;
}

static void env_init(void)
{
#ifdef __GLIBC__
	const char *s = secure_getenv("PCPU_FAULT");
#else
	const char *s = getenv("PCPU_FAULT");
#endif
	if (s)
		atomic_store(&g_env_status, parse_and_apply(s));
}

static void env_ensure(void)
{
	pthread_once(&env_once, env_init);
}

/*
 * Count one call of op and decide whether it must fail.  Returns 1 (with
 * errno = ENOMEM) for an injected failure.
 */
static int fault_check(enum os_op op)
{
	struct fault_op *f = &g_fault[op];
	unsigned long count;
	unsigned long long thresh;

	env_ensure();
	atomic_fetch_add_explicit(&f->calls, 1, memory_order_relaxed);
	count = atomic_load_explicit(&f->nth_count, memory_order_acquire);
	if (count) {
		unsigned long pos = atomic_fetch_add(&f->nth_pos, 1);
		unsigned long skip = atomic_load(&f->nth_skip);

		if (pos >= skip && pos - skip < count)
			goto fail;
	}
	thresh = atomic_load_explicit(&f->rand_thresh, memory_order_acquire);
	if (thresh) {
		uint64_t x = atomic_fetch_add(&f->rand_state, 0x9e3779b97f4a7c15ull);

		if ((mix64(x) >> 11) < thresh)
			goto fail;
	}
	return 0;
fail:
	atomic_fetch_add_explicit(&g_injected, 1, memory_order_relaxed);
	errno = ENOMEM;
	return 1;
}

void os_fault_nth(enum os_op op, unsigned long skip, unsigned long count)
{
	env_ensure();
	if ((unsigned)op < OS_NR_OPS)
		set_nth(op, skip, count);
}

void os_fault_random(enum os_op op, double probability, unsigned long seed)
{
	env_ensure();
	if ((unsigned)op < OS_NR_OPS)
		set_random(op, probability, seed);
}

void os_fault_clear(void)
{
	env_ensure();
	clear_all();
}

int os_fault_parse(const char *spec)
{
	env_ensure();
	return parse_and_apply(spec);
}

int os_fault_env_status(void)
{
	env_ensure();
	return atomic_load(&g_env_status);
}

unsigned long os_call_count(enum os_op op)
{
	if ((unsigned)op >= OS_NR_OPS)
		return 0;
	return atomic_load_explicit(&g_fault[op].calls, memory_order_relaxed);
}

unsigned long os_fault_count(void)
{
	return atomic_load_explicit(&g_injected, memory_order_relaxed);
}

void os_counters_reset(void)
{
	for (int op = 0; op < OS_NR_OPS; op++)
		atomic_store(&g_fault[op].calls, 0);
	atomic_store(&g_injected, 0);
}

/* ======================================================================
 * Address space
 * ====================================================================== */

static atomic_int no_populate_write;    /* kernel lacks MADV_POPULATE_WRITE */
static atomic_int force_touch;          /* tests: always use the fallback */

void os_force_touch_populate(int on)
{
	atomic_store(&force_touch, on != 0);
}

/* Round size up to the page size; 0 if that overflows. */
static size_t page_round(size_t size)
{
	size_t ps = os_page_size();

	if (size > SIZE_MAX - (ps - 1))
		return 0;
	return (size + ps - 1) & ~(ps - 1);
}

void *os_reserve(size_t size, size_t align)
{
	size_t ps = os_page_size(), len, span, head, tail;
	uintptr_t base, aligned;
	void *p;

	if (size == 0 || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	if (align < ps)
		align = ps;
	len = page_round(size);
	if (!len || len > SIZE_MAX - (align - ps)) {
		errno = ENOMEM;
		return NULL;
	}
	if (fault_check(OS_OP_RESERVE))
		return NULL;
	/* over-reserve by align - page, then cut off what sticks out */
	span = len + (align - ps);
	p = mmap(NULL, span, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	base = (uintptr_t)p;
	aligned = (base + align - 1) & ~(uintptr_t)(align - 1);
	head = aligned - base;
	tail = span - head - len;
	if (head)
		munmap(p, head);
	if (tail)
		munmap((void *)(aligned + len), tail);
	return (void *)aligned;
}

int os_unreserve(void *addr, size_t size)
{
	size_t len = page_round(size);

	if (!addr || !len) {
		errno = EINVAL;
		return -1;
	}
	return munmap(addr, len);
}

/* Check addr/size for populate and depopulate; returns the length or 0. */
static size_t range_len(void *addr, size_t size)
{
	size_t len = page_round(size);

	if (((uintptr_t)addr & (os_page_size() - 1)) || !len) {
		errno = EINVAL;
		return 0;
	}
	return len;
}

/*
 * Fault every page in with a write, for kernels without MADV_POPULATE_WRITE.
 * Each page's first byte is read and written back rather than overwritten, so
 * a page that was (wrongly) already populated keeps its contents.
 */
static void touch_pages(void *addr, size_t len)
{
	size_t ps = os_page_size();
	volatile unsigned char *p = addr;

	for (size_t off = 0; off < len; off += ps)
		p[off] = p[off];
}

int os_populate(void *addr, size_t size)
{
	size_t len;

	if (size == 0)
		return 0;
	len = range_len(addr, size);
	if (!len)
		return -1;
	if (fault_check(OS_OP_POPULATE))
		return -1;
	if (mprotect(addr, len, PROT_READ | PROT_WRITE))
		goto undo;
	if (!atomic_load_explicit(&no_populate_write, memory_order_relaxed) &&
	    !atomic_load_explicit(&force_touch, memory_order_relaxed)) {
		int rc, tries = 0;

		do
			rc = madvise(addr, len, MADV_POPULATE_WRITE);
		while (rc && (errno == EINTR || errno == EAGAIN) && ++tries < 8);
		if (rc == 0)
			return 0;
		if (errno != EINVAL && errno != ENOSYS)
			goto undo;
		/* old kernel: remember, and fault the pages in by hand */
		atomic_store_explicit(&no_populate_write, 1, memory_order_relaxed);
	}
	touch_pages(addr, len);
	return 0;
undo:
	/* leave nothing half-done: drop whatever got in, and fault again */
	madvise(addr, len, MADV_DONTNEED);
	mprotect(addr, len, PROT_NONE);
	errno = ENOMEM;
	return -1;
}

int os_depopulate(void *addr, size_t size)
{
	size_t len;

	if (size == 0)
		return 0;
	len = range_len(addr, size);
	if (!len)
		return -1;
	if (fault_check(OS_OP_DEPOPULATE))
		return -1;
	if (madvise(addr, len, MADV_DONTNEED))
		return -1;
	return mprotect(addr, len, PROT_NONE);
}

int os_bind_node(void *addr, size_t size, int node)
{
	unsigned long mask[OS_MAX_NODES / (8 * sizeof(unsigned long))];
	const size_t bits = 8 * sizeof(unsigned long);
	const struct topo *t;
	size_t len, words;
	long rc;

	if (size == 0 || node < 0)
		return 0;
	len = range_len(addr, size);
	if (!len)
		return -1;
	if (fault_check(OS_OP_BIND))
		return -1;
	t = topo_get();
	if (t->nr_nodes <= 1)
		return 0;
	if (topo_pos(t, node) < 0 || node >= OS_MAX_NODES) {
		errno = EINVAL;
		return -1;
	}
	words = (size_t)node / bits + 1;
	memset(mask, 0, words * sizeof(mask[0]));
	mask[node / bits] |= 1ul << (node % bits);
	/* the kernel reads maxnode - 1 bits of the mask */
	rc = syscall(SYS_mbind, addr, len, OS_MPOL_PREFERRED, mask,
		     (unsigned long)(words * bits + 1), 0u);
	if (rc == 0)
		return 0;
	if (errno == ENOSYS || errno == EPERM)
		return 0;
	return -1;
}
