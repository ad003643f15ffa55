/* The StableHLO program compiled by the plugin, or its executable loaded from a cache. */
#ifndef KILN_PJRT_PROGRAM_H
#define KILN_PJRT_PROGRAM_H

#include "pjrt.h"

#include <stdint.h>

/* Compiles the module at `path`. With a `cache_dir` (may be NULL) and a plugin that
 * can serialize executables, a previous compile of the same program by the same
 * plugin version is loaded instead, and a fresh compile is stored. `how` says which. */
PJRT_LoadedExecutable *pjrt_program_load(const struct pjrt_plugin *plugin, PJRT_Client *client,
                                         const char *path, const char *cache_dir, const char **how);

/* Fails unless the executable returns `expected` outputs. */
void pjrt_program_check_outputs(const struct pjrt_plugin *plugin, PJRT_LoadedExecutable *exe,
                                uint32_t expected);

#endif
