#define _POSIX_C_SOURCE 200809L
#include "serve_infer.h"

#include "json.h"
#include "tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A request's tensors, parsed and checked before the session is taken. */
struct staged {
    int64_t rows;            /* batching: the request's leading dimension; 0: whole tensors */
    int64_t max_rows;        /* batching: most rows a request may carry; 0: no batching */
    void **inputs;           /* one buffer per model input, its request_desc's bytes */
    bool *in_body;           /* per model input: its binary data, read where it lies in the request body */
    void **outputs;
    bool *binary_outputs;    /* per model output: raw bytes instead of JSON */
    bool *wanted_outputs;
    char id[128];
};

static bool reject(struct infer_reply *r, const char *fmt, ...) KILN_PRINTF(2, 3);

static bool reject(struct infer_reply *r, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, args);
    va_end(args);
    r->status = 400;
    return false;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

const char *v2_datatype(uint32_t dtype)
{
    switch (dtype) {
    case KILN_F32: return "FP32";
    case KILN_F16: return "FP16";
    case KILN_BF16: return "BF16";
    case KILN_I8: return "INT8";
    case KILN_U8: return "UINT8";
    case KILN_I32: return "INT32";
    case KILN_I64: return "INT64";
    case KILN_BOOL: return "BOOL";
    default: return "UNKNOWN";
    }
}

static bool json_flag(const struct json *parameters, const char *key)
{
    const struct json *v = json_get(parameters, key);
    return v != NULL && v->type == JSON_BOOL && v->boolean;
}

static void store(uint32_t dtype, void *dst, int64_t i, double v)
{
    switch (dtype) {
    case KILN_F32: ((float *)dst)[i] = (float)v; break;
    case KILN_I8: ((int8_t *)dst)[i] = (int8_t)v; break;
    case KILN_U8: ((uint8_t *)dst)[i] = (uint8_t)v; break;
    case KILN_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
    case KILN_I64: ((int64_t *)dst)[i] = (int64_t)v; break;
    default: ((uint8_t *)dst)[i] = v != 0; break;
    }
}

/* Flattens (possibly nested) JSON data into dst; false on a non-number leaf or too many leaves. */
static bool flatten(const struct json *v, uint32_t dtype, void *dst, int64_t *n, int64_t max)
{
    if (v->type == JSON_ARRAY) {
        for (size_t i = 0; i < v->count; i++) {
            if (!flatten(&v->items[i], dtype, dst, n, max)) {
                return false;
            }
        }
        return true;
    }
    bool ok = v->type == JSON_NUMBER || (v->type == JSON_BOOL && dtype == KILN_BOOL);
    if (!ok || *n >= max) {
        return false;
    }
    store(dtype, dst, (*n)++, v->type == JSON_BOOL ? v->boolean : json_double(v));
    return true;
}

static bool read_shape(const struct json *tensor, const char *name, int64_t *shape, uint32_t *rank,
                       struct infer_reply *r)
{
    const struct json *dims = json_get(tensor, "shape");
    if (dims == NULL || dims->type != JSON_ARRAY || dims->count > KILN_MAX_RANK) {
        return reject(r, "input '%s': shape must be an array of at most %d integers", name, KILN_MAX_RANK);
    }
    for (size_t i = 0; i < dims->count; i++) {
        if (!json_int(&dims->items[i], &shape[i]) || shape[i] < 0) {
            return reject(r, "input '%s': shape must be an array of non-negative integers", name);
        }
    }
    *rank = (uint32_t)dims->count;
    return true;
}

