/* A run of several rows split across lanes: where shape buckets hold them, each lane runs a slice of
 * the rows in the smallest bucket holding that slice, side by side with the others on its share of the
 * threads (the gain serve_lanes.h describes, for batched runs). The slices are the largest bucket's
 * input and output buffers at row offsets, so nothing is copied, and the lanes' scratch arenas are
 * carved from the largest bucket's arena while they fit in it: where the buckets' arenas grow with
 * their rows, splitting costs no memory. */
#ifndef KILN_SERVE_ROWS_H
#define KILN_SERVE_ROWS_H

#include "session.h"

#include <stdbool.h>
#include <stdint.h>

struct row_slice {
    int64_t start, rows;     /* the gathered rows it takes */
    uint32_t bucket;         /* it runs in, padded: rows [start, start + the bucket's batch) */
};

struct row_lane {
    struct pool *pool;
    uint8_t *scratch;
    bool own_scratch;        /* the largest bucket's arena had no room left for it */
    void **inputs, **outputs;  /* this run's rows of the largest bucket's buffers */
};

struct row_lanes {
    struct session *const *buckets;  /* smallest batch first; the last one's buffers hold the rows */
    uint32_t count_buckets;
    struct row_lane *items;
    int count;                       /* 0: runs are never split */
    struct row_slice *slices;        /* the current run's, one run at a time */
};

/* `lanes` lanes (0: the threads, at most LANES_AUTO) over CPU sessions of batch-only shape buckets
 * (`count` of them, smallest first); none for one bucket, one thread, or a GPU or PJRT session. */
void row_lanes_open(struct row_lanes *l, struct session *const *buckets, uint32_t count, int lanes);
/* Slices for `rows` rows gathered in the largest bucket's inputs, one per lane at most, none of them
 * in the largest bucket; 0 when the rows should run whole. */
int row_lanes_plan(struct row_lanes *l, int64_t rows);
/* Runs the planned slices side by side (the largest bucket's pool drives the lanes). */
void row_lanes_run(struct row_lanes *l, int slices);
void row_lanes_close(struct row_lanes *l);

#endif
