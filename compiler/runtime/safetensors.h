/* Checks a safetensors file against the model's weight descriptors. */
#ifndef KILN_SAFETENSORS_H
#define KILN_SAFETENSORS_H

#include "kiln_model.h"

#include <stddef.h>

/* Validates the header of the file (all `size` bytes of it in memory): its
 * length, its JSON, every descriptor weight's dtype, shape and offsets, and that
 * the data section is long enough. Returns the data section's file offset.
 * Fails with one line naming `path` and the offending tensor. */
size_t safetensors_check_header(const uint8_t *file, size_t size, const kiln_model_desc *model,
                                const char *path);

/* Compares each tensor's sha256 with its descriptor; fails naming the tensor. */
void safetensors_check_digests(const uint8_t *data, const kiln_model_desc *model, const char *path);

#endif
