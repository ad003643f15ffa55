#include "image.h"

#include "errors.h"
#include "tensor.h"

void image_check_input(const kiln_tensor_desc *input, uint32_t rows, uint32_t cols,
                       const char *source)
{
    const int64_t as_matrix[2] = {rows, cols};
    const int64_t as_vector[1] = {(int64_t)rows * cols};
    bool fits = shapes_match(input->shape, input->rank, as_matrix, 2) ||
                shapes_match(input->shape, input->rank, as_vector, 1);
    if (input->dtype != KILN_F32 || !fits) {
        char shape[160];
        format_shape(input->shape, input->rank, shape, sizeof shape);
        fail("%s: a %ux%u image does not fit input '%s' (%s %s)", source, rows, cols, input->name,
             dtype_name(input->dtype), shape);
    }
}

void image_to_input(float *dst, const uint8_t *pixels, size_t count, uint32_t max_value)
{
    float scale = 1.0f / (float)max_value;
    for (size_t i = 0; i < count; i++) {
        dst[i] = (float)pixels[i] * scale;
    }
}
