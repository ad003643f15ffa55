#include "safetensors.h"

#include "errors.h"
#include "sha256.h"
#include "tensor.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER_BYTES (100u << 20) /* the safetensors library's own limit */
#define MAX_JSON_DEPTH 32

/* A forward-only reader over the header's JSON; `error` is set on the first
 * malformed token and every later read then fails fast. */
struct cursor {
    const char *p, *end;
    const char *error;
};

enum { HAS_DTYPE = 1, HAS_SHAPE = 2, HAS_OFFSETS = 4, HAS_ALL = 7 };

struct entry {
    unsigned fields; /* HAS_* */
    const char *name;
    size_t name_len;
    const char *dtype;
    size_t dtype_len;
    uint32_t rank;
    int64_t shape[KILN_MAX_RANK];
    uint64_t offsets[2];
};

static bool set_error(struct cursor *c, const char *what)
{
    if (c->error == NULL) {
        c->error = what;
    }
    return false;
}

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static bool peek(struct cursor *c, char ch)
{
    skip_space(c);
    return c->error == NULL && c->p < c->end && *c->p == ch;
}

static bool accept(struct cursor *c, char ch)
{
    if (!peek(c, ch)) {
        return false;
    }
    c->p++;
    return true;
}

static bool expect(struct cursor *c, char ch, const char *what)
{
    return accept(c, ch) || set_error(c, what);
}

/* Raw bytes between the quotes; escapes are kept as written. */
static bool read_string(struct cursor *c, const char **s, size_t *len)
{
    if (!expect(c, '"', "expected a string")) {
        return false;
    }
    const char *start = c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' && c->p + 1 < c->end) {
            c->p++;
        }
        c->p++;
    }
    if (c->p >= c->end) {
        return set_error(c, "unterminated string");
    }
    *s = start;
    *len = (size_t)(c->p - start);
    c->p++;
    return true;
}

static bool read_uint(struct cursor *c, uint64_t *value)
{
    skip_space(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
        return set_error(c, "expected a non-negative integer");
    }
    uint64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > (UINT64_MAX - 9) / 10) {
            return set_error(c, "integer too large");
        }
        v = v * 10 + (uint64_t)(*c->p++ - '0');
    }
    *value = v;
    return true;
}

/* Reads "[a, b, ...]" into values; returns the count or -1. */
static int read_uint_list(struct cursor *c, uint64_t *values, int max)
{
    int n = 0;
    if (!expect(c, '[', "expected '['")) {
        return -1;
    }
    if (accept(c, ']')) {
        return 0;
    }
    do {
        if (n == max) {
            set_error(c, "list too long");
            return -1;
        }
        if (!read_uint(c, &values[n++])) {
            return -1;
        }
    } while (accept(c, ','));
    return expect(c, ']', "expected ']'") ? n : -1;
}

static bool skip_value(struct cursor *c, int depth);

static bool skip_container(struct cursor *c, char close, bool keyed, int depth)
{
    c->p++;
    if (accept(c, close)) {
        return true;
    }
    do {
        const char *key;
        size_t key_len;
        if (keyed && !(read_string(c, &key, &key_len) && expect(c, ':', "expected ':'"))) {
            return false;
        }
        if (!skip_value(c, depth + 1)) {
            return false;
        }
    } while (accept(c, ','));
    return expect(c, close, "unterminated object or array");
}

static bool skip_value(struct cursor *c, int depth)
{
    if (depth > MAX_JSON_DEPTH) {
        return set_error(c, "nested too deeply");
    }
    skip_space(c);
    if (c->p >= c->end) {
        return set_error(c, "expected a value");
    }
    const char *s;
    size_t len;
    switch (*c->p) {
    case '"': return read_string(c, &s, &len);
    case '{': return skip_container(c, '}', true, depth);
    case '[': return skip_container(c, ']', false, depth);
    default:
        while (c->p < c->end && strchr(",}] \t\r\n", *c->p) == NULL) {
            c->p++;
        }
        return true;
    }
}

static bool key_is(const char *key, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(key, name, len) == 0;
}

static bool read_entry_field(struct cursor *c, struct entry *e, const char *key, size_t key_len)
{
    uint64_t values[KILN_MAX_RANK];
    if (key_is(key, key_len, "dtype")) {
        e->fields |= HAS_DTYPE;
        return read_string(c, &e->dtype, &e->dtype_len);
    }
    if (key_is(key, key_len, "shape")) {
        e->fields |= HAS_SHAPE;
        int rank = read_uint_list(c, values, KILN_MAX_RANK);
        for (int i = 0; i < rank; i++) {
            e->shape[i] = (int64_t)values[i];
        }
        e->rank = rank < 0 ? 0 : (uint32_t)rank;
        return rank >= 0;
    }
    if (key_is(key, key_len, "data_offsets")) {
        e->fields |= HAS_OFFSETS;
        return read_uint_list(c, e->offsets, 2) == 2 || set_error(c, "data_offsets needs two integers");
    }
    return skip_value(c, 1);
}

static bool read_entry(struct cursor *c, struct entry *e)
{
    if (!expect(c, '{', "expected a tensor object")) {
        return false;
    }
    do {
        const char *key;
        size_t key_len;
        if (!(read_string(c, &key, &key_len) && expect(c, ':', "expected ':'") &&
              read_entry_field(c, e, key, key_len))) {
            return false;
        }
    } while (accept(c, ','));
    if (e->fields != HAS_ALL) {
        return set_error(c, "tensor without dtype, shape or data_offsets");
    }
    return expect(c, '}', "expected '}' after a tensor");
}

static struct entry *grow_entries(struct entry *entries, size_t count)
{
    entries = realloc(entries, count * sizeof *entries);
    if (entries == NULL) {
        fail("out of memory reading a safetensors header");
    }
    return entries;
}

