#include "tensor.h"

#include "errors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t dtype_size(uint32_t dtype)
{
    switch (dtype) {
    case KILN_F32: case KILN_I32: return 4;
    case KILN_F16: case KILN_BF16: return 2;
    case KILN_I8: case KILN_U8: case KILN_BOOL: return 1;
    case KILN_I64: return 8;
    default: return 0;
    }
}

const char *dtype_name(uint32_t dtype)
{
    switch (dtype) {
    case KILN_F32: return "f32";
    case KILN_F16: return "f16";
    case KILN_BF16: return "bf16";
    case KILN_I8: return "i8";
    case KILN_U8: return "u8";
    case KILN_I32: return "i32";
    case KILN_I64: return "i64";
    case KILN_BOOL: return "bool";
    default: return "unknown";
    }
}

int64_t shape_elements(const int64_t *shape, uint32_t rank)
{
    int64_t n = 1;
    for (uint32_t i = 0; i < rank; i++) {
        n *= shape[i];
    }
    return n;
}

size_t tensor_bytes(const kiln_tensor_desc *desc)
{
    return (size_t)shape_elements(desc->shape, desc->rank) * dtype_size(desc->dtype);
}

static uint32_t leading_ones(const int64_t *shape, uint32_t rank)
{
    uint32_t n = 0;
    while (n < rank && shape[n] == 1) {
        n++;
    }
    return n;
}

bool shapes_match(const int64_t *a, uint32_t rank_a, const int64_t *b, uint32_t rank_b)
{
    uint32_t skip_a = leading_ones(a, rank_a);
    uint32_t skip_b = leading_ones(b, rank_b);
    if (rank_a - skip_a != rank_b - skip_b) {
        return false;
    }
    return memcmp(a + skip_a, b + skip_b, (rank_a - skip_a) * sizeof *a) == 0;
}

void format_shape(const int64_t *shape, uint32_t rank, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (uint32_t i = 0; i < rank && used < size; i++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (used < size) {
        snprintf(buf + used, size - used, "]");
    }
}

static double half_to_double(uint16_t h)
{
    int exponent = (h >> 10) & 0x1f;
    double mantissa = h & 0x3ff;
    double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (exponent == 0) {
        return sign * ldexp(mantissa, -24);
    }
    if (exponent == 31) {
        return mantissa != 0 ? NAN : sign * INFINITY;
    }
    return sign * ldexp(mantissa + 1024, exponent - 25);
}

static double bfloat_to_double(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

double tensor_value(const kiln_tensor_desc *desc, const void *data, int64_t i)
{
    switch (desc->dtype) {
    case KILN_F32: return ((const float *)data)[i];
    case KILN_F16: return half_to_double(((const uint16_t *)data)[i]);
    case KILN_BF16: return bfloat_to_double(((const uint16_t *)data)[i]);
    case KILN_I8: return ((const int8_t *)data)[i];
    case KILN_U8: case KILN_BOOL: return ((const uint8_t *)data)[i];
    case KILN_I32: return ((const int32_t *)data)[i];
    case KILN_I64: return (double)((const int64_t *)data)[i];
    default: return NAN;
    }
}

void *alloc_aligned(size_t bytes)
{
    size_t rounded = (bytes + KILN_ALIGNMENT - 1) / KILN_ALIGNMENT * KILN_ALIGNMENT;
    void *p = aligned_alloc(KILN_ALIGNMENT, rounded > 0 ? rounded : KILN_ALIGNMENT);
    if (p == NULL) {
        fail("out of memory allocating %zu bytes", bytes);
    }
    memset(p, 0, rounded);
    return p;
}
