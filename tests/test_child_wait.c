/*
 * test_child_wait.c - the test kit's parent-side deadline (child_wait.h),
 * which keeps one hung child from taking the whole CTest run with it: a
 * child that ends in time is reaped with its status and not killed; one
 * that ignores its alarm and never ends is killed and reported so; with
 * no deadline the parent simply waits.
 *
 * Usage: test_child_wait
 */
#define _GNU_SOURCE
#include <signal.h>

#include "check.h"
#include "child_wait.h"

static pid_t spawn(int mode)
{
	pid_t pid = fork();

	REQUIRE(pid >= 0, "fork");
	if (pid)
		return pid;
	if (mode == 0)
		_exit(7);
	if (mode == 1)
		usleep(50 * 1000), _exit(8);
	/* mode 2: a hang its own alarm cannot end (the signal blocked) */
	sigset_t m;

	sigemptyset(&m);
	sigaddset(&m, SIGALRM);
	sigprocmask(SIG_BLOCK, &m, NULL);
	alarm(1);
	for (;;)
		pause();
}

int main(void)
{
	bool killed = true;
	int status = 0;
	pid_t pid = spawn(0);

	CHECK(child_wait(pid, &status, 60, &killed) == pid && !killed && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 7, "a quick child: status %#x, killed %d", status, killed);
	pid = spawn(1);
	CHECK(child_wait(pid, &status, 0, &killed) == pid && !killed && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 8, "no deadline: status %#x, killed %d", status, killed);
	pid = spawn(2);
	CHECK(child_wait(pid, &status, 2, &killed) == pid && killed && WIFSIGNALED(status) &&
	      WTERMSIG(status) == SIGKILL, "a hung child: status %#x, killed %d", status, killed);
	CHECK(child_wait(pid, &status, 2, &killed) == -1, "a reaped child is gone");
	TEST_DONE();
}
