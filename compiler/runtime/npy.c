#define _GNU_SOURCE
#include "npy.h"

#include "errors.h"
#include "tensor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "\x93NUMPY"
#define MAGIC_BYTES 6
#define HEADER_ALIGNMENT 64 /* what numpy itself writes */

struct npy_header {
    char descr[16];
    bool fortran_order;
    uint32_t rank;
    int64_t shape[KILN_MAX_RANK];
    size_t data_offset;
};

/* The numpy type string without its byte-order character. */
static const char *npy_kind(uint32_t dtype)
{
    switch (dtype) {
    case KILN_F32: return "f4";
    case KILN_F16: return "f2";
    case KILN_I8: return "i1";
    case KILN_U8: return "u1";
    case KILN_I32: return "i4";
    case KILN_I64: return "i8";
    case KILN_BOOL: return "b1";
    default: return NULL;
    }
}

bool npy_has_magic(const uint8_t *file, size_t size)
{
    return size >= MAGIC_BYTES && memcmp(file, MAGIC, MAGIC_BYTES) == 0;
}

/* The value text after "'key':" in the header dict, or NULL. */
static const char *find_value(const char *dict, const char *key)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s':", key);
    const char *at = strstr(dict, quoted);
    if (at == NULL) {
        return NULL;
    }
    at += strlen(quoted);
    while (*at == ' ') {
        at++;
    }
    return at;
}

static bool parse_descr(const char *value, char *descr, size_t size)
{
    if (value == NULL || (*value != '\'' && *value != '"')) {
        return false;
    }
    const char *close = strchr(value + 1, *value);
    size_t len = close ? (size_t)(close - value - 1) : 0;
    if (close == NULL || len == 0 || len >= size) {
        return false;
    }
    for (size_t i = 1; i <= len; i++) {
        if (value[i] < 0x20 || value[i] >= 0x7f) {
            return false; /* echoed in error lines */
        }
    }
    memcpy(descr, value + 1, len);
    descr[len] = '\0';
    return true;
}

static bool parse_shape(const char *value, struct npy_header *h)
{
    if (value == NULL || *value != '(') {
        return false;
    }
    const char *p = value + 1;
    h->rank = 0;
    for (;;) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (*p == ')') {
            return true;
        }
        char *end;
        long long dim = strtoll(p, &end, 10);
        if (end == p || dim < 0 || h->rank == KILN_MAX_RANK) {
            return false;
        }
        h->shape[h->rank++] = dim;
        p = end;
    }
}

static void parse_dict(const char *path, const char *dict, struct npy_header *h)
{
    if (!parse_descr(find_value(dict, "descr"), h->descr, sizeof h->descr)) {
        fail("%s: malformed .npy header: no readable 'descr'", path);
    }
    const char *order = find_value(dict, "fortran_order");
    if (order == NULL || (strncmp(order, "True", 4) != 0 && strncmp(order, "False", 5) != 0)) {
        fail("%s: malformed .npy header: no readable 'fortran_order'", path);
    }
    h->fortran_order = order[0] == 'T';
    if (!parse_shape(find_value(dict, "shape"), h)) {
        fail("%s: malformed .npy header: no readable 'shape'", path);
    }
}

static void parse_header(const char *path, const uint8_t *file, size_t size, struct npy_header *h)
{
    if (!npy_has_magic(file, size)) {
        fail("%s: not a .npy file (bad magic)", path);
    }
    if (size < 10) {
        fail("%s: truncated .npy header", path);
    }
    int major = file[6];
    size_t length_bytes = major == 1 ? 2 : 4;
    if (major < 1 || major > 3 || size < 8 + length_bytes) {
        fail("%s: malformed .npy header: unsupported format version %d", path, major);
    }
    size_t dict_bytes = file[8] | (size_t)file[9] << 8;
    if (length_bytes == 4) {
        dict_bytes |= (size_t)file[10] << 16 | (size_t)file[11] << 24;
    }
    size_t dict_offset = 8 + length_bytes;
    if (dict_bytes > size - dict_offset) {
        fail("%s: malformed .npy header: header length %zu exceeds the file", path, dict_bytes);
    }
    char *dict = strndup((const char *)file + dict_offset, dict_bytes);
    parse_dict(path, dict, h);
    free(dict);
    h->data_offset = dict_offset + dict_bytes;
}

