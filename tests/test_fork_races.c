/*
 * test_fork_races.c - fork() while another thread is in the middle of
 * something that holds the allocator's state half-changed: the child must
 * never hang; it can allocate, free and exit.
 *
 *   init    a thread calls pcpu_init(NULL) while the main thread forks at
 *           a random moment; the grandchild allocates, checks and frees,
 *           and exits.  Each round is a fresh process (initialisation
 *           happens once per process).
 *   dlopen  a thread dlopens and dlcloses a library with static per-CPU
 *           variables (static_lib_b.c) in a loop while the main thread
 *           forks; each child allocates and frees and calls exit(), which
 *           runs the library's destructor when the library was loaded at
 *           the fork.
 *
 * The library is static_lib_b.c linked without the C start files (CMake
 * target pcpu_static_lib_fork): the start files make dlclose call
 * __cxa_finalize, which takes glibc's exit-handler lock, and glibc's fork
 * does not reset that lock in the child, so a child forked at that moment
 * hangs in exit() with or without libpercpu (glibc 2.36: 2 of 100 children
 * did, all in __run_exit_handlers).
 *
 * A child that has not exited after its alarm() is a hang.  Linked against
 * the shared libpercpu (like test_static), so only the public API is used.
 * Rounds: PCPU_FORK_ROUNDS (default 300 init rounds, and 3 times as many
 * forks in each dlopen case); the seed picks the delays.  On the code
 * before the fork fixes, 11 of 200 init rounds and 1-2 of 200 dlopen forks
 * hung.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kit.h"
#include "percpu.h"

#define CHILD_ALARM 20       /* seconds a forked child may take to allocate and exit */
#define HUNG 2               /* a child's exit status: its own child hung */

static uint64_t g_seed;
static int rounds = 300;

/* In a forked child: allocate, check the copies are zero, write them, free;
 * then exit() (atexit handlers and destructors run), or with `quick` _exit():
 * a child forked while another thread was inside dlopen or dlclose may find
 * ld.so's own list of objects half changed, and its exit then asserts in
 * _dl_fini ("Inconsistency detected by ld.so: dl-fini.c ... i < nloaded",
 * status 127, seen once in a few thousand forks here): glibc's race, not
 * the allocator's. */
static void __attribute__((noreturn)) child_alloc_exit(bool quick)
{
	bool ok = true;

	alarm(CHILD_ALARM);
	for (int i = 0; i < 4 && ok; i++) {
		long __percpu *h = pcpu_alloc(sizeof(long), sizeof(long));

		ok = h && kit_zeroed(h, sizeof(long), sizeof(long));
		if (h) {
			unsigned cpu;

			pcpu_for_each_cpu(cpu)
				*per_cpu_ptr(h, cpu) = cpu + 1;
			this_cpu_inc(h);
			ok = ok && pcpu_sum(h) == (long)pcpu_nr_cpus() * (pcpu_nr_cpus() + 1) / 2 + 1;
			pcpu_free(h);
		}
	}
	if (!ok)
		fprintf(stderr, "child %d: an allocation was not zeroed, or its sum was wrong\n", (int)getpid());
	ok = ok && pcpu_verify() == 0;
	if (quick)
		_exit(ok ? 0 : 3);
	exit(ok ? 0 : 3);
}

/* Wait for a child forked here: 0 if it exited 0, HUNG if its alarm ended it,
 * else 3 (with its status on stderr). */
