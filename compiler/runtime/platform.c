#include "platform.h"

#include "errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Accelerator platforms join this list as their backends land. */
static const char *const bundle_platforms = "auto, cpu";

struct platform_choice platform_choose(const char *flag_value)
{
    const char *source = "--platform";
    const char *requested = flag_value;
    if (requested == NULL) {
        source = "KILN_PLATFORM";
        requested = getenv("KILN_PLATFORM");
    }
    if (requested == NULL || requested[0] == '\0' || strcmp(requested, "auto") == 0) {
        return (struct platform_choice){"cpu", "no accelerator platforms in this bundle"};
    }
    if (strcmp(requested, "cpu") == 0) {
        return (struct platform_choice){
            "cpu", source[0] == '-' ? "requested by --platform" : "requested by KILN_PLATFORM"};
    }
    fail_usage("platform '%s' (from %s) is not in this bundle; it has: %s", requested, source,
               bundle_platforms);
}

void variant_names(const kiln_model_desc *model, char *buf, size_t size)
{
    buf[0] = '\0';
    for (uint32_t i = 0; i < model->n_variants; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", i ? ", " : "", model->variants[i].name);
    }
}

static const kiln_variant_desc *forced_variant(const kiln_model_desc *model, const char *name,
                                               uint32_t cpu_mask)
{
    char names[256];
    for (uint32_t i = 0; i < model->n_variants; i++) {
        const kiln_variant_desc *v = &model->variants[i];
        if (strcmp(v->name, name) != 0) {
            continue;
        }
        if ((v->required_features & ~cpu_mask) != 0) {
            cpu_mask_names(v->required_features & ~cpu_mask, names, sizeof names);
            fail("KILN_CPU_LEVEL=%s: this CPU lacks %s", name, names);
        }
        return v;
    }
    variant_names(model, names, sizeof names);
    fail("KILN_CPU_LEVEL=%s: the model has no such variant; it has: %s", name, names);
}

const kiln_variant_desc *variant_select(const kiln_model_desc *model, const struct cpu_features *cpu)
{
    const char *forced = getenv("KILN_CPU_LEVEL");
    if (forced != NULL && forced[0] != '\0') {
        return forced_variant(model, forced, cpu->mask);
    }
    for (uint32_t i = 0; i < model->n_variants; i++) {
        if ((model->variants[i].required_features & ~cpu->mask) == 0) {
            return &model->variants[i];
        }
    }
    char names[256];
    variant_names(model, names, sizeof names);
    fail("this CPU (%s) runs none of the model's variants: %s", cpu->detected, names);
}
