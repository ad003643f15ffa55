/* Sizes, names and values of the tensors described in kiln_model.h. */
#ifndef KILN_TENSOR_H
#define KILN_TENSOR_H

#include "kiln_model.h"

#include <stdbool.h>
#include <stddef.h>

#define KILN_ALIGNMENT 64

size_t dtype_size(uint32_t dtype);                 /* 0 for an unknown dtype */
const char *dtype_name(uint32_t dtype);            /* "f32", ... */
int64_t shape_elements(const int64_t *shape, uint32_t rank);
size_t tensor_bytes(const kiln_tensor_desc *desc);

/* Equal after dropping leading 1s: a [784] file feeds a [1, 784] input. */
bool shapes_match(const int64_t *a, uint32_t rank_a, const int64_t *b, uint32_t rank_b);

/* "[1, 1, 28, 28]" into buf. */
void format_shape(const int64_t *shape, uint32_t rank, char *buf, size_t size);

/* Element i as a double, for summaries. */
double tensor_value(const kiln_tensor_desc *desc, const void *data, int64_t i);

/* Zeroed, KILN_ALIGNMENT-aligned; fails on exhaustion. Free with free(). */
void *alloc_aligned(size_t bytes);

#endif
