/* Which accelerator platform runs the model, and which CPU variant of it. */
#ifndef KILN_PLATFORM_H
#define KILN_PLATFORM_H

#include "cpu_features.h"
#include "kiln_model.h"

#include <stddef.h>

struct platform_choice {
    const char *name;   /* "cpu" */
    const char *reason; /* why it was chosen, for the startup line and --info */
};

/* requested: --platform, else $KILN_PLATFORM, else NULL (= "auto").
 * Anything the bundle does not have is a usage error listing what it has. */
struct platform_choice platform_choose(const char *flag_value);

/* The first variant whose required features the CPU has, or the one named by
 * $KILN_CPU_LEVEL; fails if none fits. */
const kiln_variant_desc *variant_select(const kiln_model_desc *model, const struct cpu_features *cpu);

/* "x86-64-v4, x86-64-v3, ..." into buf. */
void variant_names(const kiln_model_desc *model, char *buf, size_t size);

#endif
