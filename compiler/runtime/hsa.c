#define _GNU_SOURCE
#include "hsa.h"

#include "errors.h"
#include "files.h"
#include "hsa_api.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    hsa_agent_t gpu, cpu;
    hsa_amd_memory_pool_t device, kernarg; /* the GPU's own VRAM; host memory for kernel arguments */
    hsa_executable_t exe;
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

/* The first agent of a device type: hsa_iterate_agents with a struct agent_query. */
struct agent_query {
    int type;
    hsa_agent_t found;
};

static hsa_status_t find_type(hsa_agent_t agent, void *data)
{
    struct agent_query *q = data;
    int type = -1;
    api.hsa_agent_get_info(agent, HSA_AGENT_INFO_DEVICE, &type);
    if (type == q->type) {
        q->found = agent;
        return HSA_STATUS_INFO_BREAK;
    }
    return 0;
}

/* "amdgcn-amd-amdhsa--gfx90a:sramecc+:xnack-" -> "gfx90a" */
static hsa_status_t isa_name(hsa_isa_t isa, void *data)
{
    char name[128] = "";
    api.hsa_isa_get_info_alt(isa, HSA_ISA_INFO_NAME, name);
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
    struct agent_query query = {.type = HSA_DEVICE_TYPE_GPU};
    api.hsa_iterate_agents(find_type, &query);
    *gpu = query.found;
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

/* The first global pool the runtime may allocate from whose flags include *data's flags. */
struct pool_query {
    uint32_t flags;
    hsa_amd_memory_pool_t found;
};

static hsa_status_t pick_pool(hsa_amd_memory_pool_t pool, void *data)
{
    struct pool_query *q = data;
    int segment = -1;
    uint32_t flags = 0;
    bool allowed = false;
    api.hsa_amd_memory_pool_get_info(pool, HSA_AMD_MEMORY_POOL_INFO_SEGMENT, &segment);
    api.hsa_amd_memory_pool_get_info(pool, HSA_AMD_MEMORY_POOL_INFO_GLOBAL_FLAGS, &flags);
    api.hsa_amd_memory_pool_get_info(pool, HSA_AMD_MEMORY_POOL_INFO_RUNTIME_ALLOC_ALLOWED, &allowed);
    if (segment == HSA_AMD_SEGMENT_GLOBAL && (flags & q->flags) == q->flags && allowed) {
        q->found = pool;
        return HSA_STATUS_INFO_BREAK;
    }
    return 0;
}

static hsa_amd_memory_pool_t agent_pool(hsa_agent_t agent, uint32_t flags, const char *what)
{
    struct pool_query q = {.flags = flags};
    CHECK(hsa_amd_agent_iterate_memory_pools(agent, pick_pool, &q));
    if (q.found.handle == 0) {
        fail("rocm: the runtime offers no %s memory pool", what);
    }
    return q.found;
}

static void *device_alloc(struct hsa *h, size_t bytes)
{
    void *p;
    CHECK(hsa_amd_memory_pool_allocate(h->device, bytes ? bytes : 1, 0, &p));
    return p;
}

/* Kernel arguments live in host memory the GPU is then allowed to read. */
static void *kernarg_alloc(struct hsa *h, size_t bytes)
{
    void *p;
    CHECK(hsa_amd_memory_pool_allocate(h->kernarg, bytes, 0, &p));
    CHECK(hsa_amd_agents_allow_access(1, &h->gpu, NULL, p));
    return p;
}

static void load_code(struct hsa *h, const char *path)
{
    size_t size;
    uint8_t *code = read_file(path, &size);
    hsa_code_object_reader_t reader;
    CHECK(hsa_code_object_reader_create_from_memory(code, size, &reader));
    CHECK(hsa_executable_create_alt(HSA_PROFILE_FULL, HSA_DEFAULT_FLOAT_ROUNDING_MODE_DEFAULT, NULL, &h->exe));
    CHECK(hsa_executable_load_agent_code_object(h->exe, h->gpu, reader, NULL, NULL));
    CHECK(hsa_executable_freeze(h->exe, NULL));
    CHECK(hsa_code_object_reader_destroy(reader));
    free(code);
}

static void find_kernels(struct hsa *h)
{
    int n = h->m->n_kernels;
    h->objects = calloc((size_t)n + 1, sizeof *h->objects);
    h->group = calloc((size_t)n + 1, sizeof *h->group);
    h->private_ = calloc((size_t)n + 1, sizeof *h->private_);
    h->kernargs = calloc((size_t)n + 1, sizeof *h->kernargs);
    for (int i = 0; i < n; i++) {
        char symbol[160];
        hsa_executable_symbol_t sym;
        uint32_t kernarg_size = 0;
        snprintf(symbol, sizeof symbol, "%s.kd", h->m->kernels[i].name);
        CHECK(hsa_executable_get_symbol_by_name(h->exe, symbol, &h->gpu, &sym));
        CHECK(hsa_executable_symbol_get_info(sym, HSA_EXECUTABLE_SYMBOL_INFO_KERNEL_OBJECT, &h->objects[i]));
        CHECK(hsa_executable_symbol_get_info(sym, HSA_EXECUTABLE_SYMBOL_INFO_KERNEL_KERNARG_SEGMENT_SIZE,
                                             &kernarg_size));
        CHECK(hsa_executable_symbol_get_info(sym, HSA_EXECUTABLE_SYMBOL_INFO_KERNEL_GROUP_SEGMENT_SIZE, &h->group[i]));
        CHECK(hsa_executable_symbol_get_info(sym, HSA_EXECUTABLE_SYMBOL_INFO_KERNEL_PRIVATE_SEGMENT_SIZE,
                                             &h->private_[i]));
        void *args[2] = {h->weights, h->act};
        h->kernargs[i] = kernarg_alloc(h, kernarg_size > sizeof args ? kernarg_size : sizeof args);
        memcpy(h->kernargs[i], args, sizeof args);
    }
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
    struct agent_query cpu = {.type = HSA_DEVICE_TYPE_CPU};
    CHECK(hsa_iterate_agents(find_type, &cpu));
    h->cpu = cpu.found;
    h->device = agent_pool(h->gpu, HSA_AMD_MEMORY_POOL_GLOBAL_FLAG_COARSE_GRAINED, "GPU");
    h->kernarg = agent_pool(h->cpu, HSA_AMD_MEMORY_POOL_GLOBAL_FLAG_KERNARG_INIT, "kernel argument");
    char *path = path_join(m->dir, gpu_model_code_file(m, isa));
    load_code(h, path);
    free(path);
    h->weights = device_alloc(h, m->weights_bytes);
    h->act = device_alloc(h, m->activation_bytes);
    if (m->weights_bytes) {
        CHECK(hsa_memory_copy(h->weights, weights, m->weights_bytes));
    }
    find_kernels(h);
    uint32_t queue_size = 0;
    CHECK(hsa_agent_get_info(h->gpu, HSA_AGENT_INFO_QUEUE_MAX_SIZE, &queue_size));
    CHECK(hsa_queue_create(h->gpu, queue_size < 1024 ? queue_size : 1024, HSA_QUEUE_TYPE_SINGLE, NULL, NULL,
                           UINT32_MAX, UINT32_MAX, &h->queue));
    CHECK(hsa_signal_create(1, 0, NULL, &h->done));
    snprintf(how, how_size, "%s, %s", isa, gpu_model_code_file(m, isa));
    return h;
}

static void dispatch(struct hsa *h, int i, bool last)
{
    hsa_queue_t *q = h->queue;
    uint64_t index = api.hsa_queue_add_write_index_relaxed(q, 1);
    while (index - api.hsa_queue_load_read_index_scacquire(q) >= q->size) {
        /* the ring is full: the packet processor has not consumed the packet in this slot yet */
    }
    hsa_kernel_dispatch_packet_t *p = (hsa_kernel_dispatch_packet_t *)q->base_address + (index & (q->size - 1));
    memset((uint8_t *)p + 4, 0, sizeof *p - 4);
    p->setup = 1 << HSA_KERNEL_DISPATCH_PACKET_SETUP_DIMENSIONS;  /* one dimension */
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
    uint16_t header = HSA_PACKET_TYPE_KERNEL_DISPATCH | 1 << HSA_PACKET_HEADER_BARRIER |
                      HSA_FENCE_SCOPE_SYSTEM << HSA_PACKET_HEADER_SCACQUIRE_FENCE_SCOPE |
                      HSA_FENCE_SCOPE_SYSTEM << HSA_PACKET_HEADER_SCRELEASE_FENCE_SCOPE;
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
    while (m->n_kernels &&
           api.hsa_signal_wait_scacquire(h->done, HSA_SIGNAL_CONDITION_LT, 1, UINT64_MAX, HSA_WAIT_STATE_BLOCKED) != 0) {
    }
    for (int i = 0; i < m->n_outputs; i++) {
        CHECK(hsa_memory_copy(outputs[i], (uint8_t *)h->act + m->outputs[i], out_bytes[i]));
    }
}

void hsa_close(struct hsa *h)
{
    for (int i = 0; i < h->m->n_kernels; i++) {
        api.hsa_amd_memory_pool_free(h->kernargs[i]);
    }
    api.hsa_amd_memory_pool_free(h->act);
    api.hsa_amd_memory_pool_free(h->weights);
    api.hsa_signal_destroy(h->done);
    api.hsa_queue_destroy(h->queue);
    api.hsa_executable_destroy(h->exe);
    free(h->objects);
    free(h->group);
    free(h->private_);
    free(h->kernargs);
    free(h);
}
