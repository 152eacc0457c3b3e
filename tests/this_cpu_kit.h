/*
 * this_cpu_kit.h - what the test_this_cpu* programs share: CPU affinity
 * helpers (cpu_kit.h), a fork runner, re-running this program under another
 * environment, whether this process is to run in rseq mode, and the stress
 * workload.
 *
 * The stress: 4 x (allowed CPUs) worker threads run a random mix of every
 * this_cpu operation on every width while a 0.5 ms interval timer signals
 * the process (the handler does this_cpu operations too), workers
 * sched_yield now and then, and a flipper thread keeps moving the workers
 * between CPUs.  Every check is exact:
 *   counters  add/sub/inc/dec/add_return and cmpxchg-increments on
 *             8/16/32/64-bit copies: the sum over copies equals the sum of
 *             what every thread (and the signal handler) applied, mod 2^N;
 *   tokens    xchg and cmpxchg move unique tokens (integers of each width
 *             and pointers) between copies and threads: at the end every
 *             token exists exactly once;
 *   patterns  writes of byte-repeated values: no read, local or of another
 *             CPU's copy, ever sees a mixed value.
 */
#ifndef PCPU_TEST_THIS_CPU_KIT_H
#define PCPU_TEST_THIS_CPU_KIT_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "child_wait.h"
#include "cpu.h"
#include "cpu_kit.h"
#include "os_cpu.h"
#include "percpu.h"

/* Not every test uses every helper. */
#define KIT_FN static __attribute__((unused))

#if defined(__SANITIZE_THREAD__)
#define KIT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KIT_TSAN 1
#endif
#endif
#ifndef KIT_TSAN
#define KIT_TSAN 0
#endif

static uint64_t kit_seed;

static bool kit_quiet;

/* Run fn(arg) in a forked child under alarm(KIT_RUN_ALARM), killed by the
 * parent (child_wait.h) if it outlives that by CHILD_WAIT_GRACE seconds;
 * true if it exited 0. */
#define KIT_RUN_ALARM 300
KIT_FN bool kit_run(const char *name, int (*fn)(long), long arg)
{
	bool killed;
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		check_passed = check_failed = 0;
		rng_state = kit_seed + (uint64_t)arg * 7919;
		alarm(KIT_RUN_ALARM);
		int rc = fn(arg);

		if (!kit_quiet || check_failed)
			printf("  %s(%ld): %lu passed, %lu failed\n", name, arg, check_passed, check_failed);
		fflush(stdout);
		_exit(rc || check_failed ? 1 : 0);
	}
	REQUIRE(child_wait(pid, &status, KIT_RUN_ALARM + CHILD_WAIT_GRACE, &killed) == pid, "waitpid");
	if (killed)
		printf("  %s(%ld): no exit after %d s: killed\n", name, arg, KIT_RUN_ALARM + CHILD_WAIT_GRACE);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s(%ld): child status %#x", name, arg,
	      status);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* kit_run without the per-child summary line (for repeated races). */
KIT_FN bool kit_run_quiet(const char *name, int (*fn)(long), long arg)
{
	bool ok;

	kit_quiet = true;
	ok = kit_run(name, fn, arg);
	kit_quiet = false;
	return ok;
}

/*
 * Run this program again as `argv0 SEED mode` with env ("NAME=value" or
 * NULL) added and, if cpu >= 0, only CPU cpu allowed.  Returns its exit
 * status (77: skipped), or -1.
 */
KIT_FN int kit_exec_self(const char *argv0, const char *mode, const char *env, int cpu)
{
	char seed[32];
	int status;
	pid_t pid;

	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)kit_seed);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char *args[] = { (char *)argv0, seed, (char *)mode, NULL };

		if (env)
			putenv((char *)env);
		if (cpu >= 0 && !kit_pin(cpu))
			_exit(126);
		execv("/proc/self/exe", args);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/*
 * Whether this process is to run the this_cpu operations in rseq mode:
 * they are built with it, and the process has an rseq area and can
 * register for membarrier's rseq fence.  Inline, so that a program that
 * does not call it (test_this_cpu_cxx.cpp, which sees only the public
 * symbols) does not refer to the library's internal ones.
 */
