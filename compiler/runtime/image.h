/* Grey 8-bit images (PGM, IDX) as model inputs: pixels scaled to [0, 1] float32. */
#ifndef KILN_IMAGE_H
#define KILN_IMAGE_H

#include "kiln_model.h"

#include <stddef.h>

/* The input must be f32 shaped [..., rows, cols] or [..., rows * cols] with
 * only 1s in front; otherwise fails naming `source` and the input. */
void image_check_input(const kiln_tensor_desc *input, uint32_t rows, uint32_t cols,
                       const char *source);

void image_to_input(float *dst, const uint8_t *pixels, size_t count, uint32_t max_value);

#endif
