/* IDX files (the MNIST format): a big-endian header, then unsigned bytes.
 * gzip-compressed files are recognised by their magic and inflated. */
#ifndef KILN_IDX_H
#define KILN_IDX_H

#include <stddef.h>
#include <stdint.h>

#define IDX_MAX_RANK 4

struct idx {
    uint32_t rank;
    uint32_t dims[IDX_MAX_RANK];
    const uint8_t *data;  /* dims[0] * ... bytes, inside `bytes` */
    uint8_t *bytes;       /* the whole (decompressed) file */
};

/* Loads an unsigned-byte IDX file of the given rank; fails naming the file. */
void idx_load(struct idx *idx, const char *path, uint32_t rank);
void idx_free(struct idx *idx);

#endif
