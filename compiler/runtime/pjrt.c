#define _GNU_SOURCE
#include "pjrt.h"

#include "errors.h"
#include "files.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef const PJRT_Api *(*get_api_fn)(void);

/* dlerror() text often spans the full path twice; keep its last clause. */
static const char *dl_reason(void)
{
    const char *text = dlerror();
    if (text == NULL) {
        return "unknown dlopen error";
    }
    const char *colon = strrchr(text, ':');
    return colon != NULL && colon[1] != '\0' ? colon + 2 : text;
}

static bool load_api(struct pjrt_plugin *p, char *why, size_t why_size)
{
    get_api_fn get_api = (get_api_fn)dlsym(p->handle, "GetPjrtApi");
    if (get_api == NULL) {
        snprintf(why, why_size, "%s is not a PJRT plugin: it has no GetPjrtApi symbol", p->path);
        return false;
    }
    p->api = get_api();
    if (p->api == NULL || p->api->struct_size < offsetof(PJRT_Api, PJRT_Error_Destroy)) {
        snprintf(why, why_size, "%s: GetPjrtApi returned no usable API table", p->path);
        return false;
    }
    p->major = p->api->pjrt_api_version.major_version;
    p->minor = p->api->pjrt_api_version.minor_version;
    if (p->major != KILN_PJRT_MAJOR) {
        snprintf(why, why_size,
                 "%s speaks PJRT C API %d.%d, this launcher was built for %d.x (%d.%d); "
                 "use a plugin with API major version %d",
                 p->path, p->major, p->minor, KILN_PJRT_MAJOR, KILN_PJRT_MAJOR, KILN_PJRT_MINOR,
                 KILN_PJRT_MAJOR);
        return false;
    }
    /* Every function the launcher calls sits in the table since API 0.0; a short
     * table means a broken plugin, not an old one. */
    if (p->api->struct_size < offsetof(PJRT_Api, PJRT_Buffer_ToHostBuffer) + sizeof(void *)) {
        snprintf(why, why_size, "%s: its PJRT API table is too short (%zu bytes)", p->path,
                 p->api->struct_size);
        return false;
    }
    return true;
}

bool pjrt_plugin_open(struct pjrt_plugin *p, const char *path, char *why, size_t why_size)
{
    *p = (struct pjrt_plugin){0};
    snprintf(p->path, sizeof p->path, "%s", path);
    p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p->handle == NULL) {
        snprintf(why, why_size, "cannot load PJRT plugin %s: %s", path, dl_reason());
        return false;
    }
    if (!load_api(p, why, why_size)) {
        dlclose(p->handle);
        p->handle = NULL;
        return false;
    }
    return true;
}

void pjrt_plugin_initialize(const struct pjrt_plugin *p)
{
    PJRT_Plugin_Initialize_Args args = PJRT_ARGS(PJRT_Plugin_Initialize_Args);
    pjrt_check(p->api, p->api->PJRT_Plugin_Initialize(&args), "initializing the PJRT plugin");
}

const char *pjrt_plugin_file(const char *platform)
{
    return strcmp(platform, "tpu") == 0 ? "libtpu.so" : "pjrt_c_api_cpu_plugin.so";
}

char *pjrt_plugin_path(const char *platform)
{
    const char *forced = getenv("KILN_PJRT_PLUGIN");
    if (forced != NULL && forced[0] != '\0') {
        return strdup(forced);
    }
    char relative[256];
    snprintf(relative, sizeof relative, "../lib/%s/%s", platform, pjrt_plugin_file(platform));
    char *exe_dir = executable_dir();
    char *path = path_join(exe_dir, relative);
    free(exe_dir);
    return path;
}

/* Messages from XLA span lines (MLIR diagnostics, stack notes): fold them into one. */
static void one_line(char *dst, size_t size, const char *src, size_t len)
{
    size_t n = 0;
    bool space = false;
    for (size_t i = 0; i < len && n + 1 < size; i++) {
        char c = src[i];
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < size) {
            dst[n++] = ' ';
        }
        space = false;
        dst[n++] = c;
    }
    dst[n] = '\0';
}

void pjrt_error_text(const PJRT_Api *api, PJRT_Error *error, char *buf, size_t size)
{
    PJRT_Error_Message_Args message = PJRT_ARGS(PJRT_Error_Message_Args);
    message.error = error;
    api->PJRT_Error_Message(&message);
    one_line(buf, size, message.message, message.message_size);
    PJRT_Error_Destroy_Args destroy = PJRT_ARGS(PJRT_Error_Destroy_Args);
    destroy.error = error;
    api->PJRT_Error_Destroy(&destroy);
}

void pjrt_check(const PJRT_Api *api, PJRT_Error *error, const char *what)
{
    if (error == NULL) {
        return;
    }
    char text[1024];
    pjrt_error_text(api, error, text, sizeof text);
    fail("%s: %s", what, text);
}

void pjrt_await(const PJRT_Api *api, PJRT_Event *event, const char *what)
{
    if (event == NULL) {
        return;
    }
    PJRT_Event_Args args = PJRT_ARGS(PJRT_Event_Args);
    args.event = event;
    PJRT_Error *error = api->PJRT_Event_Await(&args);
    pjrt_check(api, api->PJRT_Event_Destroy(&args), what);
    pjrt_check(api, error, what);
}
