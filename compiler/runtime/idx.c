#include "idx.h"

#include "errors.h"
#include "files.h"
#include "inflate.h"

#include <stdlib.h>

#define IDX_UBYTE 0x08

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The whole file's size as an IDX header of `rank` says it, or 0 if `b` holds no such header. */
static uint64_t size_from_header(const uint8_t *b, size_t size, uint32_t rank)
{
    size_t header = 4 + 4 * (size_t)rank;
    if (size < header || b[0] != 0 || b[1] != 0 || b[2] != IDX_UBYTE || b[3] != rank) {
        return 0;
    }
    uint64_t count = 1;
    for (uint32_t i = 0; i < rank; i++) {
        count *= load_be32(b + 4 + 4 * i);
    }
    return header + count;
}

/* A .gz is inflated only up to the size its IDX header implies: a small file
 * that would inflate to gigabytes fails before it does. */
static uint8_t *read_maybe_gzipped(const char *path, uint32_t rank, size_t *size)
{
    uint8_t *raw = read_file(path, size);
    if (!gzip_has_magic(raw, *size)) {
        return raw;
    }
    const char *error = NULL;
    size_t head_size;
    uint8_t *head = gunzip_head(raw, *size, 4 + 4 * (size_t)rank, &head_size, &error);
    if (head == NULL) {
        fail("%s: cannot decompress: %s", path, error);
    }
    uint64_t expected = size_from_header(head, head_size, rank);
    free(head);
    if (expected == 0) {
        fail("%s: not an unsigned-byte IDX file of rank %u", path, rank);
    }
    uint8_t *plain = gunzip(raw, *size, expected, size, &error);
    free(raw);
    if (plain == NULL) {
        fail("%s: cannot decompress: %s", path, error);
    }
    return plain;
}

void idx_load(struct idx *idx, const char *path, uint32_t rank)
{
    size_t size;
    idx->bytes = read_maybe_gzipped(path, rank, &size);
    size_t header = 4 + 4 * (size_t)rank;
    const uint8_t *b = idx->bytes;
    if (size < header || b[0] != 0 || b[1] != 0 || b[2] != IDX_UBYTE || b[3] != rank) {
        fail("%s: not an unsigned-byte IDX file of rank %u", path, rank);
    }
    uint64_t count = 1;
    idx->rank = rank;
    for (uint32_t i = 0; i < rank; i++) {
        idx->dims[i] = load_be32(b + 4 + 4 * i);
        count *= idx->dims[i];
    }
    if (size - header != count) {
        fail("%s: %zu data bytes, but the header's dimensions need %llu (truncated?)", path,
             size - header, (unsigned long long)count);
    }
    idx->data = b + header;
}

void idx_free(struct idx *idx)
{
    free(idx->bytes);
    idx->bytes = NULL;
}
