#define _GNU_SOURCE
#include "pjrt_model.h"

#include "errors.h"
#include "files.h"
#include "json.h"
#include "pjrt_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dtype_name {
    const char *name;
    uint32_t kiln;
    int pjrt;
};

/* bool tensors are one byte per element on both sides of the PJRT boundary. */
static const struct dtype_name dtypes[] = {
    {"f32", KILN_F32, PJRT_Buffer_Type_F32}, {"i64", KILN_I64, PJRT_Buffer_Type_S64},
    {"i32", KILN_I32, PJRT_Buffer_Type_S32}, {"bool", KILN_BOOL, PJRT_Buffer_Type_PRED},
    {"u8", KILN_U8, PJRT_Buffer_Type_U8},    {"i8", KILN_I8, PJRT_Buffer_Type_S8},
    {"f16", KILN_F16, PJRT_Buffer_Type_F16},
    {"bf16", KILN_BF16, PJRT_Buffer_Type_BF16},
};

static void *zalloc(size_t count, size_t size)
{
    void *p = calloc(count + 1, size);
    if (p == NULL) {
        fail("out of memory");
    }
    return p;
}

static char *copy(const char *text)
{
    char *s = strdup(text);
    if (s == NULL) {
        fail("out of memory");
    }
    return s;
}


static const char *where;  /* the manifest path, for messages */

static const struct json *need(const struct json *object, const char *key, enum json_type type)
{
    const struct json *v = json_get(object, key);
    if (v == NULL || v->type != type) {
        fail("%s: missing or malformed \"%s\"", where, key);
    }
    return v;
}

static int64_t need_int(const struct json *object, const char *key)
{
    int64_t n;
    if (!json_int(json_get(object, key), &n) || n < 0) {
        fail("%s: \"%s\" must be a non-negative integer", where, key);
    }
    return n;
}

static const struct dtype_name *dtype_of(const struct json *tensor)
{
    const char *name = need(tensor, "dtype", JSON_STRING)->text;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        if (strcmp(dtypes[i].name, name) == 0) {
            return &dtypes[i];
        }
    }
    fail("%s: unsupported dtype '%s'", where, name);
}

static uint32_t read_shape(const struct json *tensor, int64_t *shape)
{
    const struct json *dims = need(tensor, "shape", JSON_ARRAY);
    if (dims->count > KILN_MAX_RANK) {
        fail("%s: rank %zu is more than %d", where, dims->count, KILN_MAX_RANK);
    }
    for (size_t i = 0; i < dims->count; i++) {
        if (!json_int(&dims->items[i], &shape[i]) || shape[i] < 0) {
            fail("%s: a shape holds something other than a dimension", where);
        }
    }
    return (uint32_t)dims->count;
}

static kiln_tensor_desc *read_tensors(const struct json *list, uint32_t *count, int **types)
{
    *count = (uint32_t)list->count;
    kiln_tensor_desc *descs = zalloc(list->count, sizeof *descs);
    *types = zalloc(list->count, sizeof **types);
    for (size_t i = 0; i < list->count; i++) {
        const struct dtype_name *d = dtype_of(&list->items[i]);
        descs[i].name = copy(need(&list->items[i], "name", JSON_STRING)->text);
        descs[i].dtype = d->kiln;
        (*types)[i] = d->pjrt;
        descs[i].rank = read_shape(&list->items[i], descs[i].shape);
    }
    return descs;
}

static void read_digest(const char *hex, uint8_t digest[32])
{
    for (int i = 0; i < 32; i++) {
        unsigned byte;
        if (strlen(hex) != 64 || sscanf(hex + 2 * i, "%2x", &byte) != 1) {
            fail("%s: a weight's sha256 is not 64 hex digits", where);
        }
        digest[i] = (uint8_t)byte;
    }
}

static void read_weights(struct pjrt_model *m, const struct json *weights)
{
    const struct json *list = need(weights, "tensors", JSON_ARRAY);
    kiln_weight_desc *descs = zalloc(list->count, sizeof *descs);
    for (size_t i = 0; i < list->count; i++) {
        const struct json *t = &list->items[i];
        descs[i].name = copy(need(t, "name", JSON_STRING)->text);
        descs[i].dtype = dtype_of(t)->kiln;
        descs[i].rank = read_shape(t, descs[i].shape);
        descs[i].offset = (uint64_t)need_int(t, "offset");
        descs[i].nbytes = (uint64_t)need_int(t, "nbytes");
        read_digest(need(t, "sha256", JSON_STRING)->text, descs[i].sha256);
    }
    m->desc.weights = descs;
    m->desc.n_weights = (uint32_t)list->count;
    m->desc.weights_data_bytes = (uint64_t)need_int(weights, "data_bytes");
    m->weights_path = path_join(m->share_dir, need(weights, "file", JSON_STRING)->text);
}