static void check_dtype(const char *path, const char *descr, const kiln_tensor_desc *want)
{
    const char *kind = npy_kind(want->dtype);
    if (kind == NULL) {
        fail("%s: input '%s' has dtype %s, which .npy files cannot carry", path, want->name,
             dtype_name(want->dtype));
    }
    bool byte_order_ok = descr[0] == '<' || descr[0] == '=' || (descr[0] == '|' && kind[1] == '1');
    /* bytes for a bool input too: kiln's launcher took them before it had a bool dtype */
    bool same = strcmp(descr + 1, kind) == 0 || (want->dtype == KILN_BOOL && strcmp(descr + 1, "u1") == 0);
    if (!byte_order_ok || !same) {
        fail("%s: dtype '%s', but input '%s' needs '%c%s' (%s)", path, descr, want->name,
             kind[1] == '1' ? '|' : '<', kind, dtype_name(want->dtype));
    }
}

void npy_read_shape(const char *path, const uint8_t *file, size_t size, int64_t *shape, uint32_t *rank)
{
    struct npy_header h;
    parse_header(path, file, size, &h);
    memcpy(shape, h.shape, sizeof h.shape);
    *rank = h.rank;
}

void npy_load(const char *path, const uint8_t *file, size_t size, const kiln_tensor_desc *want,
              void *dst)
{
    struct npy_header h;
    parse_header(path, file, size, &h);
    check_dtype(path, h.descr, want);
    if (h.fortran_order && h.rank > 1) {
        fail("%s: array is in Fortran order; save it C-contiguous (np.ascontiguousarray)", path);
    }
    if (!shapes_match(h.shape, h.rank, want->shape, want->rank)) {
        char have[160], need[160];
        format_shape(h.shape, h.rank, have, sizeof have);
        format_shape(want->shape, want->rank, need, sizeof need);
        fail("%s: shape %s does not match input '%s' %s", path, have, want->name, need);
    }
    size_t bytes = tensor_bytes(want);
    if (size - h.data_offset != bytes) {
        fail("%s: %zu data bytes, but shape and dtype need %zu (truncated?)", path,
             size - h.data_offset, bytes);
    }
    memcpy(dst, file + h.data_offset, bytes);
}

/* "(1, 10)", "(10,)" or "()". */
static void format_tuple(const kiln_tensor_desc *desc, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (uint32_t i = 0; i < desc->rank; i++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)desc->shape[i]);
    }
    snprintf(buf + used, size - used, desc->rank == 1 ? ",)" : ")");
}

/* The header dict, space-padded so the data starts on a HEADER_ALIGNMENT boundary. */
static size_t format_dict(const kiln_tensor_desc *desc, char *dict, size_t size)
{
    char shape[256];
    format_tuple(desc, shape, sizeof shape);
    char byte_order = dtype_size(desc->dtype) == 1 ? '|' : '<';
    size_t len = (size_t)snprintf(dict, size, "{'descr': '%c%s', 'fortran_order': False, 'shape': %s, }",
                                  byte_order, npy_kind(desc->dtype), shape);
    size_t preamble = MAGIC_BYTES + 4;
    size_t padded = (preamble + len + 1 + HEADER_ALIGNMENT - 1) / HEADER_ALIGNMENT * HEADER_ALIGNMENT;
    size_t dict_bytes = padded - preamble;
    memset(dict + len, ' ', dict_bytes - len - 1);
    dict[dict_bytes - 1] = '\n';
    return dict_bytes;
}

void npy_save(const char *path, const kiln_tensor_desc *desc, const void *data)
{
    if (npy_kind(desc->dtype) == NULL) {
        fail("%s: output '%s' has dtype %s, which .npy files cannot carry", path, desc->name,
             dtype_name(desc->dtype));
    }
    char dict[512];
    size_t dict_bytes = format_dict(desc, dict, sizeof dict);
    uint8_t preamble[MAGIC_BYTES + 4] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                         (uint8_t)dict_bytes, (uint8_t)(dict_bytes >> 8)};
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL && fwrite(preamble, 1, sizeof preamble, f) == sizeof preamble &&
              fwrite(dict, 1, dict_bytes, f) == dict_bytes &&
              fwrite(data, 1, tensor_bytes(desc), f) == tensor_bytes(desc);
    if (f != NULL && fclose(f) != 0) {
        ok = false;
    }
    if (!ok) {
        fail("%s: cannot write output: %s", path, strerror(errno));
    }
}