/* Parses the top-level object into entries (malloc'ed); returns the count. */
static size_t read_entries(struct cursor *c, struct entry **entries)
{
    size_t n = 0, cap = 16;
    *entries = grow_entries(NULL, cap);
    if (!expect(c, '{', "expected '{'") || accept(c, '}')) {
        return 0;
    }
    do {
        struct entry e = {0};
        if (!(read_string(c, &e.name, &e.name_len) && expect(c, ':', "expected ':'"))) {
            return n;
        }
        if (key_is(e.name, e.name_len, "__metadata__")) {
            skip_value(c, 1);
            continue;
        }
        if (!read_entry(c, &e)) {
            return n;
        }
        if (n == cap) {
            cap *= 2;
            *entries = grow_entries(*entries, cap);
        }
        (*entries)[n++] = e;
    } while (accept(c, ','));
    expect(c, '}', "expected ',' or '}'");
    return n;
}

static const char *safetensors_dtype(uint32_t dtype)
{
    switch (dtype) {
    case KILN_F32: return "F32";
    case KILN_F16: return "F16";
    case KILN_BF16: return "BF16";
    case KILN_I8: return "I8";
    case KILN_U8: return "U8";
    case KILN_I32: return "I32";
    case KILN_I64: return "I64";
    case KILN_BOOL: return "BOOL";
    default: return "?";
    }
}

static const struct entry *find_entry(const struct entry *entries, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (key_is(entries[i].name, entries[i].name_len, name)) {
            return &entries[i];
        }
    }
    return NULL;
}

/* File text safe to echo in an error line: at most size-1 bytes, '?' for non-ASCII. */
static const char *printable(const char *text, size_t len, char *buf, size_t size)
{
    size_t n = len < size - 1 ? len : size - 1;
    for (size_t i = 0; i < n; i++) {
        buf[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
    }
    buf[n] = '\0';
    return buf;
}

static void check_entry(const struct entry *e, const kiln_weight_desc *w, const char *path)
{
    char have[160], want[160];
    if (e == NULL) {
        fail("%s: tensor '%s' is missing from the header", path, w->name);
    }
    if (!key_is(e->dtype, e->dtype_len, safetensors_dtype(w->dtype))) {
        fail("%s: tensor '%s' has dtype %s, the model needs %s", path, w->name,
             printable(e->dtype, e->dtype_len, have, sizeof have), safetensors_dtype(w->dtype));
    }
    if (e->rank != w->rank || memcmp(e->shape, w->shape, w->rank * sizeof *w->shape) != 0) {
        format_shape(e->shape, e->rank, have, sizeof have);
        format_shape(w->shape, w->rank, want, sizeof want);
        fail("%s: tensor '%s' has shape %s, the model needs %s", path, w->name, have, want);
    }
    if (e->offsets[0] != w->offset || e->offsets[1] != w->offset + w->nbytes) {
        fail("%s: tensor '%s' is at data bytes [%llu, %llu), the model needs [%llu, %llu)", path,
             w->name, (unsigned long long)e->offsets[0], (unsigned long long)e->offsets[1],
             (unsigned long long)w->offset, (unsigned long long)(w->offset + w->nbytes));
    }
}

static void check_data_length(size_t data_bytes, const kiln_model_desc *model, const char *path)
{
    for (uint32_t i = 0; i < model->n_weights; i++) {
        const kiln_weight_desc *w = &model->weights[i];
        if (w->offset + w->nbytes > data_bytes) {
            fail("%s: tensor '%s' is truncated: data section has %zu bytes, the tensor ends at %llu",
                 path, w->name, data_bytes, (unsigned long long)(w->offset + w->nbytes));
        }
    }
    if (model->weights_data_bytes > data_bytes) {
        fail("%s: truncated: data section has %zu bytes, the model needs %llu", path, data_bytes,
             (unsigned long long)model->weights_data_bytes);
    }
}

static uint64_t header_length(const uint8_t *file, size_t size, const char *path)
{
    if (size < 8) {
        fail("%s: not a safetensors file (%zu bytes, too short for the header length)", path, size);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) {
        n = n << 8 | file[i];
    }
    if (n > MAX_HEADER_BYTES || n > size - 8) {
        fail("%s: header length %llu does not fit the file's %zu bytes (truncated or not safetensors)",
             path, (unsigned long long)n, size);
    }
    return n;
}

size_t safetensors_check_header(const uint8_t *file, size_t size, const kiln_model_desc *model,
                                const char *path)
{
    uint64_t json_bytes = header_length(file, size, path);
    struct cursor c = {(const char *)file + 8, (const char *)file + 8 + json_bytes, NULL};
    struct entry *entries;
    size_t n = read_entries(&c, &entries);
    if (c.error != NULL) {
        fail("%s: malformed safetensors header at byte %zu: %s", path,
             (size_t)(c.p - (const char *)file), c.error);
    }
    for (uint32_t i = 0; i < model->n_weights; i++) {
        check_entry(find_entry(entries, n, model->weights[i].name), &model->weights[i], path);
    }
    free(entries);
    check_data_length(size - 8 - json_bytes, model, path);
    return 8 + json_bytes;
}

void safetensors_check_digests(const uint8_t *data, const kiln_model_desc *model, const char *path)
{
    for (uint32_t i = 0; i < model->n_weights; i++) {
        const kiln_weight_desc *w = &model->weights[i];
        uint8_t digest[32];
        sha256(data + w->offset, w->nbytes, digest);
        if (memcmp(digest, w->sha256, sizeof digest) != 0) {
            fail("%s: tensor '%s' fails its sha256 check (file modified or corrupt)", path, w->name);
        }
    }
}
