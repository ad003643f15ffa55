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

#define CUDA_FUNCTIONS(X)                                                                      \
    X(cuInit, (unsigned))                                                                      \
    X(cuGetErrorString, (CUresult, const char **))                                             \
    X(cuGetErrorName, (CUresult, const char **))                                               \
    X(cuDeviceGetCount, (int *))                                                               \
    X(cuDeviceGet, (CUdevice *, int))                                                          \
    X(cuDeviceGetName, (char *, int, CUdevice))                                                \
    X(cuDeviceGetAttribute, (int *, int, CUdevice))                                            \
    X(cuDevicePrimaryCtxRetain, (CUcontext *, CUdevice))                                       \
    X(cuDevicePrimaryCtxRelease_v2, (CUdevice))                                                \
    X(cuCtxSetCurrent, (CUcontext))                                                            \
    X(cuModuleLoadData, (CUmodule *, const void *))                                            \
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
    int major = 0, minor = 0;
    char name[128] = "";
    api.cuDeviceGet(&dev, 0);
    api.cuDeviceGetName(name, sizeof name, dev);
    api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    snprintf(found, found_size, "%s (sm_%d%d)", name, major, minor);
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

struct cuda *cuda_open(const struct gpu_model *m, const void *weights, char *how, size_t how_size)
{
    char why[256], found[256];
    if (!cuda_probe(found, sizeof found, why, sizeof why)) {
        fail("cuda: %s", why);
    }
    struct cuda *c = calloc(1, sizeof *c);
    c->m = m;
    int major = 0, minor = 0;
    CHECK(cuDeviceGet(&c->dev, 0));
    CHECK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, c->dev));
    CHECK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, c->dev));
    CHECK(cuDevicePrimaryCtxRetain(&c->ctx, c->dev));
    CHECK(cuCtxSetCurrent(c->ctx));
    int cc = major * 10 + minor;
    const char *cubin = pick_cubin(m, cc);
    char file[32];
    if (cubin != NULL) {
        snprintf(file, sizeof file, "%s.cubin", cubin);
    } else if (m->ptx_sm[0] != '\0' && atoi(m->ptx_sm + 3) <= cc) {
        snprintf(file, sizeof file, "%s.ptx", m->ptx_sm);
    } else {
        char have[256];
        gpu_model_targets(m, have, sizeof have);
        fail("cuda: %s is sm_%d; this bundle has code for %s only", found, cc, have);
    }
    char *path = path_join(m->dir, file);
    size_t size;
    uint8_t *code = read_file(path, &size);
    uint8_t *text = realloc(code, size + 1);  /* PTX must be NUL-terminated */
    text[size] = '\0';
    CHECK(cuModuleLoadData(&c->module, text));
    free(text);
    free(path);
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
    snprintf(how, how_size, "%s, %s%s", found, file, cubin ? "" : " (JIT)");
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
