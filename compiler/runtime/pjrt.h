/* A PJRT plugin (libtpu.so, XLA's CPU plugin) loaded with dlopen, and its errors. */
#ifndef KILN_PJRT_H
#define KILN_PJRT_H

#include "pjrt_api.h"

#include <stdbool.h>
#include <stddef.h>

struct pjrt_plugin {
    char path[4096];
    void *handle;
    const PJRT_Api *api;
    int major, minor;  /* the plugin's PJRT C API version */
};

/* dlopens `path`, finds GetPjrtApi and checks the API major version. On failure
 * returns false with a one-line reason in `why` (the library stays unloaded). */
bool pjrt_plugin_open(struct pjrt_plugin *p, const char *path, char *why, size_t why_size);

/* PJRT_Plugin_Initialize; fails the process on error. */
void pjrt_plugin_initialize(const struct pjrt_plugin *p);

/* `<exe_dir>/../lib/<platform>/<file>` unless $KILN_PJRT_PLUGIN names one (malloc'ed). */
char *pjrt_plugin_path(const char *platform);

/* The plugin file a platform loads: libtpu.so for tpu, XLA's CPU plugin for cpu-xla. */
const char *pjrt_plugin_file(const char *platform);

/* Copies the error's message into `buf` as one line and destroys the error. */
void pjrt_error_text(const PJRT_Api *api, PJRT_Error *error, char *buf, size_t size);

/* No-op for NULL; else ends the process with "kiln: <what>: <message>". */
void pjrt_check(const PJRT_Api *api, PJRT_Error *error, const char *what);

/* Waits for `event` (if any), destroys it, and checks its result. */
void pjrt_await(const PJRT_Api *api, PJRT_Event *event, const char *what);

#endif
