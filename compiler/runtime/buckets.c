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
        return (struct bucket_set){kiln_buckets.models, kiln_buckets.n_buckets, &kiln_buckets};
    }
    single[0] = model;
    return (struct bucket_set){single, 1, NULL};
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

static bool pads_inner(struct bucket_set set, uint32_t input)
{
    return set.table != NULL && set.table->padded != NULL && set.table->padded[input];
}

/* The batch the input has in `want` (its leading dim, at most want's), or -1; *inner set when one of its
 * other dims is smaller than want's (allowed only for an input with a pad value). */
static int64_t fitting_rows(struct bucket_set set, const struct input_shape *given, const kiln_tensor_desc *want,
                            uint32_t input, bool *inner)
{
    int64_t dims[KILN_MAX_RANK];
    if (want->rank == 0 || !at_rank(given, want->rank, dims) || dims[0] > want->shape[0]) {
        return -1;
    }
    for (uint32_t d = 1; d < want->rank; d++) {
        if (dims[d] > want->shape[d] || (dims[d] < want->shape[d] && !pads_inner(set, input))) {
            return -1;
        }
        *inner = *inner || dims[d] < want->shape[d];
    }
    return dims[0];
}

/* The inputs' common batch in bucket m, or -1 if it does not take them all. */
static int64_t bucket_rows(struct bucket_set set, const kiln_model_desc *m, const struct input_shape *shapes,
                           bool *inner)
{
    int64_t rows = 0;
    *inner = false;
    for (uint32_t i = 0; i < m->n_inputs; i++) {
        if (shapes[i].rank == 0) {
            continue;
        }
        int64_t r = fitting_rows(set, &shapes[i], &m->inputs[i], i, inner);
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
        bool inner = false;
        if (fitting_rows(set, shape, &set.models[b]->inputs[input], input, &inner) >= 0) {
            return true;
        }
    }
    return false;
}

/* Whether some input of the model has a pad value (model(pad_values)). */
static bool any_pads(struct bucket_set set)
{
    for (uint32_t i = 0; i < set.models[0]->n_inputs; i++) {
        if (pads_inner(set, i)) {
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
    const char *name = set.models[0]->inputs[input].name;
    if (pads_inner(set, input)) {
        fail("input '%s' has shape %s; the model is compiled for %s (a smaller batch is zero-padded, "
             "smaller other dims are padded with %g)", name, have, compiled, set.table->pad_values[input]);
    }
    if (any_pads(set)) {
        fail("input '%s' has shape %s; the model is compiled for %s (a smaller batch is zero-padded, "
             "other dims must match: '%s' has no pad value)", name, have, compiled, name);
    }
    fail("input '%s' has shape %s; the model is compiled for %s (a smaller batch is zero-padded, "
         "other dims must match)", name, have, compiled);
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

/* Whether every output's leading dim follows the inputs' (bucket_cut may cut them all to the rows);
 * else padded rows are cut back along the followed dims only (bucket_output_cut). */
static bool outputs_lead_with_batch(struct bucket_set set, const kiln_model_desc *m)
{
    for (uint32_t o = 0; set.table != NULL && set.table->follows != NULL && o < m->n_outputs; o++) {
        if (m->outputs[o].rank > 0 && set.table->follows[o * KILN_MAX_RANK] < 0) {
            return false;
        }
    }
    return true;
}

struct bucket_choice bucket_select(struct bucket_set set, const struct input_shape *shapes)
{
    for (uint32_t b = 0; b < set.count; b++) {
        const kiln_model_desc *m = set.models[b];
        bool inner;
        int64_t rows = bucket_rows(set, m, shapes, &inner);
        if (rows >= 0) {
            bool padded = rows > 0 && m->n_inputs > 0 && rows < m->inputs[0].shape[0];
            inner = inner || (padded && !outputs_lead_with_batch(set, m));
            return (struct bucket_choice){m, padded && !inner ? rows : 0, inner};
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

kiln_tensor_desc bucket_given(const kiln_tensor_desc *want, const struct input_shape *given)
{
    kiln_tensor_desc desc = *want;
    if (given->rank > 0 && !at_rank(given, want->rank, desc.shape)) {
        fail("input '%s': rank does not fit the bucket chosen for it", want->name);
    }
    return desc;
}

kiln_tensor_desc bucket_output_cut(struct bucket_set set, const kiln_model_desc *m, uint32_t output,
                                   const struct input_shape *given)
{
    kiln_tensor_desc cut = m->outputs[output];
    for (uint32_t d = 0; set.table != NULL && set.table->follows != NULL && d < cut.rank; d++) {
        int32_t f = set.table->follows[output * KILN_MAX_RANK + d];
        if (f >= 0 && given[f / KILN_MAX_RANK].rank > 0) {
            kiln_tensor_desc in = bucket_given(&m->inputs[f / KILN_MAX_RANK], &given[f / KILN_MAX_RANK]);
            cut.shape[d] = in.shape[f % KILN_MAX_RANK];
        }
    }
    return cut;
}

/* The corner both shapes share, from `src` (strides of `from`) into `dst` (strides of `to`). */
static void copy_corner(char *dst, const int64_t *to, const char *src, const int64_t *from, uint32_t rank,
                        size_t item)
{
    int64_t n = to[0] < from[0] ? to[0] : from[0];
    if (rank == 1) {
        memcpy(dst, src, (size_t)n * item);
        return;
    }
    size_t to_step = (size_t)shape_elements(to + 1, rank - 1) * item;
    size_t from_step = (size_t)shape_elements(from + 1, rank - 1) * item;
    for (int64_t i = 0; i < n; i++) {
        copy_corner(dst + (size_t)i * to_step, to + 1, src + (size_t)i * from_step, from + 1, rank - 1, item);
    }
}

static void fill(void *dst, const kiln_tensor_desc *desc, double value)
{
    int64_t n = shape_elements(desc->shape, desc->rank);
    size_t item = dtype_size(desc->dtype);
    if (value == 0.0) {
        memset(dst, 0, (size_t)n * item);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        char *at = (char *)dst + (size_t)i * item;
        switch (desc->dtype) {
        case KILN_F32: *(float *)at = (float)value; break;
        case KILN_I64: *(int64_t *)at = (int64_t)value; break;
        case KILN_I32: *(int32_t *)at = (int32_t)value; break;
        case KILN_I8: *(int8_t *)at = (int8_t)value; break;
        case KILN_U8: case KILN_BOOL: *(uint8_t *)at = (uint8_t)value; break;
        default: fail("input '%s': padding with %g is not supported for %s", desc->name, value,
                      dtype_name(desc->dtype));
        }
    }
}

void bucket_pad(struct bucket_set set, uint32_t input, void *dst, const kiln_tensor_desc *to,
                const void *src, const kiln_tensor_desc *from)
{
    fill(dst, to, pads_inner(set, input) ? set.table->pad_values[input] : 0.0);
    if (to->rank > 0) {
        copy_corner(dst, to->shape, src, from->shape, to->rank, dtype_size(to->dtype));
    }
}

void bucket_crop(void *dst, const kiln_tensor_desc *to, const void *src, const kiln_tensor_desc *from)
{
    if (to->rank > 0) {
        copy_corner(dst, to->shape, src, from->shape, to->rank, dtype_size(to->dtype));
    }
}
