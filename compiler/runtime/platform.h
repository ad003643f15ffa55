/* Which accelerator platform runs the model, and which CPU variant of it. */
#ifndef KILN_PLATFORM_H
#define KILN_PLATFORM_H

#include "cpu_features.h"
#include "kiln_model.h"

#include <stdbool.h>
#include <stddef.h>

struct platform_choice {
    const char *name;   /* "cpu", "tpu", "cpu-xla" */
    char reason[320];   /* why it was chosen, for the startup line and --info */
    bool pjrt;          /* runs the StableHLO program through a PJRT plugin */
};

/* requested: --platform, else $KILN_PLATFORM, else NULL (= "auto": tpu when the
 * bundle has it and tpu_probe finds one, else cpu with the reason). A PJRT platform
 * is in the bundle when its share/<platform>/manifest.json is. Anything the bundle
 * does not have is a usage error listing what it has. */
struct platform_choice platform_choose(const char *flag_value);

/* --info: each bundled PJRT platform's plugin and its PJRT C API version (dlopen only). */
void platform_report_plugins(void);

/* The first variant whose required features the CPU has, or the one named by
 * $KILN_CPU_LEVEL; fails if none fits. */
const kiln_variant_desc *variant_select(const kiln_model_desc *model, const struct cpu_features *cpu);

/* "x86-64-v4, x86-64-v3, ..." into buf. */
void variant_names(const kiln_model_desc *model, char *buf, size_t size);

#endif
