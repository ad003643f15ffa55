/* --bench: latency of whole-model runs. */
#ifndef KILN_BENCH_H
#define KILN_BENCH_H

#include "session.h"

/* One warm-up run, then `runs` timed runs; prints min and median in ms. */
void bench_run(struct session *s, long runs);

#endif
