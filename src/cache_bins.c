/*
 * cache_bins.c - the per-CPU caches' shared state (cache_bins.h): set up
 * by cache.c's initialisation, read by cache.c and cache_census.c.
 */
#include "cache_bins.h"

bool pcpu_cache_enabled;
struct pcpu_cache *caches;
unsigned int nr_caches;
size_t cache_limit;
