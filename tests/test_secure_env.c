/*
 * test_secure_env.c - the PCPU_* environment under secure execution, and
 * the PCPU_STATS report file's safety rules.
 *
 *   secure   (as root; skipped otherwise) a copy of this program made
 *            set-group-ID to nogroup, run as nobody with another group, so
 *            the kernel sets AT_SECURE: PCPU_STATS=<file>, PCPU_ADDR_SPACE=1k
 *            and PCPU_FAULT=reserve:1 are all ignored (no report file, the
 *            full address space, initialisation succeeds); the same copy
 *            without the set-group-ID bit, run the same way, obeys all
 *            three.  The copy reports through "--probe" (below).
 *   report   (`test_secure_env --report`, CTest's test_secure_env_report)
 *            PCPU_STATS naming a symbolic link (to a file, and dangling), a
 *            directory, a FIFO with no reader and a FIFO with one: nothing
 *            is written, one line on stderr, the program exits normally; a
 *            regular file is created 0600 and appended to.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kit.h"
#include "percpu.h"

#define NOBODY 65534         /* uid of the unprivileged runner */
#define RUNNER_GID 65533     /* its group: not the file's, so egid != rgid */

/* ---- the probe: what a copy of this program reports ----------------------------- */

/* "secure=S init=E chunks=N": AT_SECURE, pcpu_init's errno (0: success),
 * whole-unit allocations (each needs a chunk of its own) up to 4. */
static int probe(void)
{
	int err = pcpu_init(NULL) ? errno : 0, chunks = 0;

	if (!err) {
		size_t unit = kit_stats().unit_size;

		while (chunks < 4 && pcpu_alloc_flags(unit, 4, PCPU_NOWARN))
			chunks++;
	}
	printf("secure=%lu init=%d chunks=%d\n", getauxval(AT_SECURE), err, chunks);
	return 0;                /* exit(): PCPU_STATS's report, if any */
}

/* ---- secure execution -------------------------------------------------------------- */

static char dir[] = "/tmp/pcpu-secure-XXXXXX";
static char prog[PATH_MAX], out_dir[PATH_MAX];

/* Copy this program to path with mode (before chmod, so no window with
 * the bits set on a file still being written). */
static bool copy_self(const char *path, gid_t gid, mode_t mode)
{
	int in = open("/proc/self/exe", O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_EXCL, 0700);
	char buf[65536];
	ssize_t n;
	bool ok = in >= 0 && out >= 0;

	while (ok && (n = read(in, buf, sizeof(buf))) > 0)
		ok = write(out, buf, (size_t)n) == n;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out))
		ok = false;
	ok = ok && chown(path, 0, gid) == 0 && chmod(path, mode) == 0;
	CHECK(ok, "copying the program to %s: %s", path, strerror(errno));
	return ok;
}

/*
 * Run path --probe as nobody (group RUNNER_GID) with env; its first output
 * line in line.  false if it could not run (no privilege to change ids:
 * *skip is set).
 */
