/* gzip (RFC 1952) around raw deflate (RFC 1951), decompressed in memory. */
#ifndef KILN_INFLATE_H
#define KILN_INFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool gzip_has_magic(const uint8_t *data, size_t size);

/* Returns the decompressed bytes (malloc'ed) of every gzip member in turn and
 * sets *out_size, or returns NULL and sets *error to what is wrong with the
 * stream. Output past `max_out` bytes is an error, found before it is made. */
uint8_t *gunzip(const uint8_t *data, size_t size, size_t max_out, size_t *out_size, const char **error);

/* The first `head` bytes (fewer if the stream is shorter) without inflating
 * the rest: enough to read a header that says how large the whole is. */
uint8_t *gunzip_head(const uint8_t *data, size_t size, size_t head, size_t *out_size, const char **error);

#endif
