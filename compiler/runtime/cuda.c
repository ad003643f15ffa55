#include "cuda.h"

#include "errors.h"
#include "files.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our own declarations of the driver API functions used (cuda.h is not needed to build). */
typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef uint64_t CUdeviceptr;
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define CU_JIT_ERROR_LOG_BUFFER 5
#define CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES 6

#define CUDA_FUNCTIONS(X)                                                                      \
    X(cuInit, (unsigned))                                                                      \
    X(cuDriverGetVersion, (int *))                                                             \
    X(cuGetErrorString, (CUresult, const char **))                                             \
    X(cuGetErrorName, (CUresult, const char **))                                               \
    X(cuDeviceGetCount, (int *))                                                               \
    X(cuDeviceGet, (CUdevice *, int))                                                          \
    X(cuDeviceGetName, (char *, int, CUdevice))                                                \
    X(cuDeviceGetAttribute, (int *, int, CUdevice))                                            \
    X(cuDevicePrimaryCtxRetain, (CUcontext *, CUdevice))                                       \
    X(cuDevicePrimaryCtxRelease_v2, (CUdevice))                                                \
    X(cuCtxSetCurrent, (CUcontext))                                                            \
    X(cuModuleLoadDataEx, (CUmodule *, const void *, unsigned, int *, void **))                \
    X(cuModuleGetFunction, (CUfunction *, CUmodule, const char *))                             \
    X(cuModuleUnload, (CUmodule))                                                              \
    X(cuMemAlloc_v2, (CUdeviceptr *, size_t))                                                  \
    X(cuMemFree_v2, (CUdeviceptr))                                                             \
    X(cuMemcpyHtoD_v2, (CUdeviceptr, const void *, size_t))                                    \
    X(cuMemcpyHtoDAsync_v2, (CUdeviceptr, const void *, size_t, CUstream))                     \
    X(cuMemcpyDtoHAsync_v2, (void *, CUdeviceptr, size_t, CUstream))                           \
    X(cuStreamCreate, (CUstream *, unsigned))                                                  \
    X(cuStreamDestroy_v2, (CUstream))                                                          \
    X(cuStreamSynchronize, (CUstream))                                                         \
    X(cuLaunchKernel, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, \
                       unsigned, CUstream, void **, void **))

static struct {
    void *lib;
#define FIELD(name, args) CUresult (*name) args;
    CUDA_FUNCTIONS(FIELD)
#undef FIELD
} api;

struct cuda {
    CUdevice dev;
    CUcontext ctx;
    CUmodule module;
    CUstream stream;
    CUdeviceptr weights, act;
    CUfunction *fns;
    const struct gpu_model *m;
};

static void error_text(CUresult r, char *buf, size_t size)
{
    const char *name = NULL, *text = NULL;
    if (api.cuGetErrorName != NULL) {
        api.cuGetErrorName(r, &name);
    }
    if (api.cuGetErrorString != NULL) {
        api.cuGetErrorString(r, &text);
    }
    snprintf(buf, size, "%s (%d)%s%s", name ? name : "CUDA error", r, text ? ": " : "", text ? text : "");
}