static inline bool kit_rseq_expected(void)
{
#ifdef PCPU_HAVE_RSEQ_OPS
	return pcpu_cpu_rseq_active() && os_membarrier_rseq_register() == 0;
#else
	return false;
#endif
}

/* True if glibc's rseq was turned off in this process's environment. */
KIT_FN bool kit_rseq_tunable_off(void)
{
	const char *t = getenv("GLIBC_TUNABLES");

	return t && strstr(t, "glibc.pthread.rseq=0");
}

/* ---- the stress workload -------------------------------------------------- */

#define KIT_MAX_THREADS 256
#define KIT_MAX_TOKENS (PCPU_MAX_CPUS + KIT_MAX_THREADS + 1)

struct kit_handles {
	uint8_t __percpu *c8;
	uint16_t __percpu *c16;
	uint32_t __percpu *c32;
	uint64_t __percpu *c64;         /* counters */
	uint8_t __percpu *t8;
	uint16_t __percpu *t16;
	uint32_t __percpu *t32;
	uint64_t __percpu *t64;
	char *__percpu *tp;             /* tokens */
	uint16_t __percpu *w16;
	uint64_t __percpu *w64;         /* patterns */
	uint64_t __percpu *stat64;      /* optional: a PCPU_DEFINE counter, or NULL */
};

struct kit_worker {
	pthread_t thr;
	int id;
	uint64_t rng;
	long ops;
	uint64_t exp[4];                /* applied to c8..c64 */
	uint64_t stat_exp;              /* applied to stat64 */
	uint64_t tok[4];                /* held: t8..t64 */
	char *tokp;                     /* held: tp */
	long bad_patterns;
	pid_t tid;
};

static struct kit_handles kit_h;
static struct kit_worker kit_workers[KIT_MAX_THREADS];
static int kit_nr_workers;
static char kit_token_objs[KIT_MAX_TOKENS];
static unsigned long kit_sigs;          /* signal handler runs */
static int kit_finished, kit_release;

KIT_FN uint64_t kit_rng(struct kit_worker *w)
{
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 2685821657736338717ULL;
}

KIT_FN void kit_sig_handler(int sig)
{
	(void)sig;
	this_cpu_inc(kit_h.c64);
	this_cpu_add(kit_h.c8, 1);
	__atomic_fetch_add(&kit_sigs, 1, __ATOMIC_RELAXED);
}

KIT_FN bool kit_is_pattern16(uint16_t v) { return (v >> 8) == (v & 0xff); }
KIT_FN bool kit_is_pattern64(uint64_t v) { return v == (v & 0xff) * 0x0101010101010101ULL; }

/* One width's counter operations; d is the delta, exp the running total. */
#define KIT_COUNTER_OP(h, type, op, d, exp)                                         \
	do {                                                                        \
		type d_ = (type)(d);                                                \
		switch (op) {                                                       \
		case 0: this_cpu_add(h, d_); exp += d_; break;                      \
		case 1: this_cpu_sub(h, d_); exp -= d_; break;                      \
		case 2: this_cpu_inc(h); exp += 1; break;                           \
		case 3: this_cpu_dec(h); exp -= 1; break;                           \
		case 4: (void)this_cpu_add_return(h, d_); exp += d_; break;         \
		default: {                                                          \
			type cur_ = this_cpu_read(h);                               \
			if (this_cpu_cmpxchg(h, cur_, (type)(cur_ + d_)) == cur_)   \
				exp += d_;                                          \
		}                                                                   \
		}                                                                   \
	} while (0)

/* Token moves: xchg gives ours and takes the copy's; cmpxchg does the same
 * only if the copy still holds what we read. */
#define KIT_TOKEN_OP(h, type, xchg, held)                                           \
	do {                                                                        \
		type mine_ = (type)(held);                                          \
		if (xchg) {                                                         \
			held = this_cpu_xchg(h, mine_);                             \
		} else {                                                            \
			type cur_ = this_cpu_read(h);                               \
			if (this_cpu_cmpxchg(h, cur_, mine_) == cur_)               \
				held = cur_;                                        \
		}                                                                   \
	} while (0)

