/*
 * kit.h - the scaffolding the tests share, on top of check.h.
 *
 *   children  kit_fork runs a function in a forked child (the allocator is
 *             configured once per process, and crashes and hangs must stay
 *             in the child) and returns how it ended and what it wrote to
 *             stderr and to kit_report_fd; KIT_EXPECT checks the ending;
 *             kit_exec_self starts the test's program again, for scenarios
 *             that need their own environment.
 *   objects   struct kit_obj: an allocation holding a pattern in every
 *             CPU's copy (kit_fill, kit_intact, kit_all_intact), kept in a
 *             test's array (kit_keep, kit_drop); kit_zeroed for fresh
 *             allocations; kit_stats, kit_cur_alloc.
 *   threads   kit_start_threads, kit_join_threads.
 *   files     kit_tree_make / kit_tree_remove: a small file tree in a temp
 *             directory (fabricated sysfs topologies); kit_read_file.
 *
 * Header only, like check.h: each test is one translation unit and its
 * CHECK counters are its own.  Only the public API is used, so test_static
 * (linked against the shared library) can include it too.
 */
#ifndef PCPU_TEST_KIT_H
#define PCPU_TEST_KIT_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "child_wait.h"
#include "percpu.h"

/* ---- forked children ------------------------------------------------------- */

/* How a child of kit_fork ended and what it wrote.  err and out stay valid
 * until the next kit_fork. */
struct kit_child {
	pid_t pid;
	int status;             /* from waitpid() */
	unsigned timeout;       /* the alarm() it ran under, 0 for none */
	bool killed;            /* by the parent, CHILD_WAIT_GRACE s after its alarm was due */
	char *err;              /* everything it wrote to stderr */
	char *out;              /* everything it wrote to kit_report_fd */
};

/* In a child of kit_fork: a file for results the parent reads back as out
 * (dprintf(kit_report_fd, ...), also from a signal handler). */
static int kit_report_fd = -1;

/* The whole file open at fd, from its start, as a malloc'd string. */
static inline char *kit_read_fd(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t n;

	REQUIRE(buf, "malloc");
	while ((n = pread(fd, buf + len, cap - len - 1, (off_t)len)) > 0) {
		len += (size_t)n;
		if (len + 1 == cap) {
			buf = realloc(buf, cap *= 2);
			REQUIRE(buf, "realloc");
		}
	}
	buf[len] = 0;
	return buf;
}

/* The whole file at path as a malloc'd string, or NULL if it cannot be opened. */
static inline char *kit_read_file(const char *path)
{
	int fd = open(path, O_RDONLY);
	char *text;

	if (fd < 0)
		return NULL;
	text = kit_read_fd(fd);
	close(fd);
	return text;
}

static inline char *kit_read_tmpfile(FILE *f)
{
	char *text = kit_read_fd(fileno(f));

	fclose(f);
	return text;
}

/*
 * Run fn(arg) in a forked child and wait for it.  The child starts with
 * CHECK counters at zero, rng_state = seed (unless seed is 0), stderr and
 * kit_report_fd going to temp files, and alarm(timeout) when timeout > 0
 * (a hang then ends it: kit_hung; so does the parent's SIGKILL half a
 * minute later if the alarm did not, child_wait.h).  It exits with fn's
 * return value if that is not 0, else 1 if a CHECK or TCHECK failed, else
 * 0; fn may also exit by itself (exit() runs atexit handlers, a crash is
 * a signal).
 */
