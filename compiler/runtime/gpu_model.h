/* A GPU platform's compiled model: share/<platform>/manifest.json next to its code files
 * (cubins + PTX, or one code object per gfx arch); the weights file it names (weights.file, relative
 * to the manifest) may be shared with other platforms. */
#ifndef KILN_GPU_MODEL_H
#define KILN_GPU_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gpu_kernel {
    char name[128];
    uint32_t grid, block;
};

struct gpu_weight {
    char name[128];
    uint64_t offset, nbytes;    /* inside the weights data section */
    uint8_t sha256[32];
};

struct gpu_model {
    char *dir;                  /* <exe_dir>/../share/<platform> */
    char *weights_path;         /* dir joined with the manifest's weights.file */
    char targets[16][16];       /* sm_80 ... or gfx90a ... */
    char code_files[16][64];    /* each target's cubin or code object, as the manifest names it */
    int n_targets;
    char ptx_sm[16];            /* cuda: the SM the shipped PTX was emitted for */
    char ptx_file[64];
    int cuda_cubin, cuda_ptx;   /* cuda: the cuDriverGetVersion the cubins / the PTX need (0: any) */
    struct gpu_kernel *kernels;
    int n_kernels;
    uint64_t weights_offset, weights_bytes, activation_bytes;
    struct gpu_weight *weights;
    int n_weights;
    uint64_t inputs[16], outputs[16];
    int n_inputs, n_outputs;
};

/* The manifest's model, or with shape buckets (its "buckets" list) the bucket of this batch; batch 0:
 * the first. Fails with one line when the manifest has buckets but none of `batch`. */
void gpu_model_load(struct gpu_model *m, const char *platform, int64_t batch);
void gpu_model_free(struct gpu_model *m);
/* Fails with a one-line reason unless every tensor in `data` (the weights data section of
 * m->weights_path) has the manifest's sha256: a shared weight file must be the one compiled for. */
void gpu_model_check_weights(const struct gpu_model *m, const uint8_t *data);
/* The cubin or code object file for `target`, one of m->targets. */
const char *gpu_model_code_file(const struct gpu_model *m, const char *target);
/* "gfx90a, gfx942" into buf. */
void gpu_model_targets(const struct gpu_model *m, char *buf, size_t size);

#endif
