/*
 * os_mem.c - address-space primitives: reserve, populate, depopulate
 * (one range, or the same range in many units at once), bind to a NUMA
 * node.  The only file of the library that makes memory system calls
 * (mmap, munmap, mprotect, madvise, process_madvise, mbind); see os.h for
 * the lifecycle of a range.  Each operation is all or nothing where the kernel
 * allows it, and asks os_fault_check() first so tests can make it fail.
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
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os_fault.h"
#include "util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23          /* Linux 5.14+ */
#endif
#define OS_MPOL_PREFERRED 1             /* from <linux/mempolicy.h> */

static int no_populate_write;    /* kernel lacks MADV_POPULATE_WRITE */
static int force_touch;          /* tests: always use the fallback */

void os_force_touch_populate(int on)
{
	__atomic_store_n(&force_touch, on != 0, __ATOMIC_SEQ_CST);
}

/* Round size up to the page size; 0 if that overflows. */
static size_t page_round(size_t size)
{
	size_t len;

	return pcpu_align_up_checked(size, os_page_size(), &len) ? len : 0;
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
	if (os_fault_check(OS_OP_RESERVE))
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

/* A private anonymous mapping of size bytes (page-rounded) for metadata. */
static void *meta_map(size_t size, int prot, int flags)
{
	size_t len = page_round(size);
	void *p;

	if (!len) {
		errno = size ? ENOMEM : EINVAL;
		return NULL;
	}
	p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void *os_meta_alloc(size_t size)
{
	return meta_map(size, PROT_READ | PROT_WRITE, 0);
}

void os_meta_free(void *addr, size_t size)
{
	if (addr)
		munmap(addr, page_round(size));
}

void *os_meta_reserve(size_t size)
{
	return meta_map(size, PROT_NONE, MAP_NORESERVE);
}

int os_meta_commit(void *addr, size_t size, struct os_syscalls *sc)
{
	uintptr_t start = (uintptr_t)addr & ~(uintptr_t)(os_page_size() - 1);
	size_t len = page_round((uintptr_t)addr + size - start);

	sc->mprotect++;
	if (mprotect((void *)start, len, PROT_READ | PROT_WRITE)) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void os_meta_discard(void *addr, size_t size)
{
	uintptr_t page = os_page_size();
	uintptr_t start = ((uintptr_t)addr + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)addr + size) & ~(page - 1);

	if (end > start)
		(void)madvise((void *)start, end - start, MADV_DONTNEED);
}

/*
 * Check addr/size for an operation on one range, then ask os_fault_check(op);
 * returns the page-rounded length, or 0 with errno set.
 */
static size_t range_check(void *addr, size_t size, enum os_op op)
{
	size_t len = page_round(size);

	if (((uintptr_t)addr & (os_page_size() - 1)) || !len) {
		errno = EINVAL;
		return 0;
	}
	return os_fault_check(op) ? 0 : len;
}

/* madvise, retried on EINTR and EAGAIN (at most 8 tries). */
static int madvise_retry(void *addr, size_t len, int advice)
{
	int rc, tries = 0;

	do
		rc = madvise(addr, len, advice);
	while (rc && (errno == EINTR || errno == EAGAIN) && ++tries < 8);
	return rc;
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
	len = range_check(addr, size, OS_OP_POPULATE);
	if (!len)
		return -1;
	if (mprotect(addr, len, PROT_READ | PROT_WRITE))
		goto undo;
	if (!__atomic_load_n(&no_populate_write, __ATOMIC_RELAXED) &&
	    !__atomic_load_n(&force_touch, __ATOMIC_RELAXED)) {
		if (madvise_retry(addr, len, MADV_POPULATE_WRITE) == 0)
			return 0;
		if (errno != EINVAL && errno != ENOSYS)
			goto undo;
		/* old kernel: remember, and fault the pages in by hand */
		__atomic_store_n(&no_populate_write, 1, __ATOMIC_RELAXED);
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
	len = range_check(addr, size, OS_OP_DEPOPULATE);
	if (!len)
		return -1;
	if (madvise(addr, len, MADV_DONTNEED))
		return -1;
	return mprotect(addr, len, PROT_NONE);
}

/* ---- vectored forms ---------------------------------------------------------- */

#ifndef MADV_FREE
#define MADV_FREE 8                     /* Linux 4.5+ */
#endif
#define OS_PIDFD_SELF (-10000)          /* PIDFD_SELF from <linux/pidfd.h> */
#ifndef SYS_process_madvise
#define SYS_process_madvise 440         /* the same number on x86_64 and aarch64 */
#endif
#define OS_IOV_BATCH 1024               /* IOV_MAX on Linux */

/* process_madvise(PIDFD_SELF) with our advice: 0 untried, 1 works, -1 not here. */
static int self_madvise_state;
static int no_madv_free;         /* kernel lacks MADV_FREE: use MADV_DONTNEED */

/* Every range page aligned and not empty, and at least one. */
static bool ranges_ok(const struct iovec *v, int n)
{
	size_t mask = os_page_size() - 1;

	for (int i = 0; i < n; i++) {
		if (((uintptr_t)v[i].iov_base & mask) || !v[i].iov_len || (v[i].iov_len & mask)) {
			errno = EINVAL;
			return false;
		}
	}
	if (n <= 0)
		errno = EINVAL;
	return n > 0;
}

/*
 * madvise(advice) over v[0..n): process_madvise on batches of ranges while
 * the kernel takes it, then one madvise per range that is left.  Advice
 * here is idempotent, so a batch that stopped part way is simply redone
 * range by range.  0, or -1 with errno from the first range that failed.
 */
static int madvise_v(const struct iovec *v, int n, int advice, unsigned long *calls)
{
	int done = 0;

	while (n - done > 1 && __atomic_load_n(&self_madvise_state, __ATOMIC_RELAXED) >= 0) {
		int k = n - done < OS_IOV_BATCH ? n - done : OS_IOV_BATCH, tries = 0;
		size_t total = 0;
		long rc;

		for (int i = 0; i < k; i++)
			total += v[done + i].iov_len;
		do
			rc = syscall(SYS_process_madvise, OS_PIDFD_SELF, v + done, (size_t)k, advice, 0u);
		while (rc < 0 && (errno == EINTR || errno == EAGAIN) && ++tries < 8);
		(*calls)++;
		if (rc == (long)total) {
			__atomic_store_n(&self_madvise_state, 1, __ATOMIC_RELAXED);
			done += k;
			continue;
		}
		if (rc < 0 && (errno == EINVAL || errno == EBADF || errno == ENOSYS || errno == EPERM) &&
		    __atomic_load_n(&self_madvise_state, __ATOMIC_RELAXED) == 0)
			__atomic_store_n(&self_madvise_state, -1, __ATOMIC_RELAXED);
		break;          /* the rest (this batch included) one range at a time */
	}
	for (; done < n; done++) {
		(*calls)++;
		if (madvise_retry(v[done].iov_base, v[done].iov_len, advice))
			return -1;
	}
	return 0;
}

static int protect_v(const struct iovec *v, int n, int prot, unsigned long *calls)
{
	int rc = 0;

	for (int i = 0; i < n; i++) {
		(*calls)++;
		if (mprotect(v[i].iov_base, v[i].iov_len, prot))
			rc = -1;
	}
	return rc;
}

int os_populate_v(const struct iovec *v, int n, bool protect, struct os_syscalls *sc)
{
	if (!ranges_ok(v, n))
		return -1;
	if (os_fault_check(OS_OP_POPULATE))
		return -1;
	if (protect && protect_v(v, n, PROT_READ | PROT_WRITE, &sc->mprotect))
		goto undo;
	if (!__atomic_load_n(&no_populate_write, __ATOMIC_RELAXED) &&
	    !__atomic_load_n(&force_touch, __ATOMIC_RELAXED)) {
		if (madvise_v(v, n, MADV_POPULATE_WRITE, &sc->populate) == 0)
			return 0;
		if (errno != EINVAL && errno != ENOSYS)
			goto undo;
		__atomic_store_n(&no_populate_write, 1, __ATOMIC_RELAXED);
	}
	for (int i = 0; i < n; i++)
		touch_pages(v[i].iov_base, v[i].iov_len);
	return 0;
undo:
	/* nothing half-done: drop whatever got in (and fault again) */
	(void)madvise_v(v, n, MADV_DONTNEED, &sc->depopulate);
	if (protect)
		(void)protect_v(v, n, PROT_NONE, &sc->mprotect);
	errno = ENOMEM;
	return -1;
}

int os_depopulate_v(const struct iovec *v, int n, enum os_depop_how how, struct os_syscalls *sc)
{
	int rc;

	if (!ranges_ok(v, n))
		return -1;
	if (os_fault_check(OS_OP_DEPOPULATE))
		return -1;
	if (how == OS_DEPOP_FREE && !__atomic_load_n(&no_madv_free, __ATOMIC_RELAXED)) {
		rc = madvise_v(v, n, MADV_FREE, &sc->depopulate);
		if (rc == 0 || errno != EINVAL)
			return rc;
		__atomic_store_n(&no_madv_free, 1, __ATOMIC_RELAXED);
	}
	rc = madvise_v(v, n, MADV_DONTNEED, &sc->depopulate);
	if (how == OS_DEPOP_PROTECT && protect_v(v, n, PROT_NONE, &sc->mprotect))
		rc = -1;
	return rc;
}

int os_map_rw(void *addr, size_t size, struct os_syscalls *sc)
{
	size_t len = range_check(addr, size, OS_OP_POPULATE);

	if (!len)
		return -1;
	sc->mprotect++;
	if (mprotect(addr, len, PROT_READ | PROT_WRITE)) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int os_unmap_rw(void *addr, size_t size, struct os_syscalls *sc)
{
	size_t len = range_check(addr, size, OS_OP_DEPOPULATE);
	int rc;

	if (!len)
		return -1;
	sc->depopulate++;
	rc = madvise(addr, len, MADV_DONTNEED);
	sc->mprotect++;
	if (mprotect(addr, len, PROT_NONE))
		rc = -1;
	return rc;
}

int os_bind_node(void *addr, size_t size, int node)
{
	unsigned long mask[OS_MAX_NODES / (8 * sizeof(unsigned long))];
	const size_t bits = 8 * sizeof(unsigned long);
	size_t len, words;
	long rc;

	if (size == 0 || node < 0)
		return 0;
	len = range_check(addr, size, OS_OP_BIND);
	if (!len)
		return -1;
	if (os_nr_nodes() <= 1)
		return 0;
	if (!os_node_online(node) || node >= OS_MAX_NODES) {
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
