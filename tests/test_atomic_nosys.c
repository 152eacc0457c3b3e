/*
 * test_atomic_nosys.c - a PCPU_ATOMIC allocation makes no system call,
 * successful or not, and waits on no lock held across one.
 *
 * In a forked child a "window" thread installs a seccomp filter on itself
 * (the filter binds the calling thread only) that allows exit and
 * exit_group and traps every other system call, write included; the
 * trap's handler records the call's number in memory shared with the
 * parent and ends the process with exit status 86.  Inside the window
 * the thread makes atomic allocations: successes, failures once populated
 * memory is exhausted (with and without PCPU_NOWARN), successes while the
 * pool is below its low mark, reserved ones until the reserved area is
 * full.  It leaves with the raw exit system call (returning from a thread
 * makes system calls in glibc).  Meanwhile the child's main thread holds
 * the population mutex, as a blocking allocation populating pages does:
 * an atomic allocation that waited for it would trap.  After the window
 * the main thread checks every result, the counters, the invariants, and
 * that the deferred warning and the balance request were not lost: in the
 * PCPU_CFG_NO_BALANCER case pcpu_balance() prints the warning and refills;
 * in the default case the balancer thread hears the flags alone.  A last
 * window runs while a blocking caller holds the metadata lock's mutex
 * (lock.h: between taking it and taking the lock's word) and another
 * sleeps on it: atomic allocations take the word alone, so they neither
 * wait for the mutex nor wake its sleeper.
 *
 * `test_atomic_nosys --contend N` (not run by CTest: it measures) repeats
 * N windows of atomic allocations while another thread keeps taking the
 * metadata lock, and prints how many windows made a system call and which.
 *
 * Skips (77) where seccomp filters are unavailable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <sched.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kit.h"
#include "percpu.h"
#include "pool_init.h"

#if defined(__x86_64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_AARCH64
#endif

#define TRAPPED 86           /* exit status of a child whose window made a system call */

/* Shared with the parent (MAP_SHARED before the fork): the number of the
 * system call the trap saw, -1 if none. */
static int *trap_nr;

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	*trap_nr = si->si_syscall;
	syscall(SYS_exit_group, TRAPPED);
}

/* The name of a system call the library might make, for the failure message. */
static const char *sys_name(int nr)
{
	switch (nr) {
	case __NR_write: return "write";
	case __NR_futex: return "futex";
	case __NR_rt_sigprocmask: return "rt_sigprocmask";
	case __NR_mmap: return "mmap";
	case __NR_munmap: return "munmap";
	case __NR_mprotect: return "mprotect";
	case __NR_madvise: return "madvise";
	case __NR_clone: return "clone";
#ifdef __NR_clone3
	case __NR_clone3: return "clone3";
#endif
	case __NR_sched_yield: return "sched_yield";
	case __NR_getcpu: return "getcpu";
	case __NR_membarrier: return "membarrier";
	default: return "see <asm/unistd.h>";
	}
}

/* Allow exit and exit_group, trap everything else.  0, or -1 with errno. */
static int install_filter(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_SELF, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* ---- the window ------------------------------------------------------------------ */

#define NSMALL 8
#define MAXPAGE 256
#define MAXRES 4096
#define NCONTEND 2000

struct window {
	unsigned warn;                   /* 0 or PCPU_NOWARN */
	size_t page, unit;
	int filter_err;                  /* errno of a failed install_filter, else 0 */
	void *small[NSMALL];             /* 16 B while the pool is above its low mark */
	void *page_obj[MAXPAGE];         /* page-sized until the first failure */
	int npage, page_errno;
	void *low[NSMALL];               /* 16 B once no empty populated page is left */
	void *unit_obj;                  /* a whole unit: nothing populated fits */
	int unit_errno;
	void *bad_obj;          /* an invalid atomic request: EINVAL, still no system call */
	int bad_errno;
	void *res[MAXRES];               /* PCPU_RESERVED until the first failure */
	int nres, res_errno;
	void *contend[NCONTEND];         /* contend mode: 4 B each */
	bool contend_mode;
};

/* Inside the window: atomic allocations only, results into w. */
static void window_allocs(struct window *w)
{
	unsigned fl = PCPU_ATOMIC | w->warn;

	if (w->contend_mode) {
		for (int i = 0; i < NCONTEND; i++)
			w->contend[i] = pcpu_alloc_flags(4, 4, fl);
		return;
	}
	for (int i = 0; i < NSMALL; i++)
		w->small[i] = pcpu_alloc_flags(16, 4, fl);
	for (w->npage = 0; w->npage < MAXPAGE; w->npage++) {
		errno = 0;
		w->page_obj[w->npage] = pcpu_alloc_flags(w->page, w->page, fl);
		if (!w->page_obj[w->npage]) {
			w->page_errno = errno;
			break;
		}
	}
	for (int i = 0; i < NSMALL; i++)
		w->low[i] = pcpu_alloc_flags(16, 4, fl);
	errno = 0;
	w->unit_obj = pcpu_alloc_flags(w->unit, 4, fl);
	w->unit_errno = errno;
	errno = 0;
	w->bad_obj = pcpu_alloc_flags(0, 3, fl);
	w->bad_errno = errno;
	for (w->nres = 0; w->nres < MAXRES; w->nres++) {
		errno = 0;
		w->res[w->nres] = pcpu_alloc_flags(64, 4, fl | PCPU_RESERVED);
		if (!w->res[w->nres]) {
			w->res_errno = errno;
			break;
		}
	}
}

/* Pin the calling thread to the n-th CPU it may run on (contend mode: the
 * two threads on two CPUs, so that they really run at the same time). */
static void pin_to(int n)
{
	cpu_set_t all, one;

	if (sched_getaffinity(0, sizeof(all), &all) || CPU_COUNT(&all) < 2)
		return;
	CPU_ZERO(&one);
	for (int c = 0, k = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &all) && k++ == n)
			CPU_SET(c, &one);
	sched_setaffinity(0, sizeof(one), &one);
}