static uint32_t argument_index(const kiln_model_desc *d, bool weight, const char *name)
{
    uint32_t n = weight ? d->n_weights : d->n_inputs;
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(weight ? d->weights[i].name : d->inputs[i].name, name) == 0) {
            return i;
        }
    }
    fail("%s: the program's argument %s '%s' is not in the manifest", where,
         weight ? "weight" : "input", name);
}

static void read_arguments(struct pjrt_model *m, const struct json *list)
{
    m->n_arguments = (uint32_t)list->count;
    m->arguments = zalloc(list->count, sizeof *m->arguments);
    for (size_t i = 0; i < list->count; i++) {
        const char *kind = need(&list->items[i], "kind", JSON_STRING)->text;
        const char *name = need(&list->items[i], "name", JSON_STRING)->text;
        bool weight = strcmp(kind, "weight") == 0;
        if (!weight && strcmp(kind, "input") != 0) {
            fail("%s: argument kind must be weight or input, got '%s'", where, kind);
        }
        m->arguments[i].is_weight = weight;
        m->arguments[i].index = argument_index(&m->desc, weight, name);
    }
}

/* `section`: the manifest's top level, or one of its shape buckets; the weights are the top level's. */
static void read_manifest(struct pjrt_model *m, const struct json *root, const struct json *section)
{
    m->desc.abi_version = KILN_ABI_VERSION;
    m->desc.model_name = copy(need(root, "name", JSON_STRING)->text);
    m->desc.inputs = read_tensors(need(section, "inputs", JSON_ARRAY), &m->desc.n_inputs, &m->input_types);
    m->desc.outputs = read_tensors(need(section, "outputs", JSON_ARRAY), &m->desc.n_outputs, &m->output_types);
    read_weights(m, need(root, "weights", JSON_OBJECT));
    m->program_path = path_join(m->share_dir,
                                need(need(section, "program", JSON_OBJECT), "file", JSON_STRING)->text);
    read_arguments(m, need(section, "arguments", JSON_ARRAY));
}

struct pjrt_model *pjrt_model_load(const char *platform, uint32_t *count)
{
    char *dir = platform_share_dir(platform);
    char *path = path_join(dir, "manifest.json");
    size_t size;
    uint8_t *text = read_file(path, &size);
    char why[128];
    struct json *root = json_parse((const char *)text, size, why, sizeof why);
    where = path;
    if (root == NULL) {
        fail("%s: malformed JSON: %s", path, why);
    }
    const struct json *buckets = json_get(root, "buckets");
    *count = buckets != NULL ? (uint32_t)need(root, "buckets", JSON_ARRAY)->count : 1;
    if (*count == 0) {
        fail("%s: \"buckets\" is empty", path);
    }
    struct pjrt_model *models = zalloc(*count, sizeof *models);
    for (uint32_t b = 0; b < *count; b++) {
        models[b].share_dir = copy(dir);
        read_manifest(&models[b], root, buckets != NULL ? &buckets->items[b] : root);
    }
    json_free(root);
    free(text);
    free(path);
    free(dir);
    where = NULL;
    return models;
}

static void free_tensors(const kiln_tensor_desc *descs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        free((char *)descs[i].name);
    }
    free((void *)descs);
}

static void free_model(struct pjrt_model *m)
{
    free_tensors(m->desc.inputs, m->desc.n_inputs);
    free_tensors(m->desc.outputs, m->desc.n_outputs);
    for (uint32_t i = 0; i < m->desc.n_weights; i++) {
        free((char *)m->desc.weights[i].name);
    }
    free((void *)m->desc.weights);
    free((char *)m->desc.model_name);
    free(m->arguments);
    free(m->input_types);
    free(m->output_types);
    free(m->program_path);
    free(m->weights_path);
    free(m->share_dir);
}

void pjrt_model_free(struct pjrt_model *models, uint32_t count)
{
    for (uint32_t b = 0; b < count; b++) {
        free_model(&models[b]);
    }
    free(models);
}