#define CHECK(call)                                                  \
    do {                                                             \
        CUresult r_ = api.call;                                      \
        if (r_ != 0) {                                               \
            char text_[256];                                         \
            error_text(r_, text_, sizeof text_);                     \
            fail("cuda: %s failed: %s", #call, text_);               \
        }                                                            \
    } while (0)

static bool load_api(char *why, size_t why_size)
{
    if (api.lib != NULL) {
        return true;
    }
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(why, why_size, "libcuda.so.1 not found");
        return false;
    }
#define LOOKUP(name, args)                                                       \
    api.name = (CUresult(*) args)dlsym(lib, #name);                              \
    if (api.name == NULL && strcmp(#name, "cuGetErrorName") != 0) {              \
        snprintf(why, why_size, "libcuda.so.1 lacks %s (driver too old)", #name); \
        dlclose(lib);                                                            \
        return false;                                                            \
    }
    CUDA_FUNCTIONS(LOOKUP)
#undef LOOKUP
    api.lib = lib;
    return true;
}

bool cuda_probe(char *found, size_t found_size, char *why, size_t why_size)
{
    if (!load_api(why, why_size)) {
        return false;
    }
    char text[256];
    CUresult r = api.cuInit(0);
    if (r != 0) {
        error_text(r, text, sizeof text);
        snprintf(why, why_size, "cuInit: %s", text);
        return false;
    }
    int count = 0;
    if ((r = api.cuDeviceGetCount(&count)) != 0 || count == 0) {
        snprintf(why, why_size, "libcuda.so.1 reports no device");
        return false;
    }
    CUdevice dev;
    int major = 0, minor = 0, driver = 0;
    char name[128] = "";
    api.cuDeviceGet(&dev, 0);
    api.cuDeviceGetName(name, sizeof name, dev);
    api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    api.cuDriverGetVersion(&driver);
    snprintf(found, found_size, "%s (sm_%d%d, driver CUDA %d.%d)", name, major, minor, driver / 1000,
             driver % 1000 / 10);
    return true;
}

/* A cubin runs on its own major version at the same or a higher minor: take the highest such. */
static const char *pick_cubin(const struct gpu_model *m, int cc)
{
    const char *best = NULL;
    int best_cc = -1;
    for (int i = 0; i < m->n_targets; i++) {
        int t = atoi(m->targets[i] + 3);
        if (t / 10 == cc / 10 && t <= cc && t > best_cc) {
            best = m->targets[i];
            best_cc = t;
        }
    }
    return best;
}

static bool ptx_runs_on(const struct gpu_model *m, int cc)
{
    return m->ptx_sm[0] != '\0' && atoi(m->ptx_sm + 3) <= cc;
}

/* Device 0's compute capability as 10 * major + minor, and the CUDA version its driver supports. */
static void device_facts(CUdevice *dev, int *cc, int *driver)
{
    int major = 0, minor = 0;
    CHECK(cuDeviceGet(dev, 0));
    CHECK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, *dev));
    CHECK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, *dev));
    CHECK(cuDriverGetVersion(driver));
    *cc = major * 10 + minor;
}

/* The cubin this GPU and driver load, or NULL. */
static const char *usable_cubin(const struct gpu_model *m, int cc, int driver)
{
    return driver >= m->cuda_cubin ? pick_cubin(m, cc) : NULL;
}

static bool usable_ptx(const struct gpu_model *m, int cc, int driver)
{
    return ptx_runs_on(m, cc) && driver >= m->cuda_ptx;
}

bool cuda_supported(const struct gpu_model *m, char *why, size_t why_size)
{
    CUdevice dev;
    int cc, driver;
    device_facts(&dev, &cc, &driver);
    if (usable_cubin(m, cc, driver) != NULL || usable_ptx(m, cc, driver)) {
        return true;
    }
    if (pick_cubin(m, cc) == NULL && !ptx_runs_on(m, cc)) {
        char have[256];
        gpu_model_targets(m, have, sizeof have);
        snprintf(why, why_size, "the GPU is sm_%d; this bundle has code for %s only", cc, have);
    } else {
        snprintf(why, why_size, "the driver supports CUDA %d.%d; this bundle's cubins need %d.%d, its PTX %d.%d",
                 driver / 1000, driver % 1000 / 10, m->cuda_cubin / 1000, m->cuda_cubin % 1000 / 10,
                 m->cuda_ptx / 1000, m->cuda_ptx % 1000 / 10);
    }
    return false;
}

/* Loads m->dir/file into c->module; on failure `error` holds the CUDA error and the JIT's log. */
static bool load_module(struct cuda *c, const char *file, char *error, size_t error_size)
{
    char *path = path_join(c->m->dir, file);
    size_t size;
    uint8_t *code = read_file(path, &size);
    uint8_t *text = realloc(code, size + 1);  /* PTX must be NUL-terminated */
    text[size] = '\0';
    char log[2048] = "";
    int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *values[] = {log, (void *)(uintptr_t)sizeof log};
    CUresult r = api.cuModuleLoadDataEx(&c->module, text, 2, options, values);
    free(text);
    free(path);
    if (r != 0) {
        char name[256];
        error_text(r, name, sizeof name);
        for (char *nl = strchr(log, '\n'); nl != NULL; nl = strchr(nl, '\n')) {
            *nl = nl[1] == '\0' ? '\0' : ' ';  /* the JIT's log spans lines; the message is one */
        }
        snprintf(error, error_size, "%s%s%s", name, log[0] ? ": " : "", log);
    }
    return r == 0;
}