static int find_tensor(const kiln_tensor_desc *descs, uint32_t count, const char *name)
{
    for (uint32_t i = 0; i < count; i++) {
        if (strcmp(descs[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The model's tensor as this request carries it: `rows` leading rows when batching. */
static kiln_tensor_desc request_desc(const kiln_tensor_desc *desc, int64_t rows)
{
    kiln_tensor_desc d = *desc;
    if (rows > 0) {
        d.shape[0] = rows;
    }
    return d;
}

/* Batching: [rows, the model's other dims...] with rows from 1 to max_rows, the same for every input. */
static bool batch_shape_ok(struct staged *st, const kiln_tensor_desc *desc, const int64_t *shape, uint32_t rank)
{
    if (rank != desc->rank || rank == 0 || shape[0] < 1 || shape[0] > st->max_rows ||
        (st->rows != 0 && shape[0] != st->rows)) {
        return false;
    }
    for (uint32_t d = 1; d < rank; d++) {
        if (shape[d] != desc->shape[d]) {
            return false;
        }
    }
    st->rows = shape[0];
    return true;
}

/* The input's binary data where it lies in the body (advancing *offset): no copy of a large tensor. */
static bool point_at_data(int64_t size, const kiln_tensor_desc *desc, void **data, const struct infer_request *req,
                          size_t *offset, struct infer_reply *r)
{
    size_t bytes = tensor_bytes(desc);
    size_t binary = req->size - (size_t)req->header_length;
    if (req->header_length < 0 || (size_t)size != bytes || *offset + bytes > binary) {
        return reject(r, "input '%s': binary_data_size %lld, expected %zu bytes within the body",
                      desc->name, (long long)size, bytes);
    }
    *data = req->body + req->header_length + *offset;
    *offset += bytes;
    return true;
}

/* The tensor's data from the JSON `data` array, into a buffer of its own. */
static bool read_data(const struct json *tensor, const kiln_tensor_desc *desc, void **dst, struct infer_reply *r)
{
    *dst = alloc_aligned(tensor_bytes(desc));
    const struct json *data = json_get(tensor, "data");
    int64_t want = shape_elements(desc->shape, desc->rank), n = 0;
    if (desc->dtype == KILN_F16 || desc->dtype == KILN_BF16) {
        return reject(r, "input '%s': %s data must come as binary tensor data", desc->name,
                      v2_datatype(desc->dtype));
    }
    if (data == NULL || !flatten(data, desc->dtype, *dst, &n, want) || n != want) {
        return reject(r, "input '%s': data must be %lld numbers", desc->name, (long long)want);
    }
    return true;
}

/* The input's shapes compiled, one per shape bucket. */
static void compiled_shapes(const struct serve_model *m, uint32_t input, char *out, size_t size)
{
    size_t used = 0;
    for (uint32_t b = 0; b < m->sessions->count && used < size; b++) {
        const kiln_tensor_desc *t = &m->sessions->items[b]->model->inputs[input];
        used += (size_t)snprintf(out + used, size - used, "%s", b ? ", " : "");
        format_shape(t->shape, t->rank, out + used, size - used);
        used += strlen(out + used);
    }
}

static bool reject_shape(const struct serve_model *m, const kiln_tensor_desc *desc, int index,
                         const int64_t *shape, uint32_t rank, const struct staged *st, struct infer_reply *r)
{
    char want[160], got[128];
    compiled_shapes(m, (uint32_t)index, want, sizeof want);
    format_shape(shape, rank, got, sizeof got);
    if (st->max_rows == 0) {
        return reject(r, "input '%s': shape %s, the model takes %s", desc->name, got, want);
    }
    return reject(r, "input '%s': shape %s; the model is compiled for %s and takes 1 to %lld rows, "
                  "the same on every input", desc->name, got, want, (long long)st->max_rows);
}

static bool stage_input(const struct serve_model *m, const struct json *tensor, struct staged *st,
                        const struct infer_request *req, size_t *offset, struct infer_reply *r)
{
    const struct session *s = m->session;
    const struct json *name = json_get(tensor, "name"), *datatype = json_get(tensor, "datatype");
    if (name == NULL || name->type != JSON_STRING || datatype == NULL || datatype->type != JSON_STRING) {
        return reject(r, "each input needs a string name and datatype");
    }
    int index = find_tensor(s->model->inputs, s->model->n_inputs, name->text);
    if (index < 0) {
        return reject(r, "unexpected inference input '%s' for model '%s'", name->text, s->model->model_name);
    }
    const kiln_tensor_desc *desc = &s->model->inputs[index];
    if (strcmp(datatype->text, v2_datatype(desc->dtype)) != 0) {
        return reject(r, "input '%s': datatype %s, the model takes %s", desc->name, datatype->text,
                      v2_datatype(desc->dtype));
    }
    int64_t shape[KILN_MAX_RANK];
    uint32_t rank;
    if (!read_shape(tensor, desc->name, shape, &rank, r)) {
        return false;
    }
    bool fits = st->max_rows > 0 ? batch_shape_ok(st, desc, shape, rank)
                                 : shapes_match(shape, rank, desc->shape, desc->rank);
    if (!fits) {
        return reject_shape(m, desc, index, shape, rank, st, r);
    }
    if (st->inputs[index] != NULL) {
        return reject(r, "input '%s' given twice", desc->name);
    }
    kiln_tensor_desc carried = request_desc(desc, st->rows);
    int64_t size;
    st->in_body[index] = json_int(json_get(json_get(tensor, "parameters"), "binary_data_size"), &size);
    return st->in_body[index] ? point_at_data(size, &carried, &st->inputs[index], req, offset, r)
                              : read_data(tensor, &carried, &st->inputs[index], r);
}

static bool stage_outputs(const struct session *s, const struct json *doc, struct staged *st,
                          struct infer_reply *r)
{
    const struct json *outputs = json_get(doc, "outputs");
    if (outputs != NULL && outputs->type != JSON_ARRAY) {
        return reject(r, "outputs must be an array");
    }
    bool binary = json_flag(json_get(doc, "parameters"), "binary_data_output");
    for (uint32_t i = 0; i < s->model->n_outputs; i++) {
        st->wanted_outputs[i] = outputs == NULL;
        st->binary_outputs[i] = binary;
    }
    for (size_t i = 0; outputs != NULL && i < outputs->count; i++) {
        const struct json *name = json_get(&outputs->items[i], "name");
        int index = name != NULL && name->type == JSON_STRING
                        ? find_tensor(s->model->outputs, s->model->n_outputs, name->text) : -1;
        if (index < 0) {
            return reject(r, "unexpected inference output '%s' for model '%s'",
                          name != NULL && name->type == JSON_STRING ? name->text : "?", s->model->model_name);
        }
        st->wanted_outputs[index] = true;
        st->binary_outputs[index] = binary || json_flag(json_get(&outputs->items[i], "parameters"), "binary_data");
    }
    return true;
}

static bool stage_inputs(const struct serve_model *m, const struct json *doc, struct staged *st,
                         const struct infer_request *req, struct infer_reply *r)
{
    const struct json *inputs = json_get(doc, "inputs");
    if (inputs == NULL || inputs->type != JSON_ARRAY) {
        return reject(r, "the request needs an inputs array");
    }
    const struct session *s = m->session;
    size_t offset = 0;
    for (size_t i = 0; i < inputs->count; i++) {
        if (!stage_input(m, &inputs->items[i], st, req, &offset, r)) {
            return false;
        }
    }
    if (inputs->count != s->model->n_inputs) {
        return reject(r, "expected %u inputs but got %zu inputs for model '%s'", s->model->n_inputs,
                      inputs->count, s->model->model_name);
    }
    return true;
}

static bool stage(const struct serve_model *m, const struct infer_request *req, struct staged *st,
                  struct infer_reply *r)
{
    if (req->header_length > (long)req->size) {
        return reject(r, "Inference-Header-Content-Length %ld exceeds the body's %zu bytes", req->header_length,
                      req->size);
    }
    char why[160] = "";
    size_t json_size = req->header_length >= 0 ? (size_t)req->header_length : req->size;
    struct json *doc = json_parse(req->body, json_size, why, sizeof why);
    if (doc == NULL || doc->type != JSON_OBJECT) {
        json_free(doc);
        return reject(r, "malformed request JSON: %s", doc == NULL ? why : "not an object");
    }
    const struct json *id = json_get(doc, "id");
    if (id != NULL && id->type == JSON_STRING) {
        snprintf(st->id, sizeof st->id, "%s", id->text);
    }
    bool ok = stage_inputs(m, doc, st, req, r) && stage_outputs(m->session, doc, st, r);
    json_free(doc);
    return ok;
}

static void write_values(struct strbuf *b, const kiln_tensor_desc *desc, const void *data)
{
    int64_t n = shape_elements(desc->shape, desc->rank);
    for (int64_t i = 0; i < n; i++) {
        double v = tensor_value(desc, data, i);
        const char *comma = i ? "," : "";
        if (desc->dtype == KILN_BOOL) strbuf_printf(b, "%s%s", comma, v != 0 ? "true" : "false");
        else if (!isfinite(v)) strbuf_printf(b, "%snull", comma);
        else if (desc->dtype == KILN_F32 || desc->dtype == KILN_F16 || desc->dtype == KILN_BF16)
            strbuf_printf(b, "%s%.9g", comma, v);
        else strbuf_printf(b, "%s%lld", comma, (long long)v);
    }
}

static void write_output(struct strbuf *json, struct strbuf *binary, const kiln_tensor_desc *desc,
                         const void *data, bool raw)
{
    strbuf_printf(json, "{\"name\":");
    strbuf_json_string(json, desc->name);
    strbuf_printf(json, ",\"datatype\":\"%s\",\"shape\":[", v2_datatype(desc->dtype));
    for (uint32_t d = 0; d < desc->rank; d++) {
        strbuf_printf(json, "%s%lld", d ? "," : "", (long long)desc->shape[d]);
    }
    if (raw) {
        strbuf_printf(json, "],\"parameters\":{\"binary_data_size\":%zu}}", tensor_bytes(desc));
        strbuf_append(binary, data, tensor_bytes(desc));
        return;
    }
    strbuf_printf(json, "],\"data\":[");
    write_values(json, desc, data);
    strbuf_printf(json, "]}");
}

static void write_reply(const struct session *s, const struct staged *st, struct infer_reply *r)
{
    struct strbuf binary = {0};
    strbuf_printf(&r->body, "{\"model_name\":");
    strbuf_json_string(&r->body, s->model->model_name);
    if (st->id[0] != '\0') {
        strbuf_printf(&r->body, ",\"id\":");
        strbuf_json_string(&r->body, st->id);
    }
    strbuf_printf(&r->body, ",\"model_version\":\"1\",\"outputs\":[");
    const char *sep = "";
    for (uint32_t i = 0; i < s->model->n_outputs; i++) {
        if (st->wanted_outputs[i]) {
            strbuf_printf(&r->body, "%s", sep);
            kiln_tensor_desc carried = request_desc(&s->model->outputs[i], st->rows);
            write_output(&r->body, &binary, &carried, st->outputs[i], st->binary_outputs[i]);
            sep = ",";
        }
    }
    strbuf_printf(&r->body, "]}");
    r->json_length = r->body.len;
    strbuf_append(&r->body, binary.data, binary.len);
    strbuf_free(&binary);
}

/* Whole tensors, on a model without buckets. */
static void run_whole(struct serve_model *m, struct session *s, const struct staged *st)
{
    for (uint32_t i = 0; i < s->model->n_inputs; i++) {
        memcpy(s->inputs[i], st->inputs[i], tensor_bytes(&s->model->inputs[i]));
    }
    session_run(s);
    atomic_fetch_add(&m->sessions->runs[0], 1);
    for (uint32_t i = 0; i < s->model->n_outputs; i++) {
        memcpy(st->outputs[i], s->outputs[i], tensor_bytes(&s->model->outputs[i]));
    }
}

/* One request without batching: whole tensors in its lane, or its rows in the smallest bucket holding
 * them. */
static void run_alone(struct serve_model *m, const struct staged *st, struct infer_reply *r)
{
    double queued = now();
    struct session *s = lanes_acquire(&m->lanes);
    double started = now();
    if (st->rows > 0) {
        struct batch_item item = {.inputs = st->inputs, .outputs = st->outputs, .rows = st->rows};
        batch_run(m->sessions, &item);
    } else {
        run_whole(m, s, st);
    }
    r->infer_seconds = now() - started;
    lanes_release(&m->lanes, s);
    r->queue_seconds = started - queued;
}

static void run(struct serve_model *m, struct staged *st, struct infer_reply *r)
{
    const kiln_model_desc *desc = m->session->model;
    for (uint32_t i = 0; i < desc->n_outputs; i++) {
        kiln_tensor_desc carried = request_desc(&desc->outputs[i], st->rows);
        st->outputs[i] = alloc_aligned(tensor_bytes(&carried));
    }
    if (m->batcher == NULL) {
        run_alone(m, st, r);
    } else {
        struct batch_item item = {.inputs = st->inputs, .outputs = st->outputs, .rows = st->rows};
        batcher_submit(m->batcher, &item);
        r->queue_seconds = item.started - item.queued;
        r->infer_seconds = item.finished - item.started;
    }
    write_reply(m->session, st, r);
}

static void unstage(const struct session *s, struct staged *st)
{
    for (uint32_t i = 0; i < s->model->n_inputs; i++) {
        if (!st->in_body[i]) {
            free(st->inputs[i]);
        }
    }
    for (uint32_t i = 0; i < s->model->n_outputs; i++) {
        free(st->outputs[i]);
    }
    free(st->inputs);
    free(st->in_body);
    free(st->outputs);
    free(st->binary_outputs);
    free(st->wanted_outputs);
}

/* Whether an input is read where it lies in the request body. */
static bool reads_body(const struct session *s, const struct staged *st)
{
    for (uint32_t i = 0; i < s->model->n_inputs; i++) {
        if (st->in_body[i]) {
            return true;
        }
    }
    return false;
}

/* The most rows a request may carry: --max-batch, else the largest bucket's; 0: whole tensors only. */
static int64_t request_rows(const struct serve_model *m)
{
    if (m->batcher != NULL) {
        return m->batcher->max_rows;
    }
    return m->sessions->bucketed ? batch_rows(m->session->model) : 0;
}

void serve_infer(struct serve_model *model, const struct infer_request *req, struct infer_reply *reply)
{
    struct session *s = model->session;
    *reply = (struct infer_reply){.status = 200};
    struct staged st = {
        .max_rows = request_rows(model),
        .inputs = calloc(s->model->n_inputs + 1, sizeof(void *)),
        .in_body = calloc(s->model->n_inputs + 1, sizeof(bool)),
        .outputs = calloc(s->model->n_outputs + 1, sizeof(void *)),
        .binary_outputs = calloc(s->model->n_outputs + 1, sizeof(bool)),
        .wanted_outputs = calloc(s->model->n_outputs + 1, sizeof(bool)),
    };
    if (st.inputs == NULL || st.in_body == NULL || st.outputs == NULL || st.binary_outputs == NULL ||
        st.wanted_outputs == NULL) {
        fail("out of memory");
    }
    sem_wait(&model->parsers);
    bool staged = stage(model, req, &st, reply);
    sem_post(&model->parsers);
    if (!staged && model->batcher != NULL) {
        batcher_forget(model->batcher);
    }
    bool keep_body = reads_body(s, &st);
    if (!keep_body) {
        free(req->body);  /* JSON text is larger than its tensors: gone before the wait for the model */
    }
    if (staged) {
        run(model, &st, reply);
    }
    unstage(s, &st);
    if (keep_body) {
        free(req->body);
    }
}
