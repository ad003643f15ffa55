/* Dynamic batching for `serve --max-batch N`: requests of a few rows each are gathered (up to N rows,
 * waiting at most --batch-timeout-us after the first, and only while more requests are being parsed: a
 * lone request runs at once), run once in the smallest shape bucket that holds them, padded with zero
 * rows, and handed back their own rows of the outputs. No thread of its own: a request that finds no
 * batch running leads the next one on its own thread (so a lone request pays no hand-over between
 * threads), and the others wait for theirs to finish. */
#ifndef KILN_SERVE_BATCH_H
#define KILN_SERVE_BATCH_H

#include "serve_rows.h"
#include "session.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* The sessions serve runs, one per shape bucket, smallest batch first (one alone without buckets). */
struct bucket_sessions {
    struct session **items;
    uint32_t count;
    bool bucketed;            /* the model has shape buckets (a GPU or PJRT session serves them in its own) */
    atomic_ullong *runs;      /* per bucket: model runs, for /metrics */
    struct row_lanes split;   /* a run's rows side by side in smaller buckets */
    atomic_ullong split_runs;
};

struct batch_item {
    void **inputs;            /* rows * the model's row bytes, per model input */
    void **outputs;           /* filled: rows * the model's row bytes, per model output */
    int64_t rows;
    double queued, started, finished;  /* CLOCK_MONOTONIC seconds */
    bool done;
    struct batch_item *next;
};

struct batcher {
    struct bucket_sessions *sessions;
    int64_t max_rows;
    double timeout;           /* seconds */
    pthread_mutex_t lock;
    pthread_cond_t arrived, finished;
    struct batch_item *head, *tail;
    long coming;              /* requests being parsed that will join the queue: wait only while some are */
    bool leading;             /* a request's thread is gathering or running a batch */
};

/* The rows the model runs at once: the leading dimension of its first input. */
int64_t batch_rows(const kiln_model_desc *m);

/* Runs `items` (a list) at once: in the smallest bucket holding their rows, or split across the row
 * lanes; the caller holds the sessions alone (as a batch's leader, or under a lock). */
void batch_run(struct bucket_sessions *sessions, struct batch_item *items);

void batcher_init(struct batcher *b, struct bucket_sessions *sessions, int64_t max_rows, long timeout_us);
/* A request's headers arrived (its body is being read or parsed): the next batch may wait (up to the
 * timeout) for it. */
void batcher_expect(struct batcher *b);
/* An expected request that will not come (it was refused). */
void batcher_forget(struct batcher *b);
/* Queues `item` (an expected request) and returns once its outputs are filled, having run the batches
 * before it (or its own) when no other request's thread was running them. */
void batcher_submit(struct batcher *b, struct batch_item *item);
/* Once no request is queued or running. */
void batcher_destroy(struct batcher *b);

#endif
