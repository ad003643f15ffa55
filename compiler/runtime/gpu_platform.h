/* Startup detection of the GPU platforms in this bundle, in ARCHITECTURE.md's order:
 * cuda (libcuda.so.1 loads and reports a device that the bundle's cubins or PTX cover, with a driver
 * new enough for them), then rocm (/dev/kfd and a GPU agent whose
 * ISA the bundle has code for). */
#ifndef KILN_GPU_PLATFORM_H
#define KILN_GPU_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

/* The first usable GPU platform's name ("cuda"/"rocm") with what was found in `found`, or NULL;
 * every platform probed and skipped is appended to `skipped` ("cuda: libcuda.so.1 not found; "). */
const char *gpu_choose_auto(char *found, size_t found_size, char *skipped, size_t skipped_size);

/* --platform=cuda|rocm: true if `name` is a GPU platform in this bundle; fails clearly if it is
 * not usable here. */
bool gpu_force(const char *name, char *found, size_t found_size);

#endif
