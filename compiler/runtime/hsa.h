/* AMD GPUs through the HSA runtime API directly (no HIP), from the bundled, trimmed
 * libhsa-runtime64.so.1 in <exe_dir>/../lib/rocm/: probe, load the code object for the
 * agent's ISA, dispatch AQL packets in order. */
#ifndef KILN_HSA_H
#define KILN_HSA_H

#include "gpu_model.h"

#include <stdbool.h>
#include <stddef.h>

struct hsa;

/* /dev/kfd exists, the bundled runtime loads and initialises and finds a GPU agent: `found`
 * names its ISA ("gfx90a"), else `why` says what was missing ("/dev/kfd absent"). */
bool hsa_probe(char *found, size_t found_size, char *why, size_t why_size);

/* The agent's ISA among the bundle's targets? If not, `why` lists the archs in the bundle. */
bool hsa_supported(const struct gpu_model *m, const char *isa, char *why, size_t why_size);

struct hsa *hsa_open(const struct gpu_model *m, const void *weights, char *how, size_t how_size);
void hsa_run(struct hsa *h, void *const *inputs, const size_t *in_bytes, void *const *outputs,
             const size_t *out_bytes);
void hsa_close(struct hsa *h);

#endif
