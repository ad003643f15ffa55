#include "gpu_session.h"

#include "cuda.h"
#include "errors.h"
#include "files.h"
#include "hsa.h"
#include "session.h"
#include "tensor.h"
#include "weights.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void gpu_session_open(struct gpu_session *g, const char *platform, const struct session *s, int64_t batch)
{
    memset(g, 0, sizeof *g);
    gpu_model_load(&g->model, platform, batch);
    const struct gpu_model *m = &g->model;
    if (m->n_inputs != (int)s->model->n_inputs || m->n_outputs != (int)s->model->n_outputs) {
        fail("%s: share/%s/manifest.json does not match the linked model", platform, platform);
    }
    for (int i = 0; i < m->n_inputs; i++) {
        g->in_bytes[i] = tensor_bytes(&s->model->inputs[i]);
    }
    for (int i = 0; i < m->n_outputs; i++) {
        g->out_bytes[i] = tensor_bytes(&s->model->outputs[i]);
    }
    g->weights_file = weights_map_file(m->weights_path, &g->weights_file_bytes);
    if (m->weights_offset + m->weights_bytes > g->weights_file_bytes) {
        fail("%s: truncated (%zu bytes)", m->weights_path, g->weights_file_bytes);
    }
    const uint8_t *weights = g->weights_file + m->weights_offset;
    gpu_model_check_weights(m, weights);
    if (strcmp(platform, "cuda") == 0) {
        g->cuda = cuda_open(m, weights, g->how, sizeof g->how);
    } else {
        g->hsa = hsa_open(m, weights, g->how, sizeof g->how);
    }
}

void gpu_session_run(struct gpu_session *g, struct session *s)
{
    if (g->cuda != NULL) {
        cuda_run(g->cuda, s->inputs, g->in_bytes, s->outputs, g->out_bytes);
    } else {
        hsa_run(g->hsa, s->inputs, g->in_bytes, s->outputs, g->out_bytes);
    }
}

void gpu_session_close(struct gpu_session *g)
{
    if (g->cuda != NULL) {
        cuda_close(g->cuda);
    }
    if (g->hsa != NULL) {
        hsa_close(g->hsa);
    }
    if (g->weights_file != NULL) {
        munmap(g->weights_file, g->weights_file_bytes);
    }
    gpu_model_free(&g->model);
}