static void *kit_worker_main(void *arg)
{
	struct kit_worker *w = (struct kit_worker *)arg;
	unsigned int nr = pcpu_nr_cpus();

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELAXED);
	for (long i = 0; i < w->ops; i++) {
		uint64_t r = kit_rng(w);
		unsigned op = (unsigned)(r >> 8) % 6, width = (unsigned)(r >> 12) % 4;
		uint64_t d = (r >> 16) % 1000;

		switch (r % 8) {
		case 0: case 1: case 2:
			if (width == 0)
				KIT_COUNTER_OP(kit_h.c8, uint8_t, op, d, w->exp[0]);
			else if (width == 1)
				KIT_COUNTER_OP(kit_h.c16, uint16_t, op, d, w->exp[1]);
			else if (width == 2)
				KIT_COUNTER_OP(kit_h.c32, uint32_t, op, d, w->exp[2]);
			else
				KIT_COUNTER_OP(kit_h.c64, uint64_t, op, d << 40 | d, w->exp[3]);
			break;
		case 3: case 4: {
			bool x = op & 1;

			if (width == 0 && kit_h.t8)
				KIT_TOKEN_OP(kit_h.t8, uint8_t, x, w->tok[0]);
			else if (width == 1)
				KIT_TOKEN_OP(kit_h.t16, uint16_t, x, w->tok[1]);
			else if (width == 2)
				KIT_TOKEN_OP(kit_h.t32, uint32_t, x, w->tok[2]);
			else if (op < 3)
				KIT_TOKEN_OP(kit_h.t64, uint64_t, x, w->tok[3]);
			else
				KIT_TOKEN_OP(kit_h.tp, char *, x, w->tokp);
			break;
		}
		case 5: {
			uint8_t b = (uint8_t)(r >> 24);

			this_cpu_write(kit_h.w16, (uint16_t)(b * 0x0101u));
			this_cpu_write(kit_h.w64, b * 0x0101010101010101ULL);
			break;
		}
		case 6: {
			unsigned c = (unsigned)(r >> 32) % nr;

			if (!kit_is_pattern16(this_cpu_read(kit_h.w16)) ||
			    !kit_is_pattern64(this_cpu_read(kit_h.w64)) ||
			    !kit_is_pattern64(__atomic_load_n(per_cpu_ptr(kit_h.w64, c), __ATOMIC_RELAXED)) ||
			    !kit_is_pattern16(__atomic_load_n(per_cpu_ptr(kit_h.w16, c), __ATOMIC_RELAXED)))
				w->bad_patterns++;
			break;
		}
		default:
			if (kit_h.stat64) {
				this_cpu_inc(kit_h.stat64);
				w->stat_exp++;
			}
			if ((r >> 40) % 64 == 0)
				sched_yield();
			break;
		}
	}
	__atomic_fetch_add(&kit_finished, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&kit_release, __ATOMIC_ACQUIRE))
		sched_yield();
	return NULL;
}

/* Moves workers between CPUs until they all finished their operations. */
static void *kit_flipper(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg | 1;

	while (__atomic_load_n(&kit_finished, __ATOMIC_ACQUIRE) < kit_nr_workers) {
		struct kit_worker *w;

		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		w = &kit_workers[rng % (uint64_t)kit_nr_workers];
		kit_flip(__atomic_load_n(&w->tid, __ATOMIC_RELAXED), rng);
	}
	return NULL;
}

KIT_FN int kit_alloc_handles(bool with_t8, uint64_t __percpu *stat64)
{
	kit_h.c8 = (uint8_t __percpu *)pcpu_alloc(1, 1);
	kit_h.c16 = (uint16_t __percpu *)pcpu_alloc(2, 2);
	kit_h.c32 = (uint32_t __percpu *)pcpu_alloc(4, 4);
	kit_h.c64 = (uint64_t __percpu *)pcpu_alloc(8, 8);
	kit_h.t8 = with_t8 ? (uint8_t __percpu *)pcpu_alloc(1, 1) : NULL;
	kit_h.t16 = (uint16_t __percpu *)pcpu_alloc(2, 2);
	kit_h.t32 = (uint32_t __percpu *)pcpu_alloc(4, 4);
	kit_h.t64 = (uint64_t __percpu *)pcpu_alloc(8, 8);
	kit_h.tp = (char *__percpu *)pcpu_alloc(sizeof(char *), sizeof(char *));
	kit_h.w16 = (uint16_t __percpu *)pcpu_alloc(2, 2);
	kit_h.w64 = (uint64_t __percpu *)pcpu_alloc(8, 8);
	kit_h.stat64 = stat64;
	return kit_h.c8 && kit_h.c16 && kit_h.c32 && kit_h.c64 && (kit_h.t8 || !with_t8) &&
	       kit_h.t16 && kit_h.t32 && kit_h.t64 && kit_h.tp && kit_h.w16 && kit_h.w64 ? 0 : -1;
}

