/* Finding, mapping and checking the model's safetensors weights. */
#ifndef KILN_WEIGHTS_H
#define KILN_WEIGHTS_H

#include "kiln_model.h"

#include <stdbool.h>
#include <stddef.h>

struct weights {
    char *path;           /* NULL when the model has no weights */
    const uint8_t *data;  /* the data section, KILN_ALIGNMENT-aligned */
    size_t file_bytes;
    void *map;            /* the read-only mapping of the whole file */
    uint8_t *copy;        /* aligned copy of the data section when the mapping is not aligned */
};

/* Locates the file (override, else $KILN_WEIGHTS, else <exe_dir>/../weights/<model>.safetensors,
 * else <exe_dir>/<model>.safetensors), maps it and checks it against the model. */
void weights_load(struct weights *w, const kiln_model_desc *model, const char *override);
void weights_unload(struct weights *w);
/* Maps a weight file read-only, or its parts PATH.part-000, ... back to back when PATH is absent
 * (munmap(map, *size) releases either); fails with a one-line reason. */
void *weights_map_file(const char *path, size_t *size);
bool weights_file_exists(const char *path);

#endif
