#define _GNU_SOURCE
#include "hsa.h"

#include "errors.h"
#include "files.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Our own declarations of the HSA 1.x API subset used (values as in hsa.h of ROCm 5/6). */
typedef int hsa_status_t;
typedef struct { uint64_t handle; } hsa_agent_t, hsa_isa_t, hsa_region_t, hsa_signal_t,
    hsa_executable_t, hsa_code_object_reader_t, hsa_executable_symbol_t;
typedef struct {
    uint32_t type, features;
    void *base_address;
    hsa_signal_t doorbell_signal;
    uint32_t size, reserved1;
    uint64_t id;
} hsa_queue_t;
typedef struct {
    uint16_t header, setup, workgroup_size_x, workgroup_size_y, workgroup_size_z, reserved0;
    uint32_t grid_size_x, grid_size_y, grid_size_z, private_segment_size, group_segment_size;
    uint64_t kernel_object;
    void *kernarg_address;
    uint64_t reserved2;
    hsa_signal_t completion_signal;
} aql_dispatch_t;
enum { AGENT_INFO_DEVICE = 17, DEVICE_GPU = 1, ISA_INFO_NAME = 1, REGION_INFO_SEGMENT = 0,
       REGION_INFO_GLOBAL_FLAGS = 1, SEGMENT_GLOBAL = 0, FLAG_KERNARG = 1, FLAG_COARSE = 4,
       SYM_KERNEL_OBJECT = 22, SYM_KERNARG_SIZE = 11, SYM_GROUP_SIZE = 13, SYM_PRIVATE_SIZE = 14,
       PROFILE_FULL = 1, QUEUE_SINGLE = 1, SIGNAL_LT = 2, WAIT_BLOCKED = 0,
       PACKET_DISPATCH = 2, PACKET_INVALID = 1, SCOPE_SYSTEM = 2, HSA_STATUS_INFO_BREAK = 1 };
#define HSA_FUNCTIONS(X)                                                                                 \
    X(hsa_init, (void))                                                                                  \
    X(hsa_status_string, (hsa_status_t, const char **))                                                  \
    X(hsa_iterate_agents, (hsa_status_t (*)(hsa_agent_t, void *), void *))                              \
    X(hsa_agent_get_info, (hsa_agent_t, int, void *))                                                    \
    X(hsa_agent_iterate_isas, (hsa_agent_t, hsa_status_t (*)(hsa_isa_t, void *), void *))               \
    X(hsa_isa_get_info_alt, (hsa_isa_t, int, void *))                                                    \
    X(hsa_agent_iterate_regions, (hsa_agent_t, hsa_status_t (*)(hsa_region_t, void *), void *))         \
    X(hsa_region_get_info, (hsa_region_t, int, void *))                                                  \
    X(hsa_memory_allocate, (hsa_region_t, size_t, void **))                                              \
    X(hsa_memory_copy, (void *, const void *, size_t))                                                   \
    X(hsa_memory_free, (void *))                                                                         \
    X(hsa_code_object_reader_create_from_memory, (const void *, size_t, hsa_code_object_reader_t *))     \
    X(hsa_executable_create_alt, (int, int, const char *, hsa_executable_t *))                           \
    X(hsa_executable_load_agent_code_object, (hsa_executable_t, hsa_agent_t, hsa_code_object_reader_t,  \
                                              const char *, void *))                                     \
    X(hsa_executable_freeze, (hsa_executable_t, const char *))                                           \
    X(hsa_executable_get_symbol_by_name, (hsa_executable_t, const char *, const hsa_agent_t *,          \
                                          hsa_executable_symbol_t *))                                    \
    X(hsa_executable_symbol_get_info, (hsa_executable_symbol_t, int, void *))                            \
    X(hsa_queue_create, (hsa_agent_t, uint32_t, int, void *, void *, uint32_t, uint32_t, hsa_queue_t **)) \
    X(hsa_signal_create, (int64_t, uint32_t, const hsa_agent_t *, hsa_signal_t *))
