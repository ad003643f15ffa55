/* Running a StableHLO model through a PJRT plugin: one client and device, the
 * program compiled once (or loaded from --cache-dir), weights uploaded once. */
#ifndef KILN_PJRT_SESSION_H
#define KILN_PJRT_SESSION_H

#include "pjrt.h"
#include "pjrt_model.h"

struct pjrt_session {
    const struct pjrt_plugin *plugin;
    const struct pjrt_model *model;
    PJRT_Client *client;
    PJRT_Device *device;
    PJRT_LoadedExecutable *executable;
    PJRT_Buffer **weights;       /* device buffers, one per model weight */
    const char *compiled_how;    /* "compiled", "loaded from cache" */
    double startup_ms;           /* client creation, compile or cache load, weight upload */
};

/* `weights`: the checked safetensors data section. `cache_dir` may be NULL. */
void pjrt_session_open(struct pjrt_session *s, const struct pjrt_plugin *plugin,
                       const struct pjrt_model *model, const uint8_t *weights, const char *cache_dir);

/* One execution: inputs up, run, outputs back into the host buffers. */
void pjrt_session_run(struct pjrt_session *s, void *const *inputs, void *const *outputs);
void pjrt_session_close(struct pjrt_session *s);

#endif
