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

static void **alloc_pointers(uint32_t count)
{
    void **p = calloc(count ? count : 1, sizeof *p);
    if (p == NULL) {
        fail("out of memory");
    }
    return p;
}

/* Each lane's arena: as large as any bucket's but the largest (a slice never runs in that one). */
static size_t lane_scratch_bytes(const struct row_lanes *l)
{
    size_t most = 0;
    for (uint32_t b = 0; b + 1 < l->count_buckets; b++) {
        size_t bytes = l->buckets[b]->model->scratch_bytes;
        most = bytes > most ? bytes : most;
    }
    return (most + KILN_ALIGNMENT - 1) / KILN_ALIGNMENT * KILN_ALIGNMENT;
}

void row_lanes_open(struct row_lanes *l, struct session *const *buckets, uint32_t count, int lanes)
{
    *l = (struct row_lanes){.buckets = buckets, .count_buckets = count};
    struct session *wide = buckets[count - 1];
    int lane_count = lanes ? lanes : wide->threads < LANES_AUTO ? wide->threads : LANES_AUTO;
    if (count < 2 || wide->gpu != NULL || wide->pjrt != NULL || lane_count < 2 || lane_count > wide->threads) {
        return;
    }
    l->count = lane_count;
    l->items = calloc((size_t)l->count, sizeof *l->items);
    l->slices = calloc((size_t)l->count, sizeof *l->slices);
    if (l->items == NULL || l->slices == NULL) {
        fail("out of memory");
    }
    size_t arena = lane_scratch_bytes(l), room = wide->model->scratch_bytes;
    for (int i = 0; i < l->count; i++) {
        struct row_lane *lane = &l->items[i];
        lane->pool = pool_create(wide->threads / l->count + (i < wide->threads % l->count));
        lane->own_scratch = arena * (size_t)(i + 1) > room;
        lane->scratch = lane->own_scratch ? alloc_aligned(arena) : wide->scratch + arena * (size_t)i;
        lane->inputs = alloc_pointers(wide->model->n_inputs);
        lane->outputs = alloc_pointers(wide->model->n_outputs);
    }
}

/* The bucket a slice of `rows` rows runs in: the smallest holding them. */
static uint32_t holding(const struct row_lanes *l, int64_t rows)
{
    uint32_t b = 0;
    while (b + 1 < l->count_buckets && bucket_rows(l, b) < rows) {
        b++;
    }
    return b;
}

/* Rows for a slice that is not the last: a whole bucket (so its padding is not the next slice's
 * rows), the largest no more than an even share of what is left. */
static int64_t whole_bucket_near(const struct row_lanes *l, int64_t share, int64_t left)
{
    int64_t take = bucket_rows(l, 0);
    for (uint32_t b = 1; b < l->count_buckets && bucket_rows(l, b) <= share; b++) {
        take = bucket_rows(l, b);
    }
    return take < left ? take : left;
}

int row_lanes_plan(struct row_lanes *l, int64_t rows)
{
    if (l->count < 2 || rows < 2) {
        return 0;
    }
    int64_t start = 0, room = bucket_rows(l, l->count_buckets - 1);
    int n = 0;
    while (start < rows) {
        int64_t left = rows - start;
        int lanes_left = l->count - n;
        int64_t take = lanes_left == 1 ? left : whole_bucket_near(l, (left + lanes_left - 1) / lanes_left, left);
        uint32_t bucket = holding(l, take);
        if (bucket == l->count_buckets - 1 || start + bucket_rows(l, bucket) > room) {
            return 0;  /* the buckets cannot slice these rows: they run whole */
        }
        l->slices[n++] = (struct row_slice){.start = start, .rows = take, .bucket = bucket};
        start += take;
    }
    return n;
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
        const struct row_slice *slice = &l->slices[i];
        point_at_rows(lane->inputs, wide->inputs, m->inputs, m->n_inputs, batch_rows(m), slice->start);
        point_at_rows(lane->outputs, wide->outputs, m->outputs, m->n_outputs, batch_rows(m), slice->start);
        session_run_on(l->buckets[slice->bucket], lane->inputs, lane->outputs, lane->scratch, lane->pool);
    }
}

void row_lanes_run(struct row_lanes *l, int slices)
{
    kiln_parallel_for(largest(l)->pool, run_lanes, l, slices);
}

void row_lanes_close(struct row_lanes *l)
{
    for (int i = 0; i < l->count; i++) {
        struct row_lane *lane = &l->items[i];
        pool_destroy(lane->pool);
        if (lane->own_scratch) {
            free(lane->scratch);
        }
        free(lane->inputs);
        free(lane->outputs);
    }
    free(l->items);
    free(l->slices);
}
