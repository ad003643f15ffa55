#include "buckets.h"

#include "errors.h"
#include "tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct bucket_set buckets_linked(const kiln_model_desc *model)
{
    static const kiln_model_desc *single[1];
    if (&kiln_buckets != NULL && kiln_buckets.n_buckets > 0) {
        return (struct bucket_set){kiln_buckets.models, kiln_buckets.n_buckets};
    }
    single[0] = model;
    return (struct bucket_set){single, 1};
}

/* `given` at the input's rank: leading 1s dropped or added, as shapes_match allows;
 * false when no count of leading 1s makes the ranks agree. */
static bool at_rank(const struct input_shape *given, uint32_t rank, int64_t *dims)
{
    uint32_t skip = 0;
    while (given->rank - skip > rank && given->dims[skip] == 1) {
        skip++;
    }
    uint32_t have = given->rank - skip;
    if (have > rank) {
        return false;
    }
    for (uint32_t i = 0; i < rank; i++) {
        dims[i] = i < rank - have ? 1 : given->dims[skip + i - (rank - have)];
    }
    return true;
}

/* The batch the input has in `want` (its leading dim, at most want's), or -1. */
static int64_t fitting_rows(const struct input_shape *given, const kiln_tensor_desc *want)
{
    int64_t dims[KILN_MAX_RANK];
    if (want->rank == 0 || !at_rank(given, want->rank, dims) || dims[0] > want->shape[0]) {
        return -1;
    }
    return memcmp(dims + 1, want->shape + 1, (want->rank - 1) * sizeof *dims) == 0 ? dims[0] : -1;
}

/* The inputs' common batch in bucket m, or -1 if it does not take them all. */
static int64_t bucket_rows(const kiln_model_desc *m, const struct input_shape *shapes)
{
    int64_t rows = 0;
    for (uint32_t i = 0; i < m->n_inputs; i++) {
        if (shapes[i].rank == 0) {
            continue;
        }
        int64_t r = fitting_rows(&shapes[i], &m->inputs[i]);
        if (r < 0 || (rows != 0 && r != rows)) {
            return -1;
        }
        rows = r;
    }
    return rows;
}

static bool fits_some_bucket(struct bucket_set set, const struct input_shape *shape, uint32_t input)
{
    for (uint32_t b = 0; b < set.count; b++) {
        if (fitting_rows(shape, &set.models[b]->inputs[input]) >= 0) {
            return true;
        }
    }
    return false;
}

static _Noreturn void fail_input(struct bucket_set set, const struct input_shape *shape, uint32_t input)
{
    char have[160], compiled[512];
    format_shape(shape->dims, shape->rank, have, sizeof have);
    size_t used = 0;
    for (uint32_t b = 0; b < set.count && used < sizeof compiled; b++) {
        const kiln_tensor_desc *t = &set.models[b]->inputs[input];
        used += (size_t)snprintf(compiled + used, sizeof compiled - used, "%s", b ? ", " : "");
        format_shape(t->shape, t->rank, compiled + used, sizeof compiled - used);
        used += strlen(compiled + used);
    }
    fail("input '%s' has shape %s; the model is compiled for %s (a smaller batch is zero-padded, "
         "other dims must match)", set.models[0]->inputs[input].name, have, compiled);
}

/* Names the first input no bucket takes on its own; else the inputs' batches differ. */
static _Noreturn void fail_no_bucket(struct bucket_set set, const struct input_shape *shapes)
{
    for (uint32_t i = 0; i < set.models[0]->n_inputs; i++) {
        if (shapes[i].rank > 0 && !fits_some_bucket(set, &shapes[i], i)) {
            fail_input(set, &shapes[i], i);
        }
    }
    fail("the inputs' leading (batch) dims differ; every input must have the same batch");
}

struct bucket_choice bucket_select(struct bucket_set set, const struct input_shape *shapes)
{
    for (uint32_t b = 0; b < set.count; b++) {
        const kiln_model_desc *m = set.models[b];
        int64_t rows = bucket_rows(m, shapes);
        if (rows >= 0) {
            bool padded = rows > 0 && m->n_inputs > 0 && rows < m->inputs[0].shape[0];
            return (struct bucket_choice){m, padded ? rows : 0};
        }
    }
    fail_no_bucket(set, shapes);
}

kiln_tensor_desc bucket_cut(const kiln_tensor_desc *desc, int64_t rows)
{
    kiln_tensor_desc cut = *desc;
    if (rows > 0 && cut.rank > 0) {
        cut.shape[0] = rows;
    }
    return cut;
}