/* Count each token once: copies' and threads'.  Tokens are 1..n. */
KIT_FN void kit_check_tokens(const char *what, unsigned n, uint64_t (*copy)(unsigned cpu),
			     uint64_t (*held)(const struct kit_worker *w))
{
	static unsigned char seen[KIT_MAX_TOKENS];
	unsigned bad = 0;

	memset(seen, 0, sizeof(seen));
	for (unsigned c = 0; c < pcpu_nr_cpus(); c++) {
		uint64_t t = copy(c);

		bad += t < 1 || t > n || seen[t]++;
	}
	for (int i = 0; i < kit_nr_workers; i++) {
		uint64_t t = held(&kit_workers[i]);

		bad += t < 1 || t > n || seen[t]++;
	}
	CHECK(bad == 0, "%s tokens: %u lost or duplicated of %u", what, bad, n);
}

#define KIT_TOKEN_FNS(name, h, expr_held)                                               \
	KIT_FN uint64_t kit_copy_##name(unsigned c)                                     \
	{                                                                               \
		return (uint64_t)*per_cpu_ptr(kit_h.h, c);                              \
	}                                                                               \
	KIT_FN uint64_t kit_held_##name(const struct kit_worker *w) { return expr_held; }
KIT_TOKEN_FNS(t8, t8, w->tok[0])
KIT_TOKEN_FNS(t16, t16, w->tok[1])
KIT_TOKEN_FNS(t32, t32, w->tok[2])
KIT_TOKEN_FNS(t64, t64, w->tok[3])
KIT_FN uint64_t kit_copy_tp(unsigned c)
{
	return (uint64_t)(*per_cpu_ptr(kit_h.tp, c) - kit_token_objs);
}
KIT_FN uint64_t kit_held_tp(const struct kit_worker *w)
{
	return (uint64_t)(w->tokp - kit_token_objs);
}

/*
 * Run the stress with nthreads workers (at most KIT_MAX_THREADS) of ops
 * operations each (handles allocated by kit_alloc_handles), then check
 * everything.  The caller checks the mode.
 */
