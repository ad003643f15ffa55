/* A run of several rows split across lanes: each lane takes an even share of the rows and runs it,
 * in slices that smaller shape buckets hold, side by side with the others on its share of the threads
 * (the gain serve_lanes.h describes, for batched runs). The slices are the largest bucket's input and
 * output buffers at row offsets, so nothing is copied, and each lane works in its share of the largest
 * bucket's scratch arena: only buckets whose arenas fit that share slice the rows, so splitting costs
 * no memory. */
#ifndef KILN_SERVE_ROWS_H
#define KILN_SERVE_ROWS_H

#include "session.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct row_slice {
    int64_t start, rows;     /* the gathered rows it takes */
    uint32_t bucket;         /* it runs in, padded: rows [start, start + the bucket's batch) */
};

struct row_lane {
    struct pool *pool;
    uint8_t *scratch;          /* its share of the largest bucket's arena */
    void **inputs, **outputs;  /* a slice's rows of the largest bucket's buffers */
    int first, count;          /* the planned run's slices it runs, one after the other */
};

struct row_lanes {
    struct session *const *buckets;  /* smallest batch first; the last one's buffers hold the rows */
    uint32_t count_buckets;
    bool *sliceable;                 /* per bucket: its arena fits a lane's share of the largest one's */
    struct row_lane *items;
    int count;                       /* 0: runs are never split */
    struct row_slice *slices;        /* the planned run's, one run at a time */
    int planned;
};

/* `lanes` lanes (0: the threads, at most LANES_AUTO) over CPU sessions of batch-only shape buckets
 * (`count` of them, smallest first); none for one bucket, one thread, a GPU or PJRT session, or
 * buckets none of whose arenas fits a lane's share of the largest one's. */
void row_lanes_open(struct row_lanes *l, struct session *const *buckets, uint32_t count, int lanes);
/* Plans `rows` rows gathered in the largest bucket's inputs: an even share of them per lane, each
 * share in whole sliceable buckets (only the very last slice padded). The lanes it takes; 0 when the
 * rows should run whole. */
int row_lanes_plan(struct row_lanes *l, int64_t rows);
/* Runs the planned lanes side by side (the largest bucket's pool drives them), adding each slice's
 * run to its bucket's count in `runs` (if not NULL). */
void row_lanes_run(struct row_lanes *l, int lanes, atomic_ullong *runs);
void row_lanes_close(struct row_lanes *l);

#endif
