/* Runs a session's model on cuda or rocm: the platform's kernels, weights and buffer plan from
 * share/<platform>/, the same inputs and outputs as the CPU model. */
#ifndef KILN_GPU_SESSION_H
#define KILN_GPU_SESSION_H

#include "gpu_model.h"

#include <stddef.h>
#include <stdint.h>

struct session;

struct gpu_session {
    struct gpu_model model;
    struct cuda *cuda;
    struct hsa *hsa;
    uint8_t *weights_file;      /* the mapped weight file the manifest names */
    size_t weights_file_bytes;
    size_t in_bytes[16], out_bytes[16];
    char how[256];
};

/* batch: the shape bucket the session's model is (0: the only or first). */
void gpu_session_open(struct gpu_session *g, const char *platform, const struct session *s, int64_t batch);
void gpu_session_run(struct gpu_session *g, struct session *s);
void gpu_session_close(struct gpu_session *g);

#endif
