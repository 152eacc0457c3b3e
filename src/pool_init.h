/*
 * pool_init.h - bringing the pool up (pool_init.c): pcpu_init, and the
 * initialisation on first use every entry point starts with.
 */
#ifndef PCPU_POOL_INIT_H
#define PCPU_POOL_INIT_H

#include "pool.h"

/* pcpu_init(): EBUSY once initialised. */
int pool_init(const struct pcpu_config *cfg);
/* Initialise with defaults unless done: 0, or -1 with errno. */
int pool_ensure_init_slow(void);
static inline int pool_ensure_init(void)
{
	if (__builtin_expect(__atomic_load_n(&pcpu_pool.ready, __ATOMIC_ACQUIRE), 1))
		return 0;
	return pool_ensure_init_slow();
}
static inline bool pool_ready(void)
{
	return __atomic_load_n(&pcpu_pool.ready, __ATOMIC_ACQUIRE);
}

#endif
