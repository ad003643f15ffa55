/* The contract between a compiled model object and the launcher.
 *
 * The compiler (kiln.compiler, CPU backend) emits one object file per model and
 * host. It defines exactly one external symbol of data, `kiln_model`, of type
 * `kiln_model_desc`, plus the entry functions the descriptor points at. The
 * launcher (main.c and friends) links against it and owns everything else:
 * weights mapping, inputs and outputs, the thread pool, CPU feature checks.
 *
 * The generated code never allocates; it reads weights and writes outputs and
 * scratch through the pointers it is given, and it splits large loops over the
 * launcher's pool with kiln_parallel_for.
 */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H

#include <stdint.h>

#define KILN_ABI_VERSION 1u
#define KILN_MAX_RANK 8

enum kiln_dtype {
    KILN_F32 = 1,
    KILN_F16 = 2,
    KILN_BF16 = 3,
    KILN_I8 = 4,
    KILN_U8 = 5,
    KILN_I32 = 6,
    KILN_I64 = 7,
    KILN_BOOL = 8,     /* one byte, 0 or 1 */
};

/* CPU features an entry point may require (bit mask, x86_64). */
enum kiln_cpu_feature {
    KILN_CPU_SSE42 = 1u << 0,   /* x86-64-v2 */
    KILN_CPU_AVX2 = 1u << 1,    /* x86-64-v3: with FMA, BMI1/2, F16C, MOVBE */
    KILN_CPU_FMA = 1u << 2,
    KILN_CPU_AVX512 = 1u << 3,  /* x86-64-v4: F, BW, CD, DQ, VL */
};

typedef struct {
    const char *name;
    uint32_t dtype;                   /* enum kiln_dtype */
    uint32_t rank;
    int64_t shape[KILN_MAX_RANK];
} kiln_tensor_desc;

typedef struct {
    const char *name;                 /* name in the safetensors header */
    uint32_t dtype;
    uint32_t rank;
    int64_t shape[KILN_MAX_RANK];
    uint64_t offset;                  /* byte offset inside the safetensors data section */
    uint64_t nbytes;
    uint8_t sha256[32];               /* of the tensor's bytes */
} kiln_weight_desc;

/* Called by generated code: run fn(ctx, begin, end) over [0, n) split into
 * contiguous chunks on the launcher's threads; returns when all are done. */
typedef void (*kiln_task_fn)(void *ctx, int64_t begin, int64_t end);
void kiln_parallel_for(void *pool, kiln_task_fn fn, void *ctx, int64_t n);

/* weights: start of the safetensors data section (after the 8-byte length and
 * the JSON header), 64-byte aligned by the launcher.
 * inputs/outputs: one pointer per tensor, in descriptor order.
 * scratch: scratch_bytes, 64-byte aligned. pool: handed to kiln_parallel_for. */
typedef void (*kiln_entry_fn)(const uint8_t *weights, const void *const *inputs,
                              void *const *outputs, uint8_t *scratch, void *pool);

typedef struct {
    const char *name;                 /* "x86-64-v4", "x86-64-v3", "x86-64-v2", "aarch64" */
    uint32_t required_features;       /* enum kiln_cpu_feature mask; 0 = baseline */
    kiln_entry_fn entry;
} kiln_variant_desc;

typedef struct {
    uint32_t abi_version;             /* KILN_ABI_VERSION */
    const char *model_name;
    uint32_t n_inputs;
    const kiln_tensor_desc *inputs;
    uint32_t n_outputs;
    const kiln_tensor_desc *outputs;
    uint32_t n_weights;
    const kiln_weight_desc *weights;
    uint64_t weights_data_bytes;      /* size of the safetensors data section */
    uint64_t scratch_bytes;
    uint32_t n_variants;              /* best first; the launcher takes the first the CPU supports */
    const kiln_variant_desc *variants;
} kiln_model_desc;

extern const kiln_model_desc kiln_model;

/* Shape buckets (model(shapes), model(batch_sizes)): the object of a model
 * compiled at several input shapes also defines kiln_buckets, listing each
 * bucket's descriptor, kiln_model first. Weak: an object without buckets links
 * and runs as one. An input's leading dim always pads (zero rows); its other
 * dims only when padded[input] (with pad_values[input]). */
typedef struct {
    uint32_t n_buckets;
    const kiln_model_desc *const *models;   /* smallest first */
    const uint8_t *padded;                  /* per input */
    const double *pad_values;               /* per input */
    const int32_t *follows;                 /* per output, KILN_MAX_RANK dims: the input dim
                                               (input * KILN_MAX_RANK + dim) it is cut back along, or -1 */
} kiln_bucket_table;

extern const kiln_bucket_table kiln_buckets __attribute__((weak));

#endif
