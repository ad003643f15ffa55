/* Binary PGM images (P5, 8-bit grey). */
#ifndef KILN_PGM_H
#define KILN_PGM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgm {
    uint32_t width, height, max_value;
    const uint8_t *pixels; /* width * height bytes, row-major, inside the file */
};

bool pgm_has_magic(const uint8_t *file, size_t size);

/* Parses the file held in memory; fails naming `path`. */
void pgm_parse(struct pgm *image, const char *path, const uint8_t *file, size_t size);

#endif