static void *window_thread(void *arg)
{
	struct window *w = arg;

	if (w->contend_mode)
		pin_to(0);
	if (install_filter()) {
		w->filter_err = errno;
		return NULL;
	}
	window_allocs(w);
	/* Only the thread ends: the main thread's pthread_join sees it go
	 * (the kernel clears the thread id and wakes the joiner). */
	syscall(SYS_exit, 0);
	return NULL;
}

static void run_window(struct window *w)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	pthread_t t;

	sigemptyset(&sa.sa_mask);
	REQUIRE(sigaction(SIGSYS, &sa, NULL) == 0, "sigaction");
	kit_start_threads(&t, 1, window_thread, w, 0);
	kit_join_threads(&t, 1, NULL);
	if (w->filter_err) {
		dprintf(kit_report_fd, "SKIP seccomp filter: %s\n", strerror(w->filter_err));
		_exit(77);
	}
}

/* ---- the checked windows ---------------------------------------------------------- */

/* Distinct live handles, zeroed in every CPU's copy. */
static bool fresh(void *const *h, int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		if (!h[i] || !kit_zeroed(h[i], size, 4) || pcpu_alloc_size(h[i]) != size)
			return false;
		for (int j = 0; j < i; j++)
			if (h[i] == h[j])
				return false;
	}
	return true;
}

