/* gzip (RFC 1952) around raw deflate (RFC 1951), decompressed in memory. */
#ifndef KILN_INFLATE_H
#define KILN_INFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool gzip_has_magic(const uint8_t *data, size_t size);

/* Returns the decompressed bytes (malloc'ed) and sets *out_size, or returns
 * NULL and sets *error to what is wrong with the stream. */
uint8_t *gunzip(const uint8_t *data, size_t size, size_t *out_size, const char **error);

#endif
