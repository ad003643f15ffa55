#include "gpu_platform.h"

#include "cuda.h"
#include "errors.h"
#include "files.h"
#include "gpu_model.h"
#include "hsa.h"

#include <stdio.h>
#include <string.h>

/* Usable here? On false `why` says why not. */
static bool usable(const char *name, char *found, size_t found_size, char *why, size_t why_size)
{
    bool cuda = strcmp(name, "cuda") == 0;
    if (!(cuda ? cuda_probe : hsa_probe)(found, found_size, why, why_size)) {
        return false;
    }
    struct gpu_model m;
    gpu_model_load(&m, name, 0);
    bool ok = cuda ? cuda_supported(&m, why, why_size) : hsa_supported(&m, found, why, why_size);
    gpu_model_free(&m);
    return ok;
}

const char *gpu_choose_auto(char *found, size_t found_size, char *skipped, size_t skipped_size)
{
    static const char *const order[] = {"cuda", "rocm"};
    for (size_t i = 0; i < 2; i++) {
        if (!platform_manifest_present(order[i])) {
            continue;
        }
        char why[512];
        if (usable(order[i], found, found_size, why, sizeof why)) {
            return order[i];
        }
        size_t used = strlen(skipped);
        snprintf(skipped + used, skipped_size - used, "%s: %s; ", order[i], why);
    }
    return NULL;
}

bool gpu_force(const char *name, char *found, size_t found_size)
{
    if ((strcmp(name, "cuda") != 0 && strcmp(name, "rocm") != 0) || !platform_manifest_present(name)) {
        return false;   /* the caller's "not in this bundle" message lists what is */
    }
    char why[512];
    if (!usable(name, found, found_size, why, sizeof why)) {
        fail("platform %s was requested but is unusable here: %s", name, why);
    }
    return true;
}
