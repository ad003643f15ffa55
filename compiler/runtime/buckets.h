/* Shape buckets: which of a model's static variants takes the inputs at hand.
 * Shared by every platform: it reads only kiln_model_desc shapes. */
#ifndef KILN_BUCKETS_H
#define KILN_BUCKETS_H

#include "kiln_model.h"

#include <stdbool.h>
#include <stdint.h>

struct bucket_set {
    const kiln_model_desc *const *models;   /* smallest first */
    uint32_t count;
    const kiln_bucket_table *table;         /* padding facts; NULL for a single model */
};

/* An input's shape as given (rank 0: not given, any bucket takes it). */
struct input_shape {
    uint32_t rank;
    int64_t dims[KILN_MAX_RANK];
};

struct bucket_choice {
    const kiln_model_desc *model;
    int64_t rows;   /* the inputs' batch when the bucket's is larger (zero-padded), else 0 */
    bool padded;    /* padded past bucket_cut: an input's non-leading dim is smaller than the
                       bucket's, or an output does not lead with the batch (bucket_pad) */
};

/* kiln_buckets when the model object defines it, else `model` alone. */
struct bucket_set buckets_linked(const kiln_model_desc *model);

/* The smallest bucket whose inputs take `shapes` (one per input of the first
 * bucket): the same shapes, or one leading batch dim no larger than the
 * bucket's on every input, and other dims no larger than the bucket's on the
 * inputs with a pad value. Fails naming an input, its shape and the shapes
 * compiled when none does. */
struct bucket_choice bucket_select(struct bucket_set set, const struct input_shape *shapes);

/* `desc` cut back to `rows` leading rows (rows 0: unchanged). */
kiln_tensor_desc bucket_cut(const kiln_tensor_desc *desc, int64_t rows);

/* `want` with the dims of `given` (a shape bucket_select took for it). */
kiln_tensor_desc bucket_given(const kiln_tensor_desc *want, const struct input_shape *given);

/* Output `output` of bucket `m` cut back along the dims that follow a padded
 * input dim to that input's `given` (one per input) dims. */
kiln_tensor_desc bucket_output_cut(struct bucket_set set, const kiln_model_desc *m, uint32_t output,
                                   const struct input_shape *given);

/* Fill `dst` (bucket input `input`, shape `to`) with the input's pad value,
 * then copy `src` (shape `from`, no larger in any dim) into its first rows and
 * columns. */
void bucket_pad(struct bucket_set set, uint32_t input, void *dst, const kiln_tensor_desc *to,
                const void *src, const kiln_tensor_desc *from);

/* The first `to` rows and columns of `src` (shape `from`) into `dst`. */
void bucket_crop(void *dst, const kiln_tensor_desc *to, const void *src, const kiln_tensor_desc *from);

#endif
