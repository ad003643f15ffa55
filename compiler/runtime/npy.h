/* NumPy .npy files (format versions 1-3, little-endian, C order). */
#ifndef KILN_NPY_H
#define KILN_NPY_H

#include "kiln_model.h"

#include <stdbool.h>
#include <stddef.h>

bool npy_has_magic(const uint8_t *file, size_t size);

/* The array's shape (KILN_MAX_RANK dims) and rank; fails naming `path` on a bad header. */
void npy_read_shape(const char *path, const uint8_t *file, size_t size, int64_t *shape, uint32_t *rank);

/* Copies the array in `file` into dst, which holds the tensor `want`; fails
 * naming `path` if the header, dtype, shape or data size is wrong. */
void npy_load(const char *path, const uint8_t *file, size_t size, const kiln_tensor_desc *want,
              void *dst);

void npy_save(const char *path, const kiln_tensor_desc *desc, const void *data);

#endif
