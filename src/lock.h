/*
 * lock.h - the library's mutex, with lock rules that can be checked.
 *
 * A struct pcpu_lock is a pthread mutex that, in debug and sanitizer builds
 * (PCPU_LOCK_CHECKS, set by CMake for Debug builds and PCPU_SANITIZE), also
 * records its owner, so `pcpu_assert_held(&l)` at the top of a function that
 * needs the lock aborts with a message when the caller does not hold it.
 * In other builds the owner is not tracked and the assertion costs nothing.
 *
 * The lock order of the library is written once, in pool.h.
 */
#ifndef PCPU_LOCK_H
#define PCPU_LOCK_H

#include <pthread.h>
#include <stdbool.h>

#ifndef PCPU_LOCK_CHECKS
#define PCPU_LOCK_CHECKS 0
#endif

struct pcpu_lock {
	pthread_mutex_t mutex;
	unsigned long owner;    /* pthread_self() of the holder, 0 if free (checks on) */
};

#define PCPU_LOCK_INITIALIZER { PTHREAD_MUTEX_INITIALIZER, 0 }

/* Abort naming the lock and the function that needed it (diag.c). */
void pcpu_lock_violation(const char *fn, const char *lock) __attribute__((noreturn, cold));

static inline void pcpu_lock_note(struct pcpu_lock *l, bool held)
{
	if (PCPU_LOCK_CHECKS)
		__atomic_store_n(&l->owner, held ? (unsigned long)pthread_self() : 0UL,
				 __ATOMIC_RELAXED);
}

static inline bool pcpu_lock_is_mine(struct pcpu_lock *l)
{
	return __atomic_load_n(&l->owner, __ATOMIC_RELAXED) == (unsigned long)pthread_self();
}

static inline void pcpu_lock(struct pcpu_lock *l)
{
	pthread_mutex_lock(&l->mutex);
	pcpu_lock_note(l, true);
}

static inline bool pcpu_trylock(struct pcpu_lock *l)
{
	if (pthread_mutex_trylock(&l->mutex))
		return false;
	pcpu_lock_note(l, true);
	return true;
}

/* One step of a spin-wait: a pause hint to the CPU, no system call. */
static inline void pcpu_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * Take l by spinning on trylock, pausing between attempts (1, 2, 4 ... 32
 * pauses), for at most about max_pauses pauses.  Makes no system call;
 * false if l stayed taken.
 */
static inline bool pcpu_lock_spin(struct pcpu_lock *l, unsigned max_pauses)
{
	unsigned pauses = 0, burst = 1;

	for (;;) {
		if (pcpu_trylock(l))
			return true;
		if (pauses >= max_pauses)
			return false;
		for (unsigned i = 0; i < burst; i++)
			pcpu_cpu_relax();
		pauses += burst;
		if (burst < 32)
			burst *= 2;
	}
}

static inline void pcpu_unlock(struct pcpu_lock *l)
{
	pcpu_lock_note(l, false);
	pthread_mutex_unlock(&l->mutex);
}

/* Wait on cond, releasing and retaking l. */
static inline void pcpu_cond_wait(pthread_cond_t *cond, struct pcpu_lock *l)
{
	pcpu_lock_note(l, false);
	pthread_cond_wait(cond, &l->mutex);
	pcpu_lock_note(l, true);
}

static inline int pcpu_cond_timedwait(pthread_cond_t *cond, struct pcpu_lock *l,
				      const struct timespec *abstime)
{
	int rc;

	pcpu_lock_note(l, false);
	rc = pthread_cond_timedwait(cond, &l->mutex, abstime);
	pcpu_lock_note(l, true);
	return rc;
}

/* The calling thread must hold l (checked in debug and sanitizer builds). */
#define pcpu_assert_held(l)                                                   \
	do {                                                                  \
		if (PCPU_LOCK_CHECKS && !pcpu_lock_is_mine(l))                \
			pcpu_lock_violation(__func__, #l);                    \
	} while (0)

#endif
