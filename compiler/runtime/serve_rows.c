#include "serve_rows.h"

#include "errors.h"
#include "pool.h"
#include "serve_batch.h"
#include "serve_lanes.h"
#include "tensor.h"

#include <stdlib.h>

static int64_t bucket_rows(const struct row_lanes *l, uint32_t bucket)
{
    return batch_rows(l->buckets[bucket]->model);
}

static struct session *largest(const struct row_lanes *l)
{
    return l->buckets[l->count_buckets - 1];
}

static void *alloc_zeroed(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    if (p == NULL) {
        fail("out of memory");
    }
    return p;
}

static size_t aligned_bytes(size_t bytes)
{
    return (bytes + KILN_ALIGNMENT - 1) / KILN_ALIGNMENT * KILN_ALIGNMENT;
}

/* Marks the buckets below the largest whose arenas fit `lanes` times in the largest one's; the size of
 * a lane's arena, 0 when none does. */
static size_t mark_sliceable(struct row_lanes *l, int lanes)
{
    size_t room = largest(l)->model->scratch_bytes, arena = 0;
    for (uint32_t b = 0; b + 1 < l->count_buckets; b++) {
        size_t bytes = aligned_bytes(l->buckets[b]->model->scratch_bytes);
        l->sliceable[b] = bytes * (size_t)lanes <= room;
        arena = l->sliceable[b] && bytes > arena ? bytes : arena;
    }
    return arena;
}

void row_lanes_open(struct row_lanes *l, struct session *const *buckets, uint32_t count, int lanes)
{
    *l = (struct row_lanes){.buckets = buckets, .count_buckets = count};
    struct session *wide = largest(l);
    int lane_count = lanes_count(lanes, wide->threads);
    if (count < 2 || wide->gpu != NULL || wide->pjrt != NULL || lane_count < 2 || lane_count > wide->threads) {
        return;
    }
    l->sliceable = alloc_zeroed(count, sizeof *l->sliceable);
    size_t arena = mark_sliceable(l, lane_count);
    if (arena == 0) {
        return;
    }
    l->count = lane_count;
    l->items = alloc_zeroed((size_t)l->count, sizeof *l->items);
    l->slices = alloc_zeroed((size_t)bucket_rows(l, count - 1), sizeof *l->slices);
    for (int i = 0; i < l->count; i++) {
        struct row_lane *lane = &l->items[i];
        lane->pool = pool_create(lane_threads(wide->threads, l->count, i));
        lane->scratch = wide->scratch + arena * (size_t)i;
        lane->inputs = alloc_zeroed(wide->model->n_inputs, sizeof *lane->inputs);
        lane->outputs = alloc_zeroed(wide->model->n_outputs, sizeof *lane->outputs);
    }
}

/* The sliceable bucket for the next slice of a share with `left` rows: the largest it fills, else the
 * smallest (padded); count_buckets when none is sliceable. */
static uint32_t slice_bucket(const struct row_lanes *l, int64_t left)
{
    uint32_t best = l->count_buckets;
    for (uint32_t b = 0; b + 1 < l->count_buckets; b++) {
        if (l->sliceable[b] && (best == l->count_buckets || bucket_rows(l, b) <= left)) {
            best = b;
        }
    }
    return best;
}

/* Appends the slices of one lane's share, [start, start + share) of `rows`; false when a slice
 * would be padded anywhere but at the end of the rows, or past the largest bucket's. */
static bool plan_share(struct row_lanes *l, int64_t start, int64_t share, int64_t rows)
{
    for (int64_t at = start, end = start + share; at < end;) {
        uint32_t bucket = slice_bucket(l, end - at);
        int64_t size = bucket_rows(l, bucket), take = size < end - at ? size : end - at;
        if (take < size && (at + take < rows || at + size > bucket_rows(l, l->count_buckets - 1))) {
            return false;
        }
        l->slices[l->planned++] = (struct row_slice){.start = at, .rows = take, .bucket = bucket};
        at += take;
    }
    return true;
}

int row_lanes_plan(struct row_lanes *l, int64_t rows)
{
    if (l->count < 2 || rows < 2 || rows > bucket_rows(l, l->count_buckets - 1)) {
        return 0;
    }
    int lanes = rows < l->count ? (int)rows : l->count;
    l->planned = 0;
    int64_t start = 0;
    for (int i = 0; i < lanes; i++) {
        int64_t share = rows / lanes + (i < rows % lanes);
        l->items[i].first = l->planned;
        if (!plan_share(l, start, share, rows)) {
            return 0;  /* these rows run whole */
        }
        l->items[i].count = l->planned - l->items[i].first;
        start += share;
    }
    return lanes;
}

static void point_at_rows(void **slice, void *const *whole, const kiln_tensor_desc *descs, uint32_t count,
                          int64_t whole_rows, int64_t start)
{
    for (uint32_t t = 0; t < count; t++) {
        slice[t] = (char *)whole[t] + tensor_bytes(&descs[t]) / (size_t)whole_rows * (size_t)start;
    }
}

static void run_lanes(void *ctx, int64_t begin, int64_t end)
{
    struct row_lanes *l = ctx;
    const struct session *wide = largest(l);
    const kiln_model_desc *m = wide->model;
    for (int64_t i = begin; i < end; i++) {
        struct row_lane *lane = &l->items[i];
        for (int k = lane->first; k < lane->first + lane->count; k++) {
            const struct row_slice *slice = &l->slices[k];
            point_at_rows(lane->inputs, wide->inputs, m->inputs, m->n_inputs, batch_rows(m), slice->start);
            point_at_rows(lane->outputs, wide->outputs, m->outputs, m->n_outputs, batch_rows(m), slice->start);
            session_run_on(l->buckets[slice->bucket], lane->inputs, lane->outputs, lane->scratch, lane->pool);
        }
    }
}

void row_lanes_run(struct row_lanes *l, int lanes, atomic_ullong *runs)
{
    kiln_parallel_for(largest(l)->pool, run_lanes, l, lanes);
    for (int k = 0; runs != NULL && k < l->planned; k++) {
        atomic_fetch_add(&runs[l->slices[k].bucket], 1);
    }
}

void row_lanes_close(struct row_lanes *l)
{
    for (int i = 0; i < l->count; i++) {
        pool_destroy(l->items[i].pool);
        free(l->items[i].inputs);
        free(l->items[i].outputs);
    }
    free(l->items);
    free(l->slices);
    free(l->sliceable);
}
