/*
 * balance.h - the balancer's pass (balance.c), for the library's own tests:
 * pcpu_balance() runs it forced, the balancer thread with the decay.
 */
#ifndef PCPU_BALANCE_H
#define PCPU_BALANCE_H

#include <stdbool.h>

/* One pass; `forced` applies no decay.  Milliseconds until the next page
 * or chunk is due to decay, or -1 if none is pending. */
long balance_pass(bool forced);

#endif
