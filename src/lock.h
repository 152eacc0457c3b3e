/*
 * lock.h - the library's mutex, with lock rules that can be checked.
 *
 * A struct pcpu_lock is a pthread mutex that, in debug and sanitizer builds
 * (PCPU_LOCK_CHECKS, set by CMake for Debug builds and PCPU_SANITIZE), also
 * records its owner, so `pcpu_assert_held(&l)` at the top of a function that
 * needs the lock aborts with a message when the caller does not hold it.
 * In other builds the owner is not tracked and the assertion costs nothing.
 *
 * A lock made with PCPU_LOCK_SPIN_INITIALIZER can also be taken by code
 * that may make no system call (PCPU_ATOMIC allocations): pcpu_spin_lock.
 * Its word `spin` is the lock proper, held by every holder; the mutex only
 * queues the callers that may block.  pcpu_lock takes the mutex, then the
 * word, waiting for the word only while a pcpu_spin_lock caller has it;
 * pcpu_spin_lock takes the word alone, spinning.  So a pcpu_spin_lock
 * caller contends with at most one other thread (the mutex's holder), and
 * unless its spin budget runs out it neither sleeps in the kernel nor has a
 * sleeper to wake: the mutex's sleepers are woken by whoever releases the
 * mutex, a pcpu_lock caller.  (A plain mutex taken with trylock would not
 * do: its release wakes the sleepers, and a thread retaking it in a loop
 * starves the spinner.)  Such a lock is never used with a condition
 * variable.
 *
 * The lock order of the library is written once, in pool.h.
 */
#ifndef PCPU_LOCK_H
#define PCPU_LOCK_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>

#ifndef PCPU_LOCK_CHECKS
#define PCPU_LOCK_CHECKS 0
#endif

struct pcpu_lock {
	pthread_mutex_t mutex;
	unsigned long owner;    /* pthread_self() of the holder, 0 if free (checks on) */
	unsigned spin;          /* with_spin: 1 while held (atomic) */
	bool with_spin;         /* pcpu_spin_lock may take it */
};

#define PCPU_LOCK_INITIALIZER { PTHREAD_MUTEX_INITIALIZER, 0, 0, false }
#define PCPU_LOCK_SPIN_INITIALIZER { PTHREAD_MUTEX_INITIALIZER, 0, 0, true }

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

/* Take the word; false if it stays taken for about max_pauses pauses
 * (reading it between attempts, 1, 2, 4 ... 32 pauses apart).  No system
 * call. */
static inline bool pcpu_spin_try(unsigned *word, unsigned max_pauses)
{
	unsigned pauses = 0, burst = 1;

	while (__atomic_exchange_n(word, 1, __ATOMIC_ACQUIRE)) {
		do {
			if (pauses >= max_pauses)
				return false;
			for (unsigned i = 0; i < burst; i++)
				pcpu_cpu_relax();
			pauses += burst;
			if (burst < 32)
				burst *= 2;
		} while (__atomic_load_n(word, __ATOMIC_RELAXED));
	}
	return true;
}

/* Take the word, yielding the CPU while a preempted holder keeps it. */
static inline void pcpu_spin_take(unsigned *word)
{
	while (!pcpu_spin_try(word, 1024))
		sched_yield();
}

static inline void pcpu_lock(struct pcpu_lock *l)
{
	pthread_mutex_lock(&l->mutex);
	if (l->with_spin)
		pcpu_spin_take(&l->spin);
	pcpu_lock_note(l, true);
}

static inline void pcpu_unlock(struct pcpu_lock *l)
{
	pcpu_lock_note(l, false);
	if (l->with_spin)
		__atomic_store_n(&l->spin, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->mutex);
}

/*
 * Take a with_spin lock without a system call: spin on its word for about
 * max_pauses pauses.  Only if the holder keeps it longer (it was preempted,
 * or runs a long walk) queue on the mutex like pcpu_lock, which may sleep,
 * and let the mutex go once the word is ours.  Release with
 * pcpu_spin_unlock, which never makes a system call.
 */
static inline void pcpu_spin_lock(struct pcpu_lock *l, unsigned max_pauses)
{
	if (!pcpu_spin_try(&l->spin, max_pauses)) {
		pthread_mutex_lock(&l->mutex);
		pcpu_spin_take(&l->spin);
		pthread_mutex_unlock(&l->mutex);
	}
	pcpu_lock_note(l, true);
}

static inline void pcpu_spin_unlock(struct pcpu_lock *l)
{
	pcpu_lock_note(l, false);
	__atomic_store_n(&l->spin, 0, __ATOMIC_RELEASE);
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