static inline struct kit_child *kit_fork(int (*fn)(long), long arg, uint64_t seed, unsigned timeout)
{
	static struct kit_child c;
	FILE *err = tmpfile(), *out = tmpfile();

	REQUIRE(err && out, "tmpfile: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	c.pid = fork();
	REQUIRE(c.pid >= 0, "fork: %s", strerror(errno));
	if (c.pid == 0) {
		dup2(fileno(err), 2);
		kit_report_fd = fileno(out);
		check_passed = check_failed = 0;
		__atomic_store_n(&check_thread_failed, 0, __ATOMIC_RELAXED);
		if (seed)
			rng_state = seed;
		if (timeout)
			alarm(timeout);
		int rc = fn(arg);

		fflush(stdout);
		fflush(stderr);
		_exit(rc ? rc : check_failed || __atomic_load_n(&check_thread_failed, __ATOMIC_RELAXED));
	}
	REQUIRE(child_wait(c.pid, &c.status, timeout ? timeout + CHILD_WAIT_GRACE : 0, &c.killed) == c.pid,
		"waitpid: %s", strerror(errno));
	c.timeout = timeout;
	free(c.err);
	free(c.out);
	c.err = kit_read_tmpfile(err);
	c.out = kit_read_tmpfile(out);
	return &c;
}

/* Ended by its own alarm, or by the parent past it: it hung. */
static inline bool kit_hung(const struct kit_child *c)
{
	return c->killed || (c->timeout && WIFSIGNALED(c->status) && WTERMSIG(c->status) == SIGALRM);
}

static inline bool kit_exited(const struct kit_child *c, int code)
{
	return WIFEXITED(c->status) && WEXITSTATUS(c->status) == code;
}

static inline bool kit_signaled(const struct kit_child *c, int sig)
{
	return WIFSIGNALED(c->status) && WTERMSIG(c->status) == sig && !kit_hung(c);
}

/* "exit 1", "signal 6 (Aborted)", "hung (still running after 120 s)". */
static inline const char *kit_status(const struct kit_child *c)
{
	static char s[96];

	if (kit_hung(c))
		snprintf(s, sizeof(s), "hung (still running after %u s)", c->timeout);
	else if (WIFSIGNALED(c->status))
		snprintf(s, sizeof(s), "signal %d (%s)", WTERMSIG(c->status), strsignal(WTERMSIG(c->status)));
	else
		snprintf(s, sizeof(s), "exit %d", WEXITSTATUS(c->status));
	return s;
}

/* Endings KIT_EXPECT takes. */
#define KIT_EXIT(code) (code)
#define KIT_SIGNAL(sig) (-(sig))

/*
 * CHECK that child c ended as want says (KIT_EXIT(code) or KIT_SIGNAL(sig));
 * a hung child never did.  The rest names the child, printf-style.  On
 * failure its stderr and report are shown.  Returns whether it did.
 */
#define KIT_EXPECT(c, want, ...) kit_expect_at(__FILE__, __LINE__, (c), (want), __VA_ARGS__)

static inline __attribute__((format(printf, 5, 6))) bool
kit_expect_at(const char *file, int line, const struct kit_child *c, int want, const char *fmt, ...)
{
	bool ok = want >= 0 ? kit_exited(c, want) : kit_signaled(c, -want);
	va_list ap;

	if (ok) {
		check_passed++;
		return true;
	}
	check_failed++;
	fprintf(stderr, "%s:%d: child ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s, want %s %d\n---- its stderr:\n%s", kit_status(c),
		want >= 0 ? "exit" : "signal", want >= 0 ? want : -want, c->err);
	if (*c->out)
		fprintf(stderr, "---- its report:\n%s", c->out);
	fprintf(stderr, "----\n");
	return false;
}

/* The word after key in c's report, or NULL. */
static inline const char *kit_report_word(const struct kit_child *c, const char *key)
{
	static char word[64];
	const char *p = strstr(c->out, key);

	return p && sscanf(p + strlen(key), "%63s", word) == 1 ? word : NULL;
}

/* In a kit_fork child, after setting the environment: execute the test's
 * program again with arguments arg1... (NULL last; argv[0] is its path).
 * Returns 127 only if exec failed. */
static inline __attribute__((sentinel)) int kit_exec_self(const char *arg1, ...)
{
	char self[4096], *argv[16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int argc = 1;
	va_list ap;

	if (n <= 0) {
		fprintf(stderr, "readlink /proc/self/exe: %s\n", strerror(errno));
		return 127;
	}
	self[n] = 0;
	argv[0] = self;
	va_start(ap, arg1);
	for (const char *a = arg1; a && argc < 15; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	execv(self, argv);
	fprintf(stderr, "exec %s: %s\n", self, strerror(errno));
	return 127;
}

/* ---- objects with a pattern in every CPU's copy ------------------------------- */

/* Threads may call everything in this section but kit_stats and kit_cur_alloc
 * (CHECK's counters are not atomic). */

/* An allocation a test keeps.  Allocations are 4-byte aligned in every
 * unit, so the pattern is written in words (then the tail bytes). */
struct kit_obj {
	void *h;                /* the handle */
	size_t size;            /* bytes the pattern covers */
	uint32_t tag;           /* chooses the pattern */
};

/* Word i of the pattern of (tag, cpu): different across tags, CPUs and words. */
static inline uint32_t kit_pattern(uint32_t tag, unsigned cpu, size_t i)
{
	uint32_t x = tag * 0x9e3779b1u ^ (cpu + 1) * 0x85ebca77u ^ (uint32_t)i * 0xc2b2ae3du;

	return x ^ x >> 15;
}

/* Write o's pattern into every CPU's copy, or (write false) check it is there. */
static inline bool kit_pattern_walk(const struct kit_obj *o, bool write)
{
	const size_t words = o->size / 4, tail = o->size % 4;

	for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++) {
		uint32_t *w = pcpu_ptr(o->h, cpu), last = kit_pattern(o->tag, cpu, words);

		for (size_t i = 0; i < words; i++)
			if (write)
				w[i] = kit_pattern(o->tag, cpu, i);
			else if (w[i] != kit_pattern(o->tag, cpu, i))
				return false;
		if (write)
			memcpy(w + words, &last, tail);
		else if (memcmp(w + words, &last, tail))
			return false;
	}
	return true;
}

static inline void kit_fill(const struct kit_obj *o) { (void)kit_pattern_walk(o, true); }
static inline bool kit_intact(const struct kit_obj *o) { return kit_pattern_walk(o, false); }

/* Keep allocation h of size bytes as objs[*n] (room for max) with the
 * pattern of tag written into every CPU's copy; returns the record. */
static inline struct kit_obj *kit_keep(struct kit_obj *objs, int *n, int max, void *h, size_t size,
				       uint32_t tag)
{
	if (*n >= max) {        /* not REQUIRE: threads call this */
		fprintf(stderr, "kit_keep: more than %d objects\n", max);
		abort();
	}
	objs[*n] = (struct kit_obj){ h, size, tag };
	kit_fill(&objs[*n]);
	return &objs[(*n)++];
}

/* Free objs[k] and move the last of the *n objects into its place;
 * whether its pattern was intact until then. */
static inline bool kit_drop(struct kit_obj *objs, int *n, int k)
{
	bool ok = kit_intact(&objs[k]);

	pcpu_free(objs[k].h);
	objs[k] = objs[--*n];
	return ok;
}

static inline bool kit_all_intact(const struct kit_obj *objs, int n)
{
	for (int i = 0; i < n; i++)
		if (!kit_intact(&objs[i]))
			return false;
	return true;
}

/* Every CPU's copy of h is align-aligned and its first size bytes are zero. */
static inline bool kit_zeroed(const void *h, size_t size, size_t align)
{
	for (unsigned cpu = 0; cpu < pcpu_nr_cpus(); cpu++) {
		const unsigned char *p = pcpu_ptr(h, cpu);

		if ((uintptr_t)p % align || (size && (p[0] || memcmp(p, p + 1, size - 1))))
			return false;
	}
	return true;
}

static inline struct pcpu_stats kit_stats(void)
{
	struct pcpu_stats st = { 0 };

	REQUIRE(pcpu_stats_get(&st) == 0, "pcpu_stats_get");
	return st;
}

static inline uint64_t kit_cur_alloc(void) { return kit_stats().nr_cur_alloc; }

/* ---- threads ------------------------------------------------------------------ */

/* Start n threads running fn: thread i gets (char *)args + i * size, or
 * (void *)i when args is NULL. */
static inline void kit_start_threads(pthread_t *tids, int n, void *(*fn)(void *), void *args,
				     size_t size)
{
	for (int i = 0; i < n; i++) {
		void *arg = args ? (char *)args + (size_t)i * size : (void *)(intptr_t)i;
		int e = pthread_create(&tids[i], NULL, fn, arg);

		REQUIRE(e == 0, "pthread_create: %s", strerror(e));
	}
}

/* Wait for n threads; their return values go to rets[] unless it is NULL. */
static inline void kit_join_threads(pthread_t *tids, int n, void **rets)
{
	for (int i = 0; i < n; i++) {
		int e = pthread_join(tids[i], rets ? &rets[i] : NULL);

		REQUIRE(e == 0, "pthread_join: %s", strerror(e));
	}
}

/* ---- file trees ----------------------------------------------------------------- */

/* Remove the tree kit_tree_make made: the files, then each one's
 * directories up to root (a directory goes once its last entry has). */
static inline void kit_tree_remove(const char *root, const char *const files[][2], size_t n)
{
	char path[1024];

	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", root, files[i][0]);
		remove(path);
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", root, files[i][0]);
		for (char *s; (s = strrchr(path, '/')) && s > path + strlen(root);)
			*s = 0, rmdir(path);
	}
	rmdir(root);
}

/*
 * Make root (a mkdtemp template, "...XXXXXX") a new directory holding
 * files[i][0] (paths below root; their directories are made as needed)
 * with contents files[i][1].  CHECKs every step; whether all worked (if
 * not, nothing is left behind).
 */
static inline bool kit_tree_make(char *root, const char *const files[][2], size_t n)
{
	char path[1024];
	bool ok = mkdtemp(root) != NULL;

	CHECK(ok, "mkdtemp %s: %s", root, strerror(errno));
	if (!ok)
		return false;
	for (size_t i = 0; ok && i < n; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", root, files[i][0]);
		for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); *s++ = '/') {
			*s = 0;
			CHECK(mkdir(path, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
		}
		f = fopen(path, "w");
		ok = f && fputs(files[i][1], f) >= 0;
		ok = f && fclose(f) == 0 && ok;
		CHECK(ok, "writing %s", path);
	}
	if (!ok)
		kit_tree_remove(root, files, n);
	return ok;
}

#endif
