#include "pgm.h"

#include "errors.h"

#include <ctype.h>

bool pgm_has_magic(const uint8_t *file, size_t size)
{
    return size >= 2 && file[0] == 'P' && file[1] == '5';
}

/* Skips whitespace and '#' comments, then reads a decimal number. */
static uint32_t header_number(const char *path, const uint8_t *file, size_t size, size_t *pos)
{
    while (*pos < size && (isspace(file[*pos]) || file[*pos] == '#')) {
        if (file[*pos] == '#') {
            while (*pos < size && file[*pos] != '\n') {
                (*pos)++;
            }
        } else {
            (*pos)++;
        }
    }
    if (*pos >= size || !isdigit(file[*pos])) {
        fail("%s: malformed PGM header", path);
    }
    uint64_t value = 0;
    while (*pos < size && isdigit(file[*pos]) && value <= UINT32_MAX) {
        value = value * 10 + (uint64_t)(file[(*pos)++] - '0');
    }
    if (value == 0 || value > 1u << 16) {
        fail("%s: malformed PGM header (dimension or maximum %llu)", path, (unsigned long long)value);
    }
    return (uint32_t)value;
}

void pgm_parse(struct pgm *image, const char *path, const uint8_t *file, size_t size)
{
    if (!pgm_has_magic(file, size)) {
        fail("%s: not a binary PGM file (no P5 magic)", path);
    }
    size_t pos = 2;
    image->width = header_number(path, file, size, &pos);
    image->height = header_number(path, file, size, &pos);
    image->max_value = header_number(path, file, size, &pos);
    if (image->max_value > 255) {
        fail("%s: 16-bit PGM (maximum %u) is not supported; use 8-bit", path, image->max_value);
    }
    if (pos >= size || !isspace(file[pos])) {
        fail("%s: malformed PGM header", path);
    }
    pos++; /* the single whitespace before the raster */
    size_t pixels = (size_t)image->width * image->height;
    if (size - pos < pixels) {
        fail("%s: %zu pixel bytes, but %ux%u needs %zu", path, size - pos, image->width,
             image->height, pixels);
    }
    image->pixels = file + pos;
}
