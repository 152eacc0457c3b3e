/*
 * os.h - the operating-system layer: machine topology and address space.
 *
 * Everything the allocator asks of the kernel goes through the os_* files
 * (os_topo.c, os_mem.c, os_module.c; fault injection in os_fault.[ch]), and
 * os_mem.c is the only place in the library that calls
 * mmap/munmap/mprotect/madvise/mbind: one point for fault injection (tests
 * make any of these calls fail on demand) and one place to port.
 *
 * Topology (CPUs, NUMA nodes, distances) is read from sysfs once, on first
 * use, and cached for the life of the process.  Every function here is
 * thread-safe and none of them prints anything: failures are reported by the
 * return value and errno.
 *
 * Memory lifecycle of a range handed out by os_reserve():
 *
 *   reserved    PROT_NONE, no memory behind it; touching it faults
 *   mapped      read-write, nothing resident (os_map_rw); reads as zeros
 *   populated   read-write, resident, zero-filled when first populated
 *   depopulated memory returned: back to "mapped" (MADV_DONTNEED; reads as
 *               zeros), or "mapped" with contents kept until the kernel
 *               needs the memory (MADV_FREE), or back to "reserved"
 *               (MADV_DONTNEED then PROT_NONE: touching it faults)
 */
#ifndef PCPU_OS_H
#define PCPU_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* ---- topology ---------------------------------------------------------- */

#define OS_LOCAL_DISTANCE  10   /* distance of a node to itself */
#define OS_REMOTE_DISTANCE 20   /* fallback distance between two nodes */

size_t os_page_size(void);
unsigned os_possible_cpus(void);   /* highest possible CPU + 1, >= 1 */
int os_nr_nodes(void);             /* online NUMA nodes, >= 1 */
int os_cpu_node(unsigned cpu);     /* node of cpu, 0 if unknown */
int os_node_distance(int a, int b);
int os_cpu_distance(unsigned a, unsigned b);
bool os_node_online(int node);     /* node is in the snapshot's online list */
#define OS_MAX_NODES 4096          /* node ids the binding mask can express */

/*
 * Parse a sysfs list such as "0-3,5,8-9\n" and call fn(v, arg) for every
 * value in it, in order.  Returns the number of values, or -1 with errno =
 * EINVAL on bad syntax (fn may already have been called for earlier values).
 */
long os_parse_list(const char *s, void (*fn)(unsigned v, void *arg), void *arg);

/* One decimal number at s, at most max, without locale or errno; returns the
 * end of the number, or NULL on bad syntax or overflow. */
const char *os_parse_uint(const char *s, unsigned long *out, unsigned long max);

static inline bool os_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Re-read the topology from another sysfs tree (laid out like
 * /sys/devices/system: cpu/possible, node/online, node/nodeN/{cpulist,
 * distance}); NULL means the real one.  Meant for tests: a thread calling
 * the topology functions meanwhile may still be answered from the previous
 * snapshot (snapshots are kept, never freed, so nothing dangles).  Returns
 * 0, or -1 with errno ENOMEM.
 */
int os_topology_reload(const char *sysfs_root);

/* ---- address space ----------------------------------------------------- */

/*
 * Reserve size bytes of address space (rounded up to the page size) aligned
 * to align, a power of two (values below the page size mean the page size).
 * No memory is committed and every access faults until os_populate().
 * NULL + errno (ENOMEM; EINVAL for size 0 or a bad align) on failure.
 */
void *os_reserve(size_t size, size_t align);
int os_unreserve(void *addr, size_t size);

/*
 * Make a reserved, unpopulated, page-aligned range readable, writable and
 * resident; its contents read as zero.  All or nothing: on failure the range
 * is returned to the reserved state and -1 is returned with errno = ENOMEM
 * (EINVAL, before any system call, if addr is not page aligned).  size is
 * rounded up to the page size; size 0 succeeds and does nothing.
 */
int os_populate(void *addr, size_t size);

/*
 * Give the memory of a page-aligned range back to the OS and make it fault
 * again.  A later os_populate() gives zeros.  -1 + errno on failure (on an
 * injected failure nothing was changed).  size 0 succeeds and does nothing.
 */
int os_depopulate(void *addr, size_t size);

