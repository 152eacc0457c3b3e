/*
 * libstats.h - interface of the example statistics library (libstats.c),
 * loaded at run time by stats_dlopen.c.
 */
#ifndef LIBSTATS_H
#define LIBSTATS_H

#include <stdint.h>
#include <stdio.h>

struct pkt_totals {
	uint64_t packets, bytes, errors;
	uint64_t min_len, max_len;
};

/* The entry points, looked up with dlsym (names in quotes). */
typedef void stats_record_fn(uint64_t len, int error);          /* "stats_record" */
typedef void stats_totals_fn(struct pkt_totals *out);           /* "stats_totals" */
typedef void stats_print_fn(FILE *out);                         /* "stats_print" */
typedef void *stats_handle_fn(void);                            /* "stats_handle" */

#endif
