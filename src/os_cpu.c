/*
 * os_cpu.c - the thread's rseq area, membarrier and the auxiliary vector
 * (see os_cpu.h for the contract).  The only file of the library that
 * knows glibc's rseq symbols or issues membarrier.
 */
#define _GNU_SOURCE   /* sched_getcpu */
#include "os_cpu.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#if defined(RSEQ_SIG)
#define HAVE_RSEQ_AREA 1
#endif
#endif
#endif

#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif
#define RSEQ_ORIG_SIZE 32               /* the first ABI's area: allocated by every glibc */
#define RSEQ_ORIG_FEATURES 20           /* ... of which the first kernels kept 20 bytes */

/* From <linux/membarrier.h> (Linux 5.10), which older headers lack. */
#define MB_CMD_PRIVATE_EXPEDITED_RSEQ (1 << 7)
#define MB_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ (1 << 8)
#define MB_CMD_FLAG_CPU (1 << 0)

static unsigned int g_hide;             /* OS_CPU_* test hooks */

void os_cpu_test_set(unsigned int hide)
{
	__atomic_store_n(&g_hide, hide, __ATOMIC_RELAXED);
}

static bool hidden(unsigned int what)
{
	return __atomic_load_n(&g_hide, __ATOMIC_RELAXED) & what;
}

int os_rseq_probe(struct os_rseq *out)
{
	memset(out, 0, sizeof(*out));
#ifdef HAVE_RSEQ_AREA
	unsigned long features = getauxval(AT_RSEQ_FEATURE_SIZE);
	unsigned int published = __rseq_size;

	out->area = __rseq_offset;
	if (hidden(OS_CPU_FAKE_RSEQ) && published == 0) {
		out->registered = true;          /* a test writes the fields itself */
		out->size = RSEQ_ORIG_FEATURES;
		return 0;
	}
	if (published == 0 || hidden(OS_CPU_HIDE_RSEQ))
		return 0;
	out->registered = true;
	if (features < RSEQ_ORIG_FEATURES)
		features = RSEQ_ORIG_FEATURES;
	/* 20 and 32 both mean "glibc registered the original 32 bytes". */
	if (published == RSEQ_ORIG_FEATURES || published == RSEQ_ORIG_SIZE)
		published = RSEQ_ORIG_SIZE;
	out->size = features < published ? (unsigned int)features : published;
	out->mm_cid = out->size >= OS_RSEQ_MM_CID + sizeof(uint32_t) && !hidden(OS_CPU_HIDE_MM_CID);
	return 0;
#else
	errno = ENOSYS;
	return -1;
#endif
}

int os_getcpu(void)
{
	return sched_getcpu();
}

static int membarrier(int cmd, unsigned int flags, int cpu)
{
	if (hidden(OS_CPU_HIDE_MEMBARRIER)) {
		errno = ENOSYS;
		return -1;
	}
	return (int)syscall(SYS_membarrier, cmd, flags, cpu);
}

int os_membarrier_rseq_register(void)
{
	return membarrier(MB_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0);
}

int os_membarrier_rseq(void)
{
	return membarrier(MB_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0);
}

bool os_rseq_faked(void)
{
	return hidden(OS_CPU_FAKE_RSEQ);
}

int os_membarrier_rseq_cpu(unsigned int cpu)
{
	if (membarrier(MB_CMD_PRIVATE_EXPEDITED_RSEQ, MB_CMD_FLAG_CPU, (int)cpu) == 0)
		return 0;
	return errno == EINVAL ? os_membarrier_rseq() : -1;
}
