/*
 * diag.h - what the library says on stderr: rate-limited warnings, the
 * abort on an invalid pointer, and reading its environment variables.
 *
 * The layers below the pool never print; the pool and the layers above
 * report through here.  Warnings are rate limited per kind (a burst, then
 * a few per second), so a flood of invalid requests cannot hide the
 * out-of-memory line that matters.  A path that may not make system calls
 * (PCPU_ATOMIC) only counts its warning; the next blocking call or the
 * balancer prints the count (pcpu_warn_flush).
 */
#ifndef PCPU_DIAG_H
#define PCPU_DIAG_H

#include <stdbool.h>
#include <stddef.h>

enum pcpu_warn_kind {
	PCPU_WARN_INVALID,      /* EINVAL from an allocation */
	PCPU_WARN_NOMEM,        /* ENOMEM from a blocking allocation */
	PCPU_WARN_ATOMIC,       /* ENOMEM from a PCPU_ATOMIC allocation (deferred) */
	PCPU_WARN_CONFIG,       /* configuration and environment */
	PCPU_WARN_OTHER,
	PCPU_WARN_NR
};

/* One line "libpercpu: <message>" unless flags has PCPU_NOWARN or the
 * kind's rate limit is exhausted (then it is counted as suppressed). */
void pcpu_warn(enum pcpu_warn_kind kind, unsigned flags, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Count a warning that cannot be printed now (no system call allowed). */
void pcpu_warn_defer(enum pcpu_warn_kind kind, unsigned flags);

/* Print the deferred counts, if any.  Blocking contexts only. */
void pcpu_warn_flush(void);

/* "libpercpu: fn(): invalid pointer P: why", then abort(). */
void pcpu_invalid_pointer(const char *fn, const void *ptr, const char *why)
	__attribute__((noreturn, cold));

/*
 * The library's environment variables.  Under secure execution (set-user-ID
 * or set-group-ID programs, file capabilities: AT_SECURE) every one of them
 * is ignored, as glibc ignores its own tunables there.
 */
const char *pcpu_getenv(const char *name);

/*
 * A size in bytes with an optional k/m/g suffix, in [min, max].  Unset or
 * empty: false, silently.  Malformed or out of range: one line naming the
 * variable and the value, and false (the caller keeps its default).
 */
bool pcpu_env_size(const char *name, size_t min, size_t max, size_t *out);

/* A whole number in [min, max] (decimal, or with a sign), same rules. */
bool pcpu_env_long(const char *name, long min, long max, long *out);

#endif
