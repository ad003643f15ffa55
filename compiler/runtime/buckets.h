/* Shape buckets: which of a model's static variants takes the inputs at hand.
 * Shared by every platform: it reads only kiln_model_desc shapes. */
#ifndef KILN_BUCKETS_H
#define KILN_BUCKETS_H

#include "kiln_model.h"

#include <stdint.h>

struct bucket_set {
    const kiln_model_desc *const *models;   /* smallest batch first */
    uint32_t count;
};

/* An input's shape as given (rank 0: not given, any bucket takes it). */
struct input_shape {
    uint32_t rank;
    int64_t dims[KILN_MAX_RANK];
};

struct bucket_choice {
    const kiln_model_desc *model;
    int64_t rows;   /* the inputs' batch when the bucket's is larger (zero-padded), else 0 */
};

/* kiln_buckets when the model object defines it, else `model` alone. */
struct bucket_set buckets_linked(const kiln_model_desc *model);

/* The smallest bucket whose inputs take `shapes` (one per input of the first
 * bucket): the same shapes, or one leading batch dim no larger than the
 * bucket's on every input. Fails naming an input, its shape and the shapes
 * compiled when none does. */
struct bucket_choice bucket_select(struct bucket_set set, const struct input_shape *shapes);

/* `desc` cut back to `rows` leading rows (rows 0: unchanged). */
kiln_tensor_desc bucket_cut(const kiln_tensor_desc *desc, int64_t rows);

#endif
