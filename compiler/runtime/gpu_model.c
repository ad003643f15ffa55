#include "gpu_model.h"

#include "errors.h"
#include "files.h"
#include "json.h"
#include "sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t num(const struct json *j, const char *key, const char *path)
{
    int64_t v;
    if (!json_int(json_get(j, key), &v) || v < 0) {
        fail("%s: \"%s\" missing or not a count", path, key);
    }
    return (uint64_t)v;
}

static int offsets(const struct json *list, uint64_t *out, int max, const char *path)
{
    if (list == NULL || list->type != JSON_ARRAY || (int)list->count > max) {
        fail("%s: bad buffer plan", path);
    }
    for (size_t i = 0; i < list->count; i++) {
        int64_t v;
        if (!json_int(&list->items[i], &v)) {
            fail("%s: bad buffer offset", path);
        }
        out[i] = (uint64_t)v;
    }
    return (int)list->count;
}

static void read_digest(const char *hex, uint8_t digest[32], const char *path)
{
    for (int i = 0; i < 32; i++) {
        unsigned byte;
        if (strlen(hex) != 64 || sscanf(hex + 2 * i, "%2x", &byte) != 1) {
            fail("%s: a weight's sha256 is not 64 hex digits", path);
        }
        digest[i] = (uint8_t)byte;
    }
}

static void read_weights(struct gpu_model *m, const struct json *weights, const char *path)
{
    const struct json *tensors = json_get(weights, "tensors");
    if (tensors == NULL || tensors->type != JSON_ARRAY) {
        fail("%s: \"weights\" lists no \"tensors\"", path);
    }
    m->n_weights = (int)tensors->count;
    m->weights = calloc(tensors->count + 1, sizeof *m->weights);
    for (size_t i = 0; i < tensors->count; i++) {
        const struct json *t = &tensors->items[i], *name = json_get(t, "name"), *digest = json_get(t, "sha256");
        if (name == NULL || name->type != JSON_STRING || digest == NULL || digest->type != JSON_STRING) {
            fail("%s: a weight without a name or sha256", path);
        }
        snprintf(m->weights[i].name, sizeof m->weights[i].name, "%s", name->text);
        m->weights[i].offset = num(t, "offset", path);
        m->weights[i].nbytes = num(t, "nbytes", path);
        read_digest(digest->text, m->weights[i].sha256, path);
    }
}

void gpu_model_check_weights(const struct gpu_model *m, const uint8_t *data)
{
    for (int i = 0; i < m->n_weights; i++) {
        const struct gpu_weight *w = &m->weights[i];
        uint8_t digest[32];
        if (w->offset > m->weights_bytes || w->nbytes > m->weights_bytes - w->offset) {
            fail("%s: tensor '%s' lies outside the weights data", m->weights_path, w->name);
        }
        sha256(data + w->offset, w->nbytes, digest);
        if (memcmp(digest, w->sha256, sizeof digest) != 0) {
            fail("%s: tensor '%s' fails its sha256 check (not the file this platform was compiled with, or "
                 "corrupt)", m->weights_path, w->name);
        }
    }
}

void gpu_model_load(struct gpu_model *m, const char *platform)
{
    memset(m, 0, sizeof *m);
    m->dir = platform_share_dir(platform);
    char *path = path_join(m->dir, "manifest.json");
    size_t size;
    uint8_t *text = read_file(path, &size);
    char why[256];
    struct json *root = json_parse((const char *)text, size, why, sizeof why);
    if (root == NULL) {
        fail("%s: %s", path, why);
    }
    const struct json *targets = json_get(root, "targets"), *kernels = json_get(root, "kernels");
    const struct json *buffers = json_get(root, "buffers"), *weights = json_get(root, "weights");
    if (targets == NULL || targets->type != JSON_ARRAY || kernels == NULL || kernels->type != JSON_ARRAY
        || buffers == NULL || weights == NULL || targets->count > 16) {
        fail("%s: not a kiln GPU manifest", path);
    }
    for (size_t i = 0; i < targets->count; i++) {
        snprintf(m->targets[i], sizeof m->targets[i], "%s", targets->items[i].text);
    }
    m->n_targets = (int)targets->count;
    const struct json *ptx = json_get(json_get(root, "ptx"), "sm");
    if (ptx != NULL && ptx->type == JSON_STRING) {
        snprintf(m->ptx_sm, sizeof m->ptx_sm, "%s", ptx->text);
    }
    const struct json *min_cuda = json_get(root, "min_cuda");
    if (min_cuda != NULL) {
        m->cuda_cubin = (int)num(min_cuda, "cubin", path);
        m->cuda_ptx = (int)num(min_cuda, "ptx", path);
    }
    m->n_kernels = (int)kernels->count;
    m->kernels = calloc(kernels->count + 1, sizeof *m->kernels);
    for (size_t i = 0; i < kernels->count; i++) {
        const struct json *k = &kernels->items[i], *name = json_get(k, "name");
        if (name == NULL || name->type != JSON_STRING) {
            fail("%s: kernel without a name", path);
        }
        snprintf(m->kernels[i].name, sizeof m->kernels[i].name, "%s", name->text);
        m->kernels[i].grid = (uint32_t)num(k, "grid", path);
        m->kernels[i].block = (uint32_t)num(k, "block", path);
    }
    const struct json *file = json_get(weights, "file");
    if (file == NULL || file->type != JSON_STRING) {
        fail("%s: \"weights\" names no \"file\"", path);
    }
    m->weights_path = path_join(m->dir, file->text);
    m->weights_offset = num(weights, "data_offset", path);
    m->weights_bytes = num(weights, "data_bytes", path);
    read_weights(m, weights, path);
    m->activation_bytes = num(buffers, "activation_bytes", path);
    m->n_inputs = offsets(json_get(buffers, "inputs"), m->inputs, 16, path);
    m->n_outputs = offsets(json_get(buffers, "outputs"), m->outputs, 16, path);
    json_free(root);
    free(text);
    free(path);
}

void gpu_model_free(struct gpu_model *m)
{
    free(m->kernels);
    free(m->weights_path);
    free(m->weights);
    free(m->dir);
}

void gpu_model_targets(const struct gpu_model *m, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int i = 0; i < m->n_targets; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", i ? ", " : "", m->targets[i]);
    }
}
