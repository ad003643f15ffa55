#include "platform.h"

#include "errors.h"
#include "gpu_platform.h"
#include "files.h"
#include "pjrt.h"
#include "pjrt_model.h"
#include "tpu_probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Platforms that run the StableHLO program through a PJRT plugin. */
static const char *const pjrt_platforms[] = {"tpu", "cpu-xla"};
#define N_PJRT (sizeof pjrt_platforms / sizeof pjrt_platforms[0])

static struct platform_choice choice(const char *name, bool pjrt, const char *reason)
{
    struct platform_choice c = {.name = name, .pjrt = pjrt};
    snprintf(c.reason, sizeof c.reason, "%s", reason);
    return c;
}

static void bundle_platforms(char *buf, size_t size)
{
    static const char *const accelerators[] = {"cuda", "rocm", "tpu", "cpu-xla"};
    snprintf(buf, size, "auto, cpu");
    for (size_t i = 0; i < sizeof accelerators / sizeof accelerators[0]; i++) {
        if (platform_manifest_present(accelerators[i])) {
            size_t used = strlen(buf);
            snprintf(buf + used, size - used, ", %s", accelerators[i]);
        }
    }
}

static struct platform_choice choose_auto(void)
{
    char found[256], why[256], skipped[512] = "";
    const char *gpu = gpu_choose_auto(found, sizeof found, skipped, sizeof skipped);
    if (gpu != NULL) {
        struct platform_choice c = choice(gpu, false, "");
        snprintf(c.reason, sizeof c.reason, "%sfound %s", skipped, found);
        return c;
    }
    if (!platform_manifest_present("tpu")) {
        struct platform_choice c = choice("cpu", false, "no accelerator platforms in this bundle");
        if (skipped[0] != '\0') {
            snprintf(c.reason, sizeof c.reason, "%.*s", (int)strlen(skipped) - 2, skipped);
        }
        return c;
    }
    if (!tpu_probe(found, sizeof found, why, sizeof why)) {
        struct platform_choice c = choice("cpu", false, "");
        snprintf(c.reason, sizeof c.reason, "%stpu: %s", skipped, why);
        return c;
    }
    struct platform_choice c = choice("tpu", true, "");
    snprintf(c.reason, sizeof c.reason, "found %s and libtpu created a client", found);
    return c;
}

struct platform_choice platform_choose(const char *flag_value)
{
    const char *source = "--platform";
    const char *requested = flag_value;
    if (requested == NULL) {
        source = "KILN_PLATFORM";
        requested = getenv("KILN_PLATFORM");
    }
    if (requested == NULL || requested[0] == '\0' || strcmp(requested, "auto") == 0) {
        return choose_auto();
    }
    const char *why = source[0] == '-' ? "requested by --platform" : "requested by KILN_PLATFORM";
    if (strcmp(requested, "cpu") == 0) {
        return choice("cpu", false, why);
    }
    char found[256];
    if (gpu_force(requested, found, sizeof found)) {
        struct platform_choice c = choice(strcmp(requested, "cuda") == 0 ? "cuda" : "rocm", false, "");
        snprintf(c.reason, sizeof c.reason, "%s, found %s", why, found);
        return c;
    }
    for (size_t i = 0; i < N_PJRT; i++) {
        if (strcmp(requested, pjrt_platforms[i]) == 0 && platform_manifest_present(requested)) {
            char unusable[256];
            if (strcmp(requested, "tpu") == 0 && !tpu_device(found, sizeof found, unusable, sizeof unusable)) {
                fail("platform tpu was requested but is unusable here: %s", unusable);
            }
            return choice(pjrt_platforms[i], true, why);
        }
    }
    char have[128];
    bundle_platforms(have, sizeof have);
    fail_usage("platform '%s' (from %s) is not in this bundle; it has: %s", requested, source, have);
}

void platform_report_plugins(void)
{
    for (size_t i = 0; i < N_PJRT; i++) {
        const char *name = pjrt_platforms[i];
        if (!platform_manifest_present(name)) {
            continue;
        }
        char *path = pjrt_plugin_path(name);
        char why[512];
        struct pjrt_plugin plugin;
        if (pjrt_plugin_open(&plugin, path, why, sizeof why)) {
            printf("%-10s %s: %s (PJRT C API %d.%d)\n", "plugin:", name, path, plugin.major, plugin.minor);
        } else {
            printf("%-10s %s: %s\n", "plugin:", name, why);
        }
        free(path);
    }
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