/* arg: bit 0 PCPU_NOWARN, bit 1 the balancer thread runs. */
static int child_window(long arg)
{
	bool nowarn = arg & 1, balancer = arg & 2;
	struct pcpu_config cfg = { .nr_cpus = 4, .empty_pop_low = 2, .empty_pop_high = 4,
				   .flags = balancer ? 0 : PCPU_CFG_NO_BALANCER };
	static struct window w;

	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
	struct pcpu_stats s0 = kit_stats();
	REQUIRE(s0.nr_empty_pop_pages > 2, "the first chunk starts above the low mark (%llu pages)",
		(unsigned long long)s0.nr_empty_pop_pages);
	w.warn = nowarn ? PCPU_NOWARN : 0;
	w.page = s0.page_size;
	w.unit = s0.unit_size;

	/* The population mutex is held across the window, as by a blocking
	 * allocation in the middle of populating pages (a balance pass that
	 * was running has finished when it is taken, and none can start). */
	pcpu_lock(&pcpu_pool.pop_mutex);
	/* What chunks and pages there are now: a balance pass that ran
	 * before the mutex was taken may have added some. */
	struct pcpu_stats s_in = kit_stats();

	run_window(&w);
	/* Chunks and pages before the mutex is dropped: then the balancer
	 * thread may populate at once, for the requests the window left. */
	struct pcpu_stats s_out = kit_stats();
	pcpu_unlock(&pcpu_pool.pop_mutex);

	struct pcpu_stats s1 = kit_stats();
	CHECK(fresh(w.small, NSMALL, 16), "atomic 16 B allocations above the low mark");
	CHECK(w.npage >= 1 && w.npage < MAXPAGE && w.page_errno == ENOMEM,
	      "page-sized atomic allocations: %d, then errno %d", w.npage, w.page_errno);
	CHECK(fresh(w.page_obj, w.npage, w.page), "page-sized objects");
	CHECK(fresh(w.low, NSMALL, 16), "atomic 16 B allocations below the low mark");
	CHECK(!w.unit_obj && w.unit_errno == ENOMEM, "whole-unit atomic allocation: %p errno %d",
	      w.unit_obj, w.unit_errno);
	CHECK(!w.bad_obj && w.bad_errno == EINVAL, "invalid atomic request: %p errno %d", w.bad_obj,
	      w.bad_errno);
	CHECK(w.nres >= 1 && w.nres < MAXRES && w.res_errno == ENOMEM,
	      "reserved atomic allocations: %d, then errno %d", w.nres, w.res_errno);
	CHECK(fresh(w.res, w.nres, 64), "reserved objects");
	CHECK(s1.nr_atomic_fail == s0.nr_atomic_fail + 3 && s1.nr_alloc_fail == s0.nr_alloc_fail + 3,
	      "three atomic failures counted: %llu", (unsigned long long)s1.nr_atomic_fail);
	CHECK(s_out.nr_chunks == s_in.nr_chunks && s_out.nr_pages_populated == s_in.nr_pages_populated,
	      "no chunk made, nothing populated in the window");
	CHECK(pcpu_verify() == 0, "verify after the window");

	/* The window left requests behind: a deferred warning (unless
	 * PCPU_NOWARN) and balance flags.  Who hears them: */
	if (!balancer) {
		CHECK(kit_stats().nr_balance_passes == 0, "no pass ran without the balancer");
		CHECK(pcpu_balance() == 0, "pcpu_balance");
	} else {
		while (kit_stats().nr_balance_passes == s0.nr_balance_passes)
			usleep(1000);    /* the balancer polls the flags; a hang is the alarm */
		while (kit_stats().nr_empty_pop_pages < 4)
			usleep(1000);
	}
	struct pcpu_stats s2 = kit_stats();
	CHECK(s2.nr_balance_populated >= 1 && s2.nr_empty_pop_pages >= 4,
	      "refilled after the window: %llu pages populated, %llu empty populated",
	      (unsigned long long)s2.nr_balance_populated, (unsigned long long)s2.nr_empty_pop_pages);
	void *again = pcpu_alloc_flags(w.page, w.page, PCPU_ATOMIC);
	CHECK(again && kit_zeroed(again, w.page, w.page), "a page-sized atomic allocation after the refill");
	CHECK(pcpu_verify() == 0, "verify at the end");
	return 0;
}

/* ---- callers that may block, queued on the metadata lock ------------------------- */

static int sleeper_tid;
static void *sleeper_obj;

static void *sleeper(void *arg)
{
	(void)arg;
	__atomic_store_n(&sleeper_tid, (int)gettid(), __ATOMIC_RELEASE);
	sleeper_obj = pcpu_alloc(16, 4);          /* queues on the lock's mutex */
	return NULL;
}

/* Thread tid of this process is asleep (state S in its stat line). */
static bool asleep(int tid)
{
	char path[64], *text, *p;
	bool s;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	text = kit_read_file(path);
	p = text ? strrchr(text, ')') : NULL;
	s = p && p[1] == ' ' && p[2] == 'S';
	free(text);
	return s;
}

/*
 * The window while a blocking caller holds the lock's mutex (between
 * taking it and taking the word) and another sleeps on it: the atomic
 * allocations must neither wait for the mutex nor wake its sleeper.
 */
static int child_queued(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 4, .flags = PCPU_CFG_NO_BALANCER, .dyn_size = 64 << 10 };
	static struct window w = { .warn = PCPU_NOWARN, .contend_mode = true };
	pthread_t t;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0, "pcpu_init");
	pcpu_lock(&pcpu_pool.lock);
	kit_start_threads(&t, 1, sleeper, NULL, 0);
	while (!__atomic_load_n(&sleeper_tid, __ATOMIC_ACQUIRE) || !asleep(sleeper_tid))
		usleep(1000);
	pcpu_lock_note(&pcpu_pool.lock, false);                /* keep the mutex, let the word go */
	__atomic_store_n(&pcpu_pool.lock.spin, 0, __ATOMIC_RELEASE);
	run_window(&w);
	pcpu_spin_take(&pcpu_pool.lock.spin);
	pcpu_lock_note(&pcpu_pool.lock, true);
	pcpu_unlock(&pcpu_pool.lock);
	kit_join_threads(&t, 1, NULL);
	CHECK(fresh(w.contend, NCONTEND, 4), "atomic allocations beside the queued callers");
	CHECK(sleeper_obj && kit_zeroed(sleeper_obj, 16, 4), "the queued allocation");
	CHECK(pcpu_verify() == 0, "verify");
	return 0;
}

/* ---- contend mode (a measurement) ------------------------------------------------ */

static volatile bool contend_stop;