static bool run_as_nobody(const char *path, char *const env[], char *line, size_t len, bool *skip)
{
	struct pollfd pfd;
	int fds[2], status;
	bool killed;
	pid_t pid;

	REQUIRE(pipe(fds) == 0, "pipe");
	fflush(stdout);
	pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		char *const argv[] = { (char *)path, (char *)"--probe", NULL };

		dup2(fds[1], 1);
		close(fds[0]);
		if (setgroups(0, NULL) || setgid(RUNNER_GID) || setuid(NOBODY))
			_exit(77);
		execve(path, argv, env);
		_exit(127);
	}
	close(fds[1]);
	/* A probe that hangs is killed at the deadline, whether or not it wrote. */
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	ssize_t n = poll(&pfd, 1, CHILD_WAIT_STEP * 1000) == 1 ? read(fds[0], line, len - 1) : -1;

	close(fds[0]);
	line[n > 0 ? n : 0] = 0;
	REQUIRE(child_wait(pid, &status, CHILD_WAIT_STEP, &killed) == pid, "waitpid");
	if (killed) {
		CHECK(false, "%s ran as nobody: hung, killed after %d s", path, CHILD_WAIT_STEP);
		return false;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		*skip = true;
		return false;
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s ran as nobody: status %#x", path, status);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Returns 77 if the scenario cannot run here. */
static int test_secure(void)
{
	struct group *g = getgrnam("nogroup");
	gid_t file_gid = g ? g->gr_gid : 65534;
	char report[PATH_MAX + 32], env_stats[PATH_MAX + 64], line[256], probe_path[PATH_MAX + 16];
	bool skip = false;
	struct stat st;

	if (geteuid() != 0) {
		printf("secure: not root, cannot make a set-group-ID program: skipped\n");
		return 77;
	}
	REQUIRE(mkdtemp(dir), "mkdtemp");
	snprintf(prog, sizeof(prog), "%s/prog", dir);
	snprintf(out_dir, sizeof(out_dir), "%s/out", dir);
	REQUIRE(chmod(dir, 0755) == 0 && mkdir(out_dir, 0700) == 0 && chmod(out_dir, 01777) == 0,
		"directories");
	snprintf(report, sizeof(report), "%s/report", out_dir);
	snprintf(env_stats, sizeof(env_stats), "PCPU_STATS=%s", report);
	char *const env_space[] = { env_stats, (char *)"PCPU_ADDR_SPACE=1k", NULL };
	char *const env_fault[] = { (char *)"PCPU_FAULT=reserve:1", NULL };
	int ret = 0;

	for (int setgid_bit = 1; setgid_bit >= 0 && !skip; setgid_bit--) {
		const char *what = setgid_bit ? "set-group-ID copy" : "plain copy";
		int secure = -1, err = -1, chunks = -1;

		snprintf(probe_path, sizeof(probe_path), "%s%s", prog, setgid_bit ? "-sgid" : "");
		if (!copy_self(probe_path, file_gid, setgid_bit ? 02755 : 0755))
			break;
		unlink(report);
		if (!run_as_nobody(probe_path, env_space, line, sizeof(line), &skip))
			continue;
		CHECK(sscanf(line, "secure=%d init=%d chunks=%d", &secure, &err, &chunks) == 3,
		      "%s: probe said \"%s\"", what, line);
		if (setgid_bit && secure != 1) {
			printf("secure: the set-group-ID copy did not run with AT_SECURE (nosuid mount?): "
			       "skipped\n");
			skip = true;
			break;
		}
		bool wrote = stat(report, &st) == 0;

		if (setgid_bit) {
			CHECK(!wrote, "%s: PCPU_STATS honoured under AT_SECURE", what);
			CHECK(err == 0 && chunks == 4, "%s: PCPU_ADDR_SPACE=1k honoured under AT_SECURE: "
			      "init %d, %d whole-unit chunks", what, err, chunks);
		} else {
			CHECK(secure == 0, "%s: AT_SECURE %d", what, secure);
			CHECK(wrote && st.st_uid == NOBODY && (st.st_mode & 0777) == 0600,
			      "%s: PCPU_STATS report not written, or not nobody's and 0600", what);
			CHECK(err == 0 && chunks == 0, "%s: PCPU_ADDR_SPACE=1k should leave no room for a "
			      "chunk: init %d, %d chunks", what, err, chunks);
		}
		if (!run_as_nobody(probe_path, env_fault, line, sizeof(line), &skip))
			continue;
		CHECK(sscanf(line, "secure=%d init=%d", &secure, &err) == 2, "%s: \"%s\"", what, line);
		CHECK(err == (setgid_bit ? 0 : ENOMEM), "%s: PCPU_FAULT=reserve:1: pcpu_init errno %d", what,
		      err);
		printf("secure: %s as nobody: PCPU_STATS %s, PCPU_ADDR_SPACE %s, PCPU_FAULT %s\n", what,
		       wrote ? "obeyed" : "ignored", chunks ? "ignored" : "obeyed", err ? "obeyed" : "ignored");
	}
	unlink(report);
	snprintf(probe_path, sizeof(probe_path), "%s-sgid", prog);
	unlink(probe_path);
	unlink(prog);
	rmdir(out_dir);
	rmdir(dir);
	if (skip)
		ret = 77;
	return ret;
}

/* ---- the report file ------------------------------------------------------------- */

static char rdir[] = "/tmp/pcpu-report-XXXXXX";
static char report_path[PATH_MAX];

/* Set PCPU_STATS to report_path, initialise, allocate, exit(). */
static int child_report(long arg)
{
	(void)arg;
	setenv("PCPU_STATS", report_path, 1);
	REQUIRE(pcpu_init(NULL) == 0, "pcpu_init");
	pcpu_free(pcpu_alloc(16, 4));
	fflush(stderr);
	exit(0);
}

/* Run child_report with PCPU_STATS=path: it exits 0 after exactly one line
 * on stderr naming path and why. */
static void expect_refused(const char *path, const char *why, const char *what)
{
	char want[PATH_MAX + 128];

	snprintf(report_path, sizeof(report_path), "%s", path);
	struct kit_child *c = kit_fork(child_report, 0, 0, 30);

	KIT_EXPECT(c, KIT_EXIT(0), "PCPU_STATS as %s", what);
	snprintf(want, sizeof(want), "libpercpu: PCPU_STATS: cannot write the report to %s: %s\n", path, why);
	CHECK(strcmp(c->err, want) == 0, "%s: stderr \"%s\", want \"%s\"", what, c->err, want);
}

static void test_report(void)
{
	char target[PATH_MAX], link_path[PATH_MAX], dangling[PATH_MAX], sub[PATH_MAX], fifo[PATH_MAX];
	char file[PATH_MAX];
	struct stat st;

	REQUIRE(mkdtemp(rdir), "mkdtemp");
	snprintf(target, sizeof(target), "%s/target", rdir);
	snprintf(link_path, sizeof(link_path), "%s/link", rdir);
	snprintf(dangling, sizeof(dangling), "%s/dangling", rdir);
	snprintf(sub, sizeof(sub), "%s/dir", rdir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", rdir);
	snprintf(file, sizeof(file), "%s/file", rdir);
	int fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0644);

	REQUIRE(fd >= 0 && close(fd) == 0, "target");
	REQUIRE(symlink(target, link_path) == 0 && symlink(file, dangling) == 0, "symlinks");
	REQUIRE(mkdir(sub, 0755) == 0 && mkfifo(fifo, 0600) == 0, "directory and FIFO");

	expect_refused(link_path, "a symbolic link", "a symbolic link to a file");
	CHECK(stat(target, &st) == 0 && st.st_size == 0, "written through the symbolic link");
	expect_refused(dangling, "a symbolic link", "a dangling symbolic link");
	CHECK(lstat(file, &st) != 0, "the dangling link's target was created");
	expect_refused(sub, "not a regular file", "a directory");
	CHECK(rmdir(sub) == 0, "the directory is still empty");
	expect_refused(fifo, "not a regular file", "a FIFO with no reader");
	/* With a reader the open succeeds; the report must still not come. */
	int rd = open(fifo, O_RDONLY | O_NONBLOCK);
	char buf[64];

	REQUIRE(rd >= 0, "FIFO reader");
	expect_refused(fifo, "not a regular file", "a FIFO with a reader");
	CHECK(read(rd, buf, sizeof(buf)) <= 0, "the report went into the FIFO");
	close(rd);

	/* A regular file: created 0600, the report appended each time. */
	snprintf(report_path, sizeof(report_path), "%s", file);
	for (int i = 0; i < 2; i++)
		KIT_EXPECT(kit_fork(child_report, 0, 0, 30), KIT_EXIT(0), "PCPU_STATS as a file, run %d", i);
	char *text = kit_read_file(file);
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, "Percpu Memory Statistics")); p++)
		n++;
	CHECK(stat(file, &st) == 0 && (st.st_mode & 0777) == 0600, "the report file is not 0600");
	CHECK(n == 2, "%d reports in the file, want 2 (appended)", n);
	free(text);

	unlink(file);
	unlink(fifo);
	unlink(link_path);
	unlink(dangling);
	unlink(target);
	rmdir(rdir);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--probe") == 0)
		return probe();
	if (argc > 1 && strcmp(argv[1], "--report") == 0)
		test_report();
	else if (test_secure() == 77 && !check_failed)
		return 77;
	TEST_DONE();
}