static int reap(pid_t pid, const char *what, int round)
{
	int status;
	bool killed;

	if (child_wait(pid, &status, CHILD_ALARM + CHILD_WAIT_GRACE, &killed) != pid) {
		fprintf(stderr, "%s round %d: waitpid: %s\n", what, round, strerror(errno));
		return 3;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (killed || (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM))
		return HUNG;
	fprintf(stderr, "%s round %d: child status %#x\n", what, round, status);
	return 3;
}

/* Wait a random time, spinning up to max_spins iterations or sleeping up
 * to max_us: moves the fork across the other thread's work (initialisation
 * takes 8-20 ms on the test machine, a dlopen far less). */
static void random_delay(unsigned long max_spins, unsigned max_us)
{
	if (rng_below(2)) {
		for (unsigned long n = rng_below(max_spins); n; n--)
			__asm__ __volatile__("" ::: "memory");
	} else {
		usleep((useconds_t)rng_below(max_us));
	}
}

/* ---- init ----------------------------------------------------------------------- */

static void *init_thread(void *arg)
{
	int *rc = arg;

	*rc = pcpu_init(NULL) ? errno : 0;
	return NULL;
}

/* One round in a fresh process: HUNG if the grandchild hung, 3 on another
 * failure, else 0. */
static int child_init_race(long arg)
{
	static int init_rc = -1;
	pthread_t t;
	pid_t pid;
	int ret;

	(void)arg;
	kit_start_threads(&t, 1, init_thread, &init_rc, 0);
	random_delay(200000, 20000);
	pid = fork();
	if (pid == 0)
		child_alloc_exit(false);
	REQUIRE(pid > 0, "fork: %s", strerror(errno));
	ret = reap(pid, "init", (int)arg);
	kit_join_threads(&t, 1, NULL);
	CHECK(init_rc == 0, "pcpu_init in the thread: %s", strerror(init_rc));
	void *h = pcpu_alloc(16, 4);
	CHECK(h && pcpu_verify() == 0, "the parent allocates after the fork");
	pcpu_free(h);
	return ret;
}

static void test_init_race(void)
{
	int hung = 0, failed = 0;

	for (int i = 0; i < rounds; i++) {
		struct kit_child *c = kit_fork(child_init_race, i, g_seed + (uint64_t)i, 120);

		if (kit_exited(c, HUNG))
			hung++;
		else if (!KIT_EXPECT(c, KIT_EXIT(0), "init round %d", i))
			failed++;
	}
	CHECK(hung == 0, "fork during pcpu_init: %d of %d children hung", hung, rounds);
	printf("init: %d rounds, %d children hung, %d failed\n", rounds, hung, failed);
}

/* ---- dlopen ----------------------------------------------------------------------- */

static bool loader_stop;
static unsigned long loads;

/* dlopen / check / dlclose the library until told to stop. */
static void *loader_thread(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&loader_stop, __ATOMIC_RELAXED)) {
		void *lib = dlopen(LIB_B, RTLD_NOW | RTLD_LOCAL);
		int (*check_initial)(unsigned);

		TCHECK(lib, "dlopen %s: %s", LIB_B, dlerror());
		if (!lib)
			return NULL;
		*(void **)&check_initial = dlsym(lib, "libb_check_initial");
		TCHECK(check_initial && check_initial(0), "the library's variables in place");
		dlclose(lib);
		__atomic_fetch_add(&loads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* arg 0: the allocator is initialised first (dlopen places the variables
 * at once); 1: lazily, by the first child's or the library's first use. */
static int child_dlopen_race(long arg)
{
	int hung = 0, failed = 0;
	pthread_t t;

	if (arg == 0)
		REQUIRE(pcpu_init(NULL) == 0, "pcpu_init: %s", strerror(errno));
	kit_start_threads(&t, 1, loader_thread, NULL, 0);
	for (int i = 0; i < 3 * rounds && hung < 5; i++) {
		random_delay(100000, 200);
		pid_t pid = fork();

		if (pid == 0)
			child_alloc_exit(true);
		REQUIRE(pid > 0, "fork: %s", strerror(errno));
		int r = reap(pid, "dlopen", i);

		hung += r == HUNG;
		failed += r == 3;
	}
	__atomic_store_n(&loader_stop, true, __ATOMIC_RELAXED);
	kit_join_threads(&t, 1, NULL);
	dprintf(kit_report_fd, "HUNG %d FAILED %d LOADS %lu\n", hung, failed, loads);
	CHECK(loads > 0, "the loader thread ran");
	CHECK(pcpu_verify() == 0, "the parent's allocator after the forks");
	return 0;
}

static void test_dlopen_race(long arg)
{
	struct kit_child *c = kit_fork(child_dlopen_race, arg, g_seed, 600);
	int hung = -1, failed = -1;
	unsigned long loads_seen = 0;
	const char *rep = strstr(c->out, "HUNG ");

	KIT_EXPECT(c, KIT_EXIT(0), "dlopen race (%s)", arg ? "lazy" : "initialised");
	if (rep)
		sscanf(rep, "HUNG %d FAILED %d LOADS %lu", &hung, &failed, &loads_seen);
	CHECK(hung == 0 && failed == 0, "fork during dlopen/dlclose (%s): %d children hung, %d failed:\n%s",
	      arg ? "lazy" : "initialised", hung, failed, c->err);
	printf("dlopen (%s): %d forks against %lu loads, %d children hung, %d failed\n",
	       arg ? "lazy" : "initialised", 3 * rounds, loads_seen, hung, failed);
}

int main(int argc, char **argv)
{
	const char *env = getenv("PCPU_FORK_ROUNDS");

	g_seed = test_seed(argc, argv);
	if (env && atoi(env) > 0)
		rounds = atoi(env);
	test_init_race();
	test_dlopen_race(0);
	test_dlopen_race(1);
	TEST_DONE();
}
