/* --bench: latency of whole-model runs. */
#ifndef KILN_BENCH_H
#define KILN_BENCH_H

#include "session.h"

/* Warm-up runs, then `runs` timed runs; prints min, median, p90, p99 and max in ms. */
void bench_run(struct session *s, long runs);

#endif
