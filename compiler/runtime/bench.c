#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include "errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WARM_UP_MS 200.0

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest time that at least `p` percent of the sorted runs do not exceed. */
static double percentile(const double *sorted, long runs, int p)
{
    long rank = (runs * p + 99) / 100;
    return sorted[rank < 1 ? 0 : rank - 1];
}

void bench_run(struct session *s, long runs)
{
    double *times = malloc((size_t)runs * sizeof *times);
    if (times == NULL) {
        fail("out of memory for %ld timings", runs);
    }
    /* Warm-up: caches, page faults, and idle cores (a VM's idle vCPU takes a while to run
     * at speed again) — runs/10 runs and at least WARM_UP_MS. */
    double warm_until = now_ms() + WARM_UP_MS;
    for (long i = 0; i <= runs / 10 || now_ms() < warm_until; i++) {
        session_run(s);
    }
    for (long i = 0; i < runs; i++) {
        double start = now_ms();
        session_run(s);
        times[i] = now_ms() - start;
    }
    qsort(times, (size_t)runs, sizeof *times, compare_doubles);
    double median = runs % 2 ? times[runs / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
    printf("bench: %ld runs, %d threads: min %.3f ms, median %.3f ms, p90 %.3f ms, p99 %.3f ms, "
           "max %.3f ms\n", runs, s->threads, times[0], median, percentile(times, runs, 90),
           percentile(times, runs, 99), times[runs - 1]);
    free(times);
}
