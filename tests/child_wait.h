/*
 * child_wait.h - wait for a forked test child, killing it past a deadline.
 *
 * A child's own alarm() does not always end a hang: under a sanitizer,
 * a thread deadlocked inside the runtime may keep the signal from ever
 * being acted on.  The parent's deadline fails that test instead of
 * letting the whole CTest run reach its timeout.
 */
#ifndef PCPU_TEST_CHILD_WAIT_H
#define PCPU_TEST_CHILD_WAIT_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long past a child's own alarm its parent waits before killing it. */
#define CHILD_WAIT_GRACE 30
/* The deadline of a child forked inside a test's child to run a step that
 * takes well under a second (fork and exec cases): no alarm of its own,
 * and shorter than the alarm of the child that waits for it, so a hang is
 * reported there and leaves no orphan behind. */
#define CHILD_WAIT_STEP 20

/*
 * waitpid(pid) for at most `seconds` (0: no limit), then SIGKILL it and
 * reap it.  Returns pid, or -1 if waitpid failed; *killed tells whether
 * the deadline struck.
 */
static inline pid_t child_wait(pid_t pid, int *status, unsigned int seconds, bool *killed)
{
	struct timespec start, now;
	long tick_us = 100;
	pid_t got;

	*killed = false;
	if (!seconds)
		return waitpid(pid, status, 0);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while ((got = waitpid(pid, status, WNOHANG)) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >=
		    seconds * 1000L) {
			kill(pid, SIGKILL);
			*killed = true;
			return waitpid(pid, status, 0);
		}
		/* Poll at 0.1 ms at first (most children are quick), 20 ms later. */
		usleep((useconds_t)tick_us);
		if (tick_us < 20000)
			tick_us *= 2;
	}
	return got;
}

#endif
