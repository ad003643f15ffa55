/* A StableHLO model for a PJRT platform: <exe_dir>/../share/<platform>/manifest.json
 * read into the same descriptors the CPU code uses, plus the program's argument order. */
#ifndef KILN_PJRT_MODEL_H
#define KILN_PJRT_MODEL_H

#include "kiln_model.h"

#include <stdbool.h>

struct pjrt_argument {
    bool is_weight;     /* else a model input */
    uint32_t index;     /* into weights or inputs */
};

struct pjrt_model {
    kiln_model_desc desc;    /* no variants: the program is compiled by the plugin */
    char *share_dir;         /* where manifest.json lives */
    char *program_path;      /* the StableHLO module (text or bytecode) */
    char *weights_path;      /* the safetensors file beside the manifest */
    uint32_t n_arguments;
    struct pjrt_argument *arguments;
    int *input_types;        /* PJRT_Buffer_Type per input, per output */
    int *output_types;
};

/* `<exe_dir>/../share/<platform>/` holds a manifest: the bundle has the platform. */

/* Reads and checks the manifest; fails with one line naming it on any problem. One model per
 * shape bucket (the manifest's "buckets", smallest batch first, each its own program over the one
 * weights file), else the one model; *count says how many. */
struct pjrt_model *pjrt_model_load(const char *platform, uint32_t *count);
void pjrt_model_free(struct pjrt_model *models, uint32_t count);

#endif
