/* Whole-file reads and the executable's own directory. */
#ifndef KILN_FILES_H
#define KILN_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns the file's bytes (malloc'ed, caller frees) or fails naming the file. */
uint8_t *read_file(const char *path, size_t *size);

/* Directory holding the running executable, resolved through /proc/self/exe
 * (malloc'ed, caller frees). */
char *executable_dir(void);

/* "dir/name" (malloc'ed, caller frees). */
char *path_join(const char *dir, const char *name);

/* <exe_dir>/../share/<platform>: where a platform's manifest, kernels or program live. */
char *platform_share_dir(const char *platform);

/* Whether the bundle holds a manifest for `platform`. */
bool platform_manifest_present(const char *platform);

#endif
