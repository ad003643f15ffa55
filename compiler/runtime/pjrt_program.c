#define _GNU_SOURCE
#include "pjrt_program.h"

#include "errors.h"
#include "files.h"
#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A serialized xla.CompileOptionsProto, written by hand: field 3
 * (executable_build_options, length 4) holding num_replicas = 1 (field 4) and
 * num_partitions = 1 (field 5), both varints. One device, no sharding. */
static const char compile_options[] = {0x1a, 0x04, 0x20, 0x01, 0x28, 0x01};

static PJRT_LoadedExecutable *compile(const PJRT_Api *api, PJRT_Client *client, uint8_t *code, size_t size,
                                      const char *path)
{
    PJRT_Program program = PJRT_ARGS(PJRT_Program);
    program.code = (char *)code;
    program.code_size = size;
    program.format = "mlir";
    program.format_size = 4;
    PJRT_Client_Compile_Args args = PJRT_ARGS(PJRT_Client_Compile_Args);
    args.client = client;
    args.program = &program;
    args.compile_options = compile_options;
    args.compile_options_size = sizeof compile_options;
    char what[4200];
    snprintf(what, sizeof what, "compiling %s", path);
    pjrt_check(api, api->PJRT_Client_Compile(&args), what);
    return args.executable;
}

static PJRT_Executable *executable_of(const PJRT_Api *api, PJRT_LoadedExecutable *loaded)
{
    PJRT_LoadedExecutable_GetExecutable_Args args = PJRT_ARGS(PJRT_LoadedExecutable_GetExecutable_Args);
    args.loaded_executable = loaded;
    pjrt_check(api, api->PJRT_LoadedExecutable_GetExecutable(&args), "inspecting the executable");
    return args.executable;
}

static void destroy_executable(const PJRT_Api *api, PJRT_Executable *exe)
{
    PJRT_Executable_Destroy_Args args = PJRT_ARGS(PJRT_Executable_Destroy_Args);
    args.executable = exe;
    pjrt_check(api, api->PJRT_Executable_Destroy(&args), "freeing the executable");
}

void pjrt_program_check_outputs(const struct pjrt_plugin *plugin, PJRT_LoadedExecutable *loaded,
                                uint32_t expected)
{
    const PJRT_Api *api = plugin->api;
    PJRT_Executable_NumOutputs_Args args = PJRT_ARGS(PJRT_Executable_NumOutputs_Args);
    args.executable = executable_of(api, loaded);
    pjrt_check(api, api->PJRT_Executable_NumOutputs(&args), "counting the program's outputs");
    destroy_executable(api, args.executable);
    if (args.num_outputs != expected) {
        fail("the program returns %zu outputs, the manifest lists %u", args.num_outputs, expected);
    }
}

static const char *client_string(const PJRT_Api *api, PJRT_Client *client, bool version)
{
    PJRT_Client_String_Args args = PJRT_ARGS(PJRT_Client_String_Args);
    args.client = client;
    PJRT_Error *error = version ? api->PJRT_Client_PlatformVersion(&args) : api->PJRT_Client_PlatformName(&args);
    pjrt_check(api, error, "asking the PJRT client for its platform");
    return args.text;
}

/* <cache_dir>/<sha256 of program, options, plugin platform and versions>.pjrt */
static char *cache_path(const struct pjrt_plugin *plugin, PJRT_Client *client, const uint8_t *code,
                        size_t size, const char *cache_dir)
{
    char identity[1024];
    int n = snprintf(identity, sizeof identity, "kiln-pjrt-cache/1\n%s\n%s\n%d.%d\n",
                     client_string(plugin->api, client, false), client_string(plugin->api, client, true),
                     plugin->major, plugin->minor);
    size_t total = (size_t)n + sizeof compile_options + size;
    uint8_t *key = malloc(total);
    if (key == NULL) {
        fail("out of memory");
    }
    memcpy(key, identity, (size_t)n);
    memcpy(key + n, compile_options, sizeof compile_options);
    memcpy(key + n + sizeof compile_options, code, size);
    uint8_t digest[32];
    sha256(key, total, digest);
    free(key);
    char name[80];
    for (int i = 0; i < 32; i++) {
        snprintf(name + 2 * i, 3, "%02x", digest[i]);
    }
    strcat(name, ".pjrt");
    return path_join(cache_dir, name);
}

static PJRT_LoadedExecutable *load_cached(const PJRT_Api *api, PJRT_Client *client, const char *path)
{
    if (access(path, R_OK) != 0) {
        return NULL;
    }
    size_t size;
    uint8_t *bytes = read_file(path, &size);
    PJRT_Executable_DeserializeAndLoad_Args args = PJRT_ARGS(PJRT_Executable_DeserializeAndLoad_Args);
    args.client = client;
    args.serialized_executable = (const char *)bytes;
    args.serialized_executable_size = size;
    PJRT_Error *error = api->PJRT_Executable_DeserializeAndLoad(&args);
    free(bytes);
    if (error != NULL) {
        char text[512];
        pjrt_error_text(api, error, text, sizeof text);
        note("ignoring cached executable %s: %s", path, text);
        return NULL;
    }
    return args.loaded_executable;
}

static void write_atomically(const char *path, const char *data, size_t size)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f != NULL && fwrite(data, 1, size, f) == size;
    ok = (f != NULL && fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        note("cannot store the compiled executable in %s: %s", path, strerror(errno));
        unlink(tmp);
    }
}

static void store(const PJRT_Api *api, PJRT_LoadedExecutable *loaded, const char *cache_dir, const char *path)
{
    if (mkdir(cache_dir, 0755) != 0 && errno != EEXIST) {
        note("cannot create cache directory %s: %s", cache_dir, strerror(errno));
        return;
    }
    PJRT_Executable_Serialize_Args args = PJRT_ARGS(PJRT_Executable_Serialize_Args);
    args.executable = executable_of(api, loaded);
    PJRT_Error *error = api->PJRT_Executable_Serialize(&args);
    destroy_executable(api, (PJRT_Executable *)args.executable);
    if (error != NULL) {
        char text[512];
        pjrt_error_text(api, error, text, sizeof text);
        note("the plugin cannot serialize executables, not caching: %s", text);
        return;
    }
    write_atomically(path, args.serialized_bytes, args.serialized_bytes_size);
    args.serialized_executable_deleter(args.serialized_executable);
}

static bool can_cache(const PJRT_Api *api)
{
    return PJRT_API_HAS(api, PJRT_Executable_Serialize) && PJRT_API_HAS(api, PJRT_Executable_DeserializeAndLoad);
}

PJRT_LoadedExecutable *pjrt_program_load(const struct pjrt_plugin *plugin, PJRT_Client *client,
                                         const char *path, const char *cache_dir, const char **how)
{
    const PJRT_Api *api = plugin->api;
    size_t size;
    uint8_t *code = read_file(path, &size);
    char *cached = cache_dir != NULL && can_cache(api) ? cache_path(plugin, client, code, size, cache_dir) : NULL;
    PJRT_LoadedExecutable *exe = cached != NULL ? load_cached(api, client, cached) : NULL;
    *how = "loaded from the cache";
    if (exe == NULL) {
        exe = compile(api, client, code, size, path);
        *how = "compiled";
        if (cached != NULL) {
            store(api, exe, cache_dir, cached);
        }
    }
    free(cached);
    free(code);
    return exe;
}
