/* Dynamic batching for `serve --max-batch N`: requests of a few rows each are gathered on one thread
 * into the batch the model was compiled for (up to N rows, waiting at most --batch-timeout-us after
 * the first), padded with zero rows, run once, and handed back their own rows of the outputs. */
#ifndef KILN_SERVE_BATCH_H
#define KILN_SERVE_BATCH_H

#include "session.h"

#include <pthread.h>
#include <stdbool.h>

struct batch_item {
    void **inputs;            /* rows * the model's row bytes, per model input */
    void **outputs;           /* filled: rows * the model's row bytes, per model output */
    int64_t rows;
    double queued, started, finished;  /* CLOCK_MONOTONIC seconds */
    bool done;
    struct batch_item *next;
};

struct batcher {
    struct session *session;
    int64_t max_rows;
    double timeout;           /* seconds */
    pthread_mutex_t lock;
    pthread_cond_t arrived, finished;
    struct batch_item *head, *tail;
    bool stopping;
    pthread_t thread;
};

/* The rows the model runs at once: the leading dimension of its first input. */
int64_t batch_rows(const kiln_model_desc *m);

void batcher_start(struct batcher *b, struct session *s, int64_t max_rows, long timeout_us);
/* Queues `item` and returns once its outputs are filled. */
void batcher_submit(struct batcher *b, struct batch_item *item);
/* Runs what is queued, then ends the thread. */
void batcher_stop(struct batcher *b);

#endif
