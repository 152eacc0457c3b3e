/*
 * proc.c - measurements in forked children, the fixed conditions they run
 * under, the process's resident memory, and the thread counts and
 * schedule of the threaded evaluations (7-9; their progress line is in
 * main.c with the others).
 *
 * Why fixed conditions: glibc raises its mmap threshold after freeing a
 * large block and trims the heap top when it grows past a threshold, and
 * transparent huge pages change both the cost of a page fault and the
 * resident size; all three depend on what the process did before.  Each
 * measuring child therefore starts from the same settings, on both sides
 * of every comparison.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define FIXED_MMAP_THRESHOLD (128 * 1024)       /* glibc's default, without its dynamic raise */

int bench_in_child(void (*fn)(void *arg, void *res), void *arg, void *res, size_t size)
{
	int fds[2], status = 0;
	ssize_t got = -1;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	if (pipe(fds)) {
		perror("pcpu-bench: pipe");
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		fn(arg, res);
		fflush(stdout);
		_exit(write(fds[1], res, size) == (ssize_t)size ? 0 : 1);
	}
	close(fds[1]);
	if (pid > 0) {
		size_t done = 0;

		while (done < size && (got = read(fds[0], (char *)res + done, size - done)) > 0)
			done += (size_t)got;
		got = (ssize_t)done;
		waitpid(pid, &status, 0);
	} else {
		perror("pcpu-bench: fork");
	}
	close(fds[0]);
	if (pid > 0 && got == (ssize_t)size && WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	if (pid > 0 && WIFSIGNALED(status))
		printf("  the measuring child died of signal %d (%s)\n", WTERMSIG(status),
		       strsignal(WTERMSIG(status)));
	else if (pid > 0)
		printf("  the measuring child sent no result (exit status %d)\n",
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return -1;
}

void bench_fixed_conditions(void)
{
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	mallopt(M_MMAP_THRESHOLD, FIXED_MMAP_THRESHOLD);
	/* A forked child inherits the parent's free heap pages, resident: an
	 * allocator reusing them would show no resident growth.  Give them
	 * back first, then never trim on free. */
	malloc_trim(0);
	mallopt(M_TRIM_THRESHOLD, -1);
}

/* The word in brackets in the THP "enabled" file, e.g. "madvise". */
static const char *thp_mode(char *buf, size_t len)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char line[128] = "", *a, *b;

	snprintf(buf, len, "unknown");
	if (!f)
		return buf;
	if (fgets(line, sizeof(line), f) && (a = strchr(line, '[')) && (b = strchr(a, ']')))
		snprintf(buf, len, "%.*s", (int)(b - a - 1), a + 1);
	fclose(f);
	return buf;
}

const char *bench_conditions_str(void)
{
	static char s[256];
	char thp[32];

	snprintf(s, sizeof(s),
		 "each measuring process has THP off (prctl; machine: %s),\n  malloc's mmap "
		 "threshold fixed at %d KiB, the inherited free heap given back (malloc_trim)\n  and "
		 "no heap trimming on free",
		 thp_mode(thp, sizeof(thp)), FIXED_MMAP_THRESHOLD / 1024);
	return s;
}

bool bench_page_reporting(void)
{
	FILE *f = fopen("/sys/module/page_reporting/parameters/page_reporting_order", "r");
	bool balloon = access("/sys/bus/virtio/drivers/virtio_balloon", F_OK) == 0;

	if (f)
		fclose(f);
	return f && balloon;
}

long bench_rss_kb(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long bench_hwm_kb(void)
{
	char line[256];
	long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int bench_online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

unsigned bench_machine_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);

	return n > 0 ? (unsigned)n : 1;
}

int bench_thread_counts(int cpus, int max_threads, int counts[3])
{
	int want[3] = { 1, cpus, 4 * cpus }, n = 0;

	for (int i = 0; i < 3; i++)
		if (want[i] <= max_threads && (!n || want[i] != counts[n - 1]))
			counts[n++] = want[i];
	return n;
}

struct bench_turn bench_turn(int k, int nr_counts, int nr_sides, bool turn_by_count)
{
	struct bench_turn t = { .run = k / (nr_counts * nr_sides), .c = k / nr_sides % nr_counts };

	t.side = (k % nr_sides + t.run + (turn_by_count ? t.c : 0)) % nr_sides;
	return t;
}