/* The matching cubin, else (or when the driver rejects it) the PTX; `how` says which was loaded. */
static void load_code(struct cuda *c, int cc, int driver, const char *found, char *how, size_t how_size)
{
    const struct gpu_model *m = c->m;
    const char *cubin = usable_cubin(m, cc, driver);
    char file[64] = "", error[2600] = "", rejected[2700] = "";
    if (cubin != NULL) {
        snprintf(file, sizeof file, "%s", gpu_model_code_file(m, cubin));
        if (load_module(c, file, error, sizeof error)) {
            snprintf(how, how_size, "%s, %s", found, file);
            return;
        }
        snprintf(rejected, sizeof rejected, "; %s was rejected: %s", file, error);
    }
    if (!usable_ptx(m, cc, driver)) {
        fail("cuda: loading %s failed: %s", file, error);
    }
    snprintf(file, sizeof file, "%s", m->ptx_file);
    if (!load_module(c, file, error, sizeof error)) {
        fail("cuda: loading %s failed: %s%s", file, error, rejected);
    }
    snprintf(how, how_size, "%s, %s (JIT%s)", found, file, cubin ? ", the cubin was rejected" : "");
}

struct cuda *cuda_open(const struct gpu_model *m, const void *weights, char *how, size_t how_size)
{
    char why[512], found[256];
    if (!cuda_probe(found, sizeof found, why, sizeof why) || !cuda_supported(m, why, sizeof why)) {
        fail("cuda: %s", why);
    }
    struct cuda *c = calloc(1, sizeof *c);
    c->m = m;
    int cc, driver;
    device_facts(&c->dev, &cc, &driver);
    CHECK(cuDevicePrimaryCtxRetain(&c->ctx, c->dev));
    CHECK(cuCtxSetCurrent(c->ctx));
    load_code(c, cc, driver, found, how, how_size);
    c->fns = calloc((size_t)m->n_kernels + 1, sizeof *c->fns);
    for (int i = 0; i < m->n_kernels; i++) {
        CHECK(cuModuleGetFunction(&c->fns[i], c->module, m->kernels[i].name));
    }
    CHECK(cuMemAlloc_v2(&c->weights, m->weights_bytes ? m->weights_bytes : 1));
    CHECK(cuMemAlloc_v2(&c->act, m->activation_bytes ? m->activation_bytes : 1));
    if (m->weights_bytes) {
        CHECK(cuMemcpyHtoD_v2(c->weights, weights, m->weights_bytes));
    }
    CHECK(cuStreamCreate(&c->stream, 0));
    return c;
}

void cuda_run(struct cuda *c, void *const *inputs, const size_t *in_bytes, void *const *outputs,
              const size_t *out_bytes)
{
    const struct gpu_model *m = c->m;
    for (int i = 0; i < m->n_inputs; i++) {
        CHECK(cuMemcpyHtoDAsync_v2(c->act + m->inputs[i], inputs[i], in_bytes[i], c->stream));
    }
    for (int i = 0; i < m->n_kernels; i++) {
        void *args[] = {&c->weights, &c->act};
        CHECK(cuLaunchKernel(c->fns[i], m->kernels[i].grid, 1, 1, m->kernels[i].block, 1, 1, 0, c->stream,
                             args, NULL));
    }
    for (int i = 0; i < m->n_outputs; i++) {
        CHECK(cuMemcpyDtoHAsync_v2(outputs[i], c->act + m->outputs[i], out_bytes[i], c->stream));
    }
    CHECK(cuStreamSynchronize(c->stream));
}

void cuda_close(struct cuda *c)
{
    api.cuStreamDestroy_v2(c->stream);
    api.cuMemFree_v2(c->act);
    api.cuMemFree_v2(c->weights);
    api.cuModuleUnload(c->module);
    api.cuDevicePrimaryCtxRelease_v2(c->dev);
    free(c->fns);
    free(c);
}
