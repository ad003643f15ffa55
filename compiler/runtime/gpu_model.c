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

/* The manifest's top level, or its shape bucket of `batch` (0: the first). */
static const struct json *bucket_section(const struct json *root, int64_t batch, const char *path)
{
    const struct json *list = json_get(root, "buckets");
    if (list == NULL || batch == 0) {
        return root;
    }
    for (size_t i = 0; list->type == JSON_ARRAY && i < list->count; i++) {
        int64_t b;
        if (json_int(json_get(&list->items[i], "batch"), &b) && b == batch) {
            return &list->items[i];
        }
    }
    fail("%s: no shape bucket of batch %lld (the launcher's cpu model has one; rebuild both with one kiln)", path,
         (long long)batch);
}

static void read_text(char *dst, size_t size, const struct json *v, const char *what, const char *path)
{
    if (v == NULL || v->type != JSON_STRING || strlen(v->text) >= size) {
        fail("%s: %s missing or too long", path, what);
    }
    snprintf(dst, size, "%s", v->text);
}

static void read_targets(struct gpu_model *m, const struct json *section, const char *path)
{
    const struct json *targets = json_get(section, "targets"), *code = json_get(section, "code");
    if (targets == NULL || targets->type != JSON_ARRAY || targets->count > 16 || code == NULL) {
        fail("%s: not a kiln GPU manifest", path);
    }
    for (size_t i = 0; i < targets->count; i++) {
        read_text(m->targets[i], sizeof m->targets[i], &targets->items[i], "a target", path);
        read_text(m->code_files[i], sizeof m->code_files[i], json_get(json_get(code, m->targets[i]), "file"),
                  "a target's code file", path);
    }
    m->n_targets = (int)targets->count;
    const struct json *ptx = json_get(section, "ptx");
    if (ptx != NULL) {
        read_text(m->ptx_sm, sizeof m->ptx_sm, json_get(ptx, "sm"), "ptx.sm", path);
        read_text(m->ptx_file, sizeof m->ptx_file, json_get(ptx, "file"), "ptx.file", path);
    }
    const struct json *min_cuda = json_get(section, "min_cuda");
    if (min_cuda != NULL) {
        m->cuda_cubin = (int)num(min_cuda, "cubin", path);
        m->cuda_ptx = (int)num(min_cuda, "ptx", path);
    }
}

static void read_kernels(struct gpu_model *m, const struct json *kernels, const char *path)
{
    m->n_kernels = (int)kernels->count;
    m->kernels = calloc(kernels->count + 1, sizeof *m->kernels);
    for (size_t i = 0; i < kernels->count; i++) {
        const struct json *k = &kernels->items[i];
        read_text(m->kernels[i].name, sizeof m->kernels[i].name, json_get(k, "name"), "a kernel's name", path);
        m->kernels[i].grid = (uint32_t)num(k, "grid", path);
        m->kernels[i].block = (uint32_t)num(k, "block", path);
    }
}

static void read_manifest(struct gpu_model *m, const struct json *root, int64_t batch, const char *path)
{
    const struct json *section = bucket_section(root, batch, path);
    const struct json *kernels = json_get(section, "kernels"), *buffers = json_get(section, "buffers");
    const struct json *weights = json_get(root, "weights");
    if (kernels == NULL || kernels->type != JSON_ARRAY || buffers == NULL || weights == NULL) {
        fail("%s: not a kiln GPU manifest", path);
    }
    read_targets(m, section, path);
    read_kernels(m, kernels, path);
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
}

void gpu_model_load(struct gpu_model *m, const char *platform, int64_t batch)
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
    read_manifest(m, root, batch, path);
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

const char *gpu_model_code_file(const struct gpu_model *m, const char *target)
{
    for (int i = 0; i < m->n_targets; i++) {
        if (strcmp(m->targets[i], target) == 0) {
            return m->code_files[i];
        }
    }
    fail("%s: no code for %s", m->dir, target);
}

void gpu_model_targets(const struct gpu_model *m, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int i = 0; i < m->n_targets; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", i ? ", " : "", m->targets[i]);
    }
}