#define HSA_VALUE_FUNCTIONS(X)                                                  \
    X(uint64_t, hsa_queue_add_write_index_relaxed, (const hsa_queue_t *, uint64_t)) \
    X(void, hsa_signal_store_screlease, (hsa_signal_t, int64_t))                 \
    X(void, hsa_signal_store_relaxed, (hsa_signal_t, int64_t))                   \
    X(int64_t, hsa_signal_wait_scacquire, (hsa_signal_t, int, int64_t, uint64_t, int))

static struct {
    void *lib;
#define FIELD(name, args) hsa_status_t (*name) args;
    HSA_FUNCTIONS(FIELD)
#undef FIELD
#define VFIELD(ret, name, args) ret (*name) args;
    HSA_VALUE_FUNCTIONS(VFIELD)
#undef VFIELD
} api;

struct hsa {
    hsa_agent_t gpu;
    hsa_region_t device, kernarg;
    hsa_queue_t *queue;
    hsa_signal_t done;
    void *weights, *act, **kernargs;
    uint64_t *objects;
    uint32_t *group, *private_;
    const struct gpu_model *m;
};

#define CHECK(call)                                                                       \
    do {                                                                                  \
        hsa_status_t s_ = api.call;                                                       \
        if (s_ != 0 && s_ != HSA_STATUS_INFO_BREAK) {                                     \
            const char *t_ = NULL;                                                        \
            api.hsa_status_string(s_, &t_);                                               \
            fail("rocm: %s failed: %s (0x%x)", #call, t_ ? t_ : "HSA error", (unsigned)s_); \
        }                                                                                 \
    } while (0)

static bool load_api(char *why, size_t why_size)
{
    if (api.lib != NULL) {
        return true;
    }
    char *exe = executable_dir();
    char *path = path_join(exe, "../lib/rocm/libhsa-runtime64.so.1");
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    free(exe);
    if (lib == NULL) {
        snprintf(why, why_size, "bundled %s does not load: %s", path, dlerror());
        free(path);
        return false;
    }
    free(path);
#define LOOKUP(name, args) *(void **)&api.name = dlsym(lib, #name); if (api.name == NULL) goto missing;
#define VLOOKUP(ret, name, args) LOOKUP(name, args)
    HSA_FUNCTIONS(LOOKUP)
    HSA_VALUE_FUNCTIONS(VLOOKUP)
#undef LOOKUP
#undef VLOOKUP
    api.lib = lib;
    return true;
missing:
    snprintf(why, why_size, "bundled libhsa-runtime64.so.1 lacks a function kiln needs");
    dlclose(lib);
    return false;
}

static hsa_status_t find_gpu(hsa_agent_t agent, void *data)
{
    int type = -1;
    api.hsa_agent_get_info(agent, AGENT_INFO_DEVICE, &type);
    if (type == DEVICE_GPU) {
        *(hsa_agent_t *)data = agent;
        return HSA_STATUS_INFO_BREAK;
    }
    return 0;
}

/* "amdgcn-amd-amdhsa--gfx90a:sramecc+:xnack-" -> "gfx90a" */
static hsa_status_t isa_name(hsa_isa_t isa, void *data)
{
    char name[128] = "";
    api.hsa_isa_get_info_alt(isa, ISA_INFO_NAME, name);
    const char *gfx = strstr(name, "gfx");
    if (gfx != NULL) {
        snprintf(data, 32, "%.*s", (int)strcspn(gfx, ":"), gfx);
        return HSA_STATUS_INFO_BREAK;
    }
    return 0;
}

static bool find_agent(hsa_agent_t *gpu, char *isa, char *why, size_t why_size)
{
    if (access("/dev/kfd", F_OK) != 0) {
        snprintf(why, why_size, "/dev/kfd absent");
        return false;
    }
    if (!load_api(why, why_size)) {
        return false;
    }
    hsa_status_t s = api.hsa_init();
    if (s != 0) {
        const char *t = NULL;
        api.hsa_status_string(s, &t);
        snprintf(why, why_size, "hsa_init: %s", t ? t : "failed");
        return false;
    }
    gpu->handle = 0;
    api.hsa_iterate_agents(find_gpu, gpu);
    if (gpu->handle == 0) {
        snprintf(why, why_size, "HSA finds no GPU agent");
        return false;
    }
    isa[0] = '\0';
    api.hsa_agent_iterate_isas(*gpu, isa_name, isa);
    return true;
}

bool hsa_probe(char *found, size_t found_size, char *why, size_t why_size)
{
    hsa_agent_t gpu;
    char isa[32];
    if (!find_agent(&gpu, isa, why, why_size)) {
        return false;
    }
    snprintf(found, found_size, "%s", isa);
    return true;
}

bool hsa_supported(const struct gpu_model *m, const char *isa, char *why, size_t why_size)
{
    for (int i = 0; i < m->n_targets; i++) {
        if (strcmp(m->targets[i], isa) == 0) {
            return true;
        }
    }
    char have[256];
    gpu_model_targets(m, have, sizeof have);
    snprintf(why, why_size, "the GPU is %s; this bundle has code objects for %s only", isa, have);
    return false;
}

static hsa_status_t pick_regions(hsa_region_t region, void *data)
{
    struct hsa *h = data;
    int segment = -1;
    uint32_t flags = 0;
    api.hsa_region_get_info(region, REGION_INFO_SEGMENT, &segment);
    if (segment != SEGMENT_GLOBAL) {
        return 0;
    }
    api.hsa_region_get_info(region, REGION_INFO_GLOBAL_FLAGS, &flags);
    if ((flags & FLAG_KERNARG) && h->kernarg.handle == 0) {
        h->kernarg = region;
    }
    if ((flags & FLAG_COARSE) && h->device.handle == 0) {
        h->device = region;
    }
    return 0;
}

static hsa_status_t cpu_kernarg(hsa_agent_t agent, void *data)
{
    return api.hsa_agent_iterate_regions(agent, pick_regions, data);
}

struct hsa *hsa_open(const struct gpu_model *m, const void *weights, char *how, size_t how_size)
{
    struct hsa *h = calloc(1, sizeof *h);
    char isa[32], why[512];
    h->m = m;
    if (!find_agent(&h->gpu, isa, why, sizeof why)) {
        fail("rocm: %s", why);
    }
    if (!hsa_supported(m, isa, why, sizeof why)) {
        fail("rocm: %s", why);
    }
    char file[48];
    snprintf(file, sizeof file, "%s.co", isa);
    char *path = path_join(m->dir, file);
    size_t size;
    uint8_t *code = read_file(path, &size);
    hsa_code_object_reader_t reader;
    hsa_executable_t exe;
    CHECK(hsa_code_object_reader_create_from_memory(code, size, &reader));
    CHECK(hsa_executable_create_alt(PROFILE_FULL, 0, NULL, &exe));
    CHECK(hsa_executable_load_agent_code_object(exe, h->gpu, reader, NULL, NULL));
    CHECK(hsa_executable_freeze(exe, NULL));
    api.hsa_agent_iterate_regions(h->gpu, pick_regions, h);
    if (h->kernarg.handle == 0) {
        CHECK(hsa_iterate_agents(cpu_kernarg, h));
    }
    if (h->device.handle == 0 || h->kernarg.handle == 0) {
        fail("rocm: the GPU agent has no device or kernarg memory region");
    }
    int n = m->n_kernels;
    h->objects = calloc((size_t)n + 1, sizeof *h->objects);
    h->group = calloc((size_t)n + 1, sizeof *h->group);
    h->private_ = calloc((size_t)n + 1, sizeof *h->private_);
    h->kernargs = calloc((size_t)n + 1, sizeof *h->kernargs);
    CHECK(hsa_memory_allocate(h->device, m->weights_bytes ? m->weights_bytes : 1, &h->weights));
    CHECK(hsa_memory_allocate(h->device, m->activation_bytes ? m->activation_bytes : 1, &h->act));
    if (m->weights_bytes) {
        CHECK(hsa_memory_copy(h->weights, weights, m->weights_bytes));
    }
    for (int i = 0; i < n; i++) {
        char symbol[160];
        hsa_executable_symbol_t sym;
        uint32_t kernarg_size = 0;
        snprintf(symbol, sizeof symbol, "%s.kd", m->kernels[i].name);
        CHECK(hsa_executable_get_symbol_by_name(exe, symbol, &h->gpu, &sym));
        CHECK(hsa_executable_symbol_get_info(sym, SYM_KERNEL_OBJECT, &h->objects[i]));
        CHECK(hsa_executable_symbol_get_info(sym, SYM_KERNARG_SIZE, &kernarg_size));
        CHECK(hsa_executable_symbol_get_info(sym, SYM_GROUP_SIZE, &h->group[i]));
        CHECK(hsa_executable_symbol_get_info(sym, SYM_PRIVATE_SIZE, &h->private_[i]));
        void *args[2] = {h->weights, h->act};
        CHECK(hsa_memory_allocate(h->kernarg, kernarg_size > sizeof args ? kernarg_size : sizeof args,
                                  &h->kernargs[i]));
        memcpy(h->kernargs[i], args, sizeof args);
    }
    CHECK(hsa_queue_create(h->gpu, 1024, QUEUE_SINGLE, NULL, NULL, UINT32_MAX, UINT32_MAX, &h->queue));
    CHECK(hsa_signal_create(1, 0, NULL, &h->done));
    free(code);
    free(path);
    snprintf(how, how_size, "%s, %s", isa, file);
    return h;
}

static void dispatch(struct hsa *h, int i, bool last)
{
    hsa_queue_t *q = h->queue;
    uint64_t index = api.hsa_queue_add_write_index_relaxed(q, 1);
    aql_dispatch_t *p = (aql_dispatch_t *)q->base_address + (index & (q->size - 1));
    memset((uint8_t *)p + 4, 0, sizeof *p - 4);
    p->setup = 1;  /* one dimension */
    p->workgroup_size_x = (uint16_t)h->m->kernels[i].block;
    p->workgroup_size_y = p->workgroup_size_z = 1;
    p->grid_size_x = h->m->kernels[i].grid * h->m->kernels[i].block;  /* work-items, not blocks */
    p->grid_size_y = p->grid_size_z = 1;
    p->group_segment_size = h->group[i];
    p->private_segment_size = h->private_[i];
    p->kernel_object = h->objects[i];
    p->kernarg_address = h->kernargs[i];
    if (last) {
        p->completion_signal = h->done;
    }
    /* the barrier bit orders the launches; system-scope fences make host copies visible */
    uint16_t header = PACKET_DISPATCH | 1 << 8 | SCOPE_SYSTEM << 9 | SCOPE_SYSTEM << 11;
    __atomic_store_n(&p->header, header, __ATOMIC_RELEASE);
    api.hsa_signal_store_screlease(q->doorbell_signal, (int64_t)index);
}

void hsa_run(struct hsa *h, void *const *inputs, const size_t *in_bytes, void *const *outputs,
             const size_t *out_bytes)
{
    const struct gpu_model *m = h->m;
    for (int i = 0; i < m->n_inputs; i++) {
        CHECK(hsa_memory_copy((uint8_t *)h->act + m->inputs[i], inputs[i], in_bytes[i]));
    }
    api.hsa_signal_store_relaxed(h->done, 1);
    for (int i = 0; i < m->n_kernels; i++) {
        dispatch(h, i, i == m->n_kernels - 1);
    }
    while (m->n_kernels && api.hsa_signal_wait_scacquire(h->done, SIGNAL_LT, 1, UINT64_MAX, WAIT_BLOCKED) != 0) {
    }
    for (int i = 0; i < m->n_outputs; i++) {
        CHECK(hsa_memory_copy(outputs[i], (uint8_t *)h->act + m->outputs[i], out_bytes[i]));
    }
}

void hsa_close(struct hsa *h)
{
    for (int i = 0; i < h->m->n_kernels; i++) {
        api.hsa_memory_free(h->kernargs[i]);
    }
    api.hsa_memory_free(h->act);
    api.hsa_memory_free(h->weights);
    free(h->objects);
    free(h->group);
    free(h->private_);
    free(h->kernargs);
    free(h);
}
