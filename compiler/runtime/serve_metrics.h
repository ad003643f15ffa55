/* The server's counters, served at GET /metrics in Prometheus text format. */
#ifndef KILN_SERVE_METRICS_H
#define KILN_SERVE_METRICS_H

#include "strbuf.h"

#include <pthread.h>

#define METRICS_BUCKETS 14
#define METRICS_CODES 16

struct histogram {
    unsigned long long buckets[METRICS_BUCKETS];  /* cumulative counts happen at render time */
    unsigned long long count;
    double sum;
};

struct serve_metrics {
    pthread_mutex_t lock;
    const char *platform;
    int codes[METRICS_CODES];
    unsigned long long code_counts[METRICS_CODES];
    struct histogram latency, queue, inference;
    long in_flight;
};

void metrics_init(struct serve_metrics *m, const char *platform);
void metrics_request_started(struct serve_metrics *m);
/* A finished request: its status and seconds end to end. */
void metrics_request_done(struct serve_metrics *m, int status, double seconds);
/* An inference's time waiting for the model and running it. */
void metrics_inference(struct serve_metrics *m, double queue_seconds, double infer_seconds);
void metrics_render(struct serve_metrics *m, struct strbuf *out);

#endif
