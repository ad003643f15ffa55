/* NVIDIA GPUs through the CUDA driver API of the host's libcuda.so.1 (dlopen'ed, never bundled,
 * no DT_NEEDED): probe, load the matching cubin (or JIT the PTX), run the kernels in order. */
#ifndef KILN_CUDA_H
#define KILN_CUDA_H

#include "gpu_model.h"

#include <stdbool.h>
#include <stddef.h>

struct cuda;

/* libcuda.so.1 loads, cuInit succeeds and reports a device: `found` names it ("NVIDIA A100 (sm_80, driver CUDA 12.4)"),
 * else `why` says what was missing ("libcuda.so.1 not found", "cuInit: CUDA_ERROR_NO_DEVICE (100)"). */
bool cuda_probe(char *found, size_t found_size, char *why, size_t why_size);

/* After a successful probe: device 0 runs one of the bundle's cubins or its PTX and the driver is
 * new enough for it; else `why` says which ("the GPU is sm_70; this bundle has code for ..."). */
bool cuda_supported(const struct gpu_model *m, char *why, size_t why_size);

/* Device 0 with the model's code (a cubin, else or when the driver rejects it the PTX, with the JIT's
 * error log in the message if that fails too) and weights uploaded; fails with the CUDA error on any
 * problem. */
struct cuda *cuda_open(const struct gpu_model *m, const void *weights, char *how, size_t how_size);
/* Inputs to their offsets, every kernel on the stream, outputs back. */
void cuda_run(struct cuda *c, void *const *inputs, const size_t *in_bytes, void *const *outputs,
              const size_t *out_bytes);
void cuda_close(struct cuda *c);

#endif