/*
 * Vectored forms for the same page range in many units.  Each range of v is
 * page aligned with a non-zero length.  Where the kernel accepts
 * process_madvise(PIDFD_SELF, ...) with these advice values (recent Linux
 * 6.x; tried once, remembered), one system call advises up to IOV_MAX
 * ranges; elsewhere it is one madvise() per range.  The system calls made are
 * added to *sc, by kind.  Each function is one call for fault injection,
 * failing before any system call.
 */
struct os_syscalls {
	unsigned long populate;    /* MADV_POPULATE_WRITE */
	unsigned long depopulate;  /* MADV_DONTNEED, MADV_FREE */
	unsigned long mprotect;
};

enum os_depop_how {
	OS_DEPOP_DONTNEED,         /* memory returned now; the range stays mapped, reads zeros */
	OS_DEPOP_FREE,             /* returned lazily (MADV_FREE); contents undefined until
	                              written; the range stays mapped */
	OS_DEPOP_PROTECT,          /* MADV_DONTNEED, then PROT_NONE: touching it faults */
};

/* Populate every range (os_populate's contract, all or nothing over all of
 * them).  With `protect` the ranges are PROT_NONE and mprotected
 * read-write first (undone on failure); without, they are already mapped. */
int os_populate_v(const struct iovec *v, int n, bool protect, struct os_syscalls *sc);
/* Give every range back as `how` says.  -1 + errno if any part failed: the
 * memory may then still hold its contents. */
int os_depopulate_v(const struct iovec *v, int n, enum os_depop_how how, struct os_syscalls *sc);
/* Reserved -> mapped (mprotect read-write, nothing populated); a populate
 * operation for fault injection. */
int os_map_rw(void *addr, size_t len, struct os_syscalls *sc);
/* Any state -> reserved (MADV_DONTNEED, then PROT_NONE); a depopulate
 * operation for fault injection.  -1 + errno if either call failed. */
int os_unmap_rw(void *addr, size_t len, struct os_syscalls *sc);

/*
 * Ask the kernel to place the range's memory on NUMA node `node` (preferred,
 * not strict: the kernel may still fall back to another node when that one is
 * full).  Call it before populating.  Returns 0 without a system call on a
 * one-node machine.  Binding is an optimisation, so a kernel without NUMA
 * support or a sandbox that forbids mbind (ENOSYS, EPERM) also yields 0, and
 * so does a negative node ("no preference", e.g. a group of unknown node).
 * -1 + errno otherwise (EINVAL for a node that is not online).
 */
int os_bind_node(void *addr, size_t size, int node);

/*
 * The allocator's own metadata of a page or more (maps, per-CPU cache
 * bins): zeroed read-write memory straight from the kernel, resident only
 * where touched, and given back to it by os_meta_free whatever the
 * program's malloc does with freed memory.  Not subject to fault injection
 * (the operations above are the ones tests make fail).  NULL + errno
 * ENOMEM (EINVAL for size 0).
 */
void *os_meta_alloc(size_t size);
void os_meta_free(void *addr, size_t size);

/*
 * Metadata address space too large to commit up front (the pool's flat
 * live map): os_meta_reserve maps size bytes inaccessible, charging no
 * memory; os_meta_commit makes the whole pages around [addr, addr + size)
 * readable and writable (zeroed where never written; committing a range
 * twice keeps its contents), counting the call in sc; os_meta_free unmaps
 * it all.  Not subject to fault injection.  NULL or -1 + errno ENOMEM on
 * failure.
 */
void *os_meta_reserve(size_t size);
int os_meta_commit(void *addr, size_t size, struct os_syscalls *sc);

/* Give back the memory of the whole pages inside [addr, addr + size) of a
 * read-write metadata mapping; they read as zero when next touched.  Best
 * effort, no error.  Not subject to fault injection. */
void os_meta_discard(void *addr, size_t size);

/* ---- loaded modules ---------------------------------------------------- */

/* True if addr lies in a loadable segment of the main program. */
bool os_module_is_main(const void *addr);
/* File name of the module holding addr, or NULL if unknown. */
const char *os_module_name(const void *addr);

/* Tests: make os_populate() skip MADV_POPULATE_WRITE and touch pages one by
 * one, as it does on kernels older than 5.14. */
void os_force_touch_populate(int on);

#endif /* PCPU_OS_H */