KIT_FN void kit_stress(int nthreads, long ops)
{
	unsigned nr = pcpu_nr_cpus(), ntok = nr + (unsigned)nthreads;
	uint64_t sum[4] = { 0 }, exp[4] = { 0 }, stat_before = 0, stat_exp = 0, stat_sum;
	struct sigaction sa;
	struct sigevent sev;
	struct itimerspec its = { { 0, 500000 }, { 0, 500000 } };
	timer_t timer;
	pthread_t flipper;
	sigset_t usr1;
	long bad = 0;

	if (nthreads > KIT_MAX_THREADS)
		nthreads = KIT_MAX_THREADS;
	ntok = nr + (unsigned)nthreads;
	if (ntok > 255 && kit_h.t8)
		kit_h.t8 = NULL;        /* 8-bit tokens run out */
	kit_nr_workers = nthreads;
	kit_finished = kit_release = 0;
	kit_sigs = 0;
	for (unsigned c = 0; c < nr; c++) {
		if (kit_h.t8)
			*per_cpu_ptr(kit_h.t8, c) = (uint8_t)(c + 1);
		*per_cpu_ptr(kit_h.t16, c) = (uint16_t)(c + 1);
		*per_cpu_ptr(kit_h.t32, c) = c + 1;
		*per_cpu_ptr(kit_h.t64, c) = c + 1;
		*per_cpu_ptr(kit_h.tp, c) = &kit_token_objs[c + 1];
	}
	if (kit_h.stat64)
		stat_before = pcpu_sum(kit_h.stat64);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kit_sig_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	REQUIRE(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0, "timer_create: %s", strerror(errno));
#if KIT_TSAN
	/* ThreadSanitizer's runtime can deadlock when a signal lands while it
	 * holds one of its own locks (seen: a handler's first access waiting on
	 * the lock the interrupted free() held), and the child's alarm() stays
	 * blocked in its handler: the TSan build runs the stress without the
	 * timer's signals; the native and ASan builds keep them. */
	(void)its;
#else
	REQUIRE(timer_settime(timer, 0, &its, NULL) == 0, "timer_settime");
#endif

	for (int i = 0; i < nthreads; i++) {
		struct kit_worker *w = &kit_workers[i];

		memset(w, 0, sizeof(*w));
		w->id = i;
		w->rng = rng_next() | 1;
		w->ops = ops;
		for (int k = 0; k < 4; k++)
			w->tok[k] = nr + (unsigned)i + 1;
		w->tokp = &kit_token_objs[nr + (unsigned)i + 1];
		REQUIRE(pthread_create(&w->thr, NULL, kit_worker_main, w) == 0, "pthread_create");
	}
	REQUIRE(pthread_create(&flipper, NULL, kit_flipper, (void *)(uintptr_t)rng_next()) == 0,
		"pthread_create");
	pthread_join(flipper, NULL);
	__atomic_store_n(&kit_release, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < nthreads; i++)
		pthread_join(kit_workers[i].thr, NULL);
	/* No handler runs after this: the timer is gone, and a signal still
	 * pending stays so, blocked in the only thread left. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	timer_delete(timer);

	for (int i = 0; i < nthreads; i++) {
		for (int k = 0; k < 4; k++)
			exp[k] += kit_workers[i].exp[k];
		stat_exp += kit_workers[i].stat_exp;
		bad += kit_workers[i].bad_patterns;
	}
	exp[0] += kit_sigs;
	exp[3] += kit_sigs;
	for (unsigned c = 0; c < nr; c++) {
		sum[0] += *per_cpu_ptr(kit_h.c8, c);
		sum[1] += *per_cpu_ptr(kit_h.c16, c);
		sum[2] += *per_cpu_ptr(kit_h.c32, c);
		sum[3] += *per_cpu_ptr(kit_h.c64, c);
	}
	printf("    %d threads x %ld ops, %lu signals, mode %#x\n", nthreads, ops, kit_sigs,
	       pcpu_this_cpu_mode());
	CHECK((uint8_t)sum[0] == (uint8_t)exp[0], "8-bit sum %#x, want %#x", (unsigned)(uint8_t)sum[0],
	      (unsigned)(uint8_t)exp[0]);
	CHECK((uint16_t)sum[1] == (uint16_t)exp[1], "16-bit sum %#x, want %#x",
	      (unsigned)(uint16_t)sum[1], (unsigned)(uint16_t)exp[1]);
	CHECK((uint32_t)sum[2] == (uint32_t)exp[2], "32-bit sum %#x, want %#x", (uint32_t)sum[2],
	      (uint32_t)exp[2]);
	CHECK(sum[3] == exp[3], "64-bit sum %#llx, want %#llx", (unsigned long long)sum[3],
	      (unsigned long long)exp[3]);
	if (kit_h.stat64) {
		stat_sum = pcpu_sum(kit_h.stat64) - stat_before;
		CHECK(stat_sum == stat_exp, "static sum %llu, want %llu", (unsigned long long)stat_sum,
		      (unsigned long long)stat_exp);
	}
	if (kit_h.t8)
		kit_check_tokens("8-bit", ntok, kit_copy_t8, kit_held_t8);
	kit_check_tokens("16-bit", ntok, kit_copy_t16, kit_held_t16);
	kit_check_tokens("32-bit", ntok, kit_copy_t32, kit_held_t32);
	kit_check_tokens("64-bit", ntok, kit_copy_t64, kit_held_t64);
	kit_check_tokens("pointer", ntok, kit_copy_tp, kit_held_tp);
	CHECK(bad == 0, "%ld reads saw a torn value", bad);
}

#endif