/* Take and release the metadata lock (pcpu_alloc_size) until told to stop. */
static void *lock_taker(void *arg)
{
	void *h = arg;

	pin_to(1);
	while (!__atomic_load_n(&contend_stop, __ATOMIC_RELAXED))
		if (pcpu_alloc_size(h) != 16)
			abort();
	return NULL;
}

static int child_contend(long arg)
{
	struct pcpu_config cfg = { .nr_cpus = 2, .flags = PCPU_CFG_NO_BALANCER, .dyn_size = 64 << 10 };
	static struct window w = { .warn = PCPU_NOWARN, .contend_mode = true };
	pthread_t t;
	void *h;

	(void)arg;
	REQUIRE(pcpu_init(&cfg) == 0 && (h = pcpu_alloc(16, 4)), "init");
	kit_start_threads(&t, 1, lock_taker, h, 0);
	run_window(&w);
	__atomic_store_n(&contend_stop, true, __ATOMIC_RELAXED);
	kit_join_threads(&t, 1, NULL);
	for (int i = 0; i < NCONTEND; i++)
		if (!w.contend[i])
			return 2;
	return pcpu_verify() == 0 ? 0 : 3;
}

/* Windows ended by a system call, by the call's number. */
static int contend(int runs)
{
	int trapped[512] = { 0 }, ntrapped = 0, failed = 0;

	for (int i = 0; i < runs; i++) {
		*trap_nr = -1;
		struct kit_child *c = kit_fork(child_contend, 0, 0, 60);

		if (kit_exited(c, 77))
			return 77;
		if (kit_exited(c, TRAPPED) && *trap_nr >= 0 && *trap_nr < 512) {
			trapped[*trap_nr]++;
			ntrapped++;
		} else if (!kit_exited(c, 0)) {
			failed++;
			fprintf(stderr, "run %d: %s\n%s", i, kit_status(c), c->err);
		}
	}
	printf("contend: %d windows of %d atomic allocations against a thread taking the lock: "
	       "%d made a system call", runs, NCONTEND, ntrapped);
	for (int nr = 0; nr < 512; nr++)
		if (trapped[nr])
			printf(", %d x %s (%d)", trapped[nr], sys_name(nr), nr);
	printf("; %d failed otherwise\n", failed);
	return failed ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
#ifndef AUDIT_ARCH_SELF
	printf("no seccomp architecture constant for this machine: skipping\n");
	return 77;
#endif
	trap_nr = mmap(NULL, sizeof(*trap_nr), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(trap_nr != MAP_FAILED, "mmap");
	if (argc > 2 && strcmp(argv[1], "--contend") == 0)
		return contend(atoi(argv[2]));

	for (long arg = 0; arg < 4; arg++) {
		const char *name[] = { "no balancer, warnings", "no balancer, PCPU_NOWARN",
				       "balancer thread, warnings", "balancer thread, PCPU_NOWARN" };
		*trap_nr = -1;
		struct kit_child *c = kit_fork(child_window, arg, 0, 120);

		if (kit_exited(c, 77)) {
			printf("%s", c->out);
			return 77;
		}
		if (kit_exited(c, TRAPPED))
			fprintf(stderr, "%s: the window made system call %d (%s)\n", name[arg], *trap_nr,
				sys_name(*trap_nr));
		KIT_EXPECT(c, KIT_EXIT(0), "%s", name[arg]);
		/* The three failures are reported, in one line or (the balancer
		 * thread flushing while the window runs) in several. */
		const char *key = " failed atomic allocations by PCPU_ATOMIC calls since the last report";
		int reported = 0;

		for (const char *p = strstr(c->err, "libpercpu: "); p; p = strstr(p + 1, "libpercpu: ")) {
			int n;
			char *end;

			n = (int)strtol(p + strlen("libpercpu: "), &end, 10);
			if (end != p + strlen("libpercpu: ") && !strncmp(end, key, strlen(key)))
				reported += n;
		}
		bool warned = reported == 3;

		CHECK(warned == !(arg & 1), "%s: the deferred warning %s: stderr \"%s\"", name[arg],
		      arg & 1 ? "printed despite PCPU_NOWARN" : "lost", c->err);
		CHECK(!(arg & 1) || !strstr(c->err, "libpercpu"), "%s: stderr \"%s\"", name[arg], c->err);
		printf("%s: %s\n", name[arg], kit_status(c));
	}
	*trap_nr = -1;
	struct kit_child *c = kit_fork(child_queued, 0, 0, 120);

	if (kit_exited(c, TRAPPED))
		fprintf(stderr, "queued callers: the window made system call %d (%s)\n", *trap_nr,
			sys_name(*trap_nr));
	KIT_EXPECT(c, KIT_EXIT(0), "one caller holding the lock's mutex, one asleep on it");
	printf("queued callers: %s\n", kit_status(c));
	TEST_DONE();
}
