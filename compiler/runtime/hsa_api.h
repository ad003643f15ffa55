/* kiln's own declarations of the HSA 1.x API subset the launcher drives (the bundled runtime is
 * dlopen'ed, so no vendor header is needed to build). Names and values are the vendor's, from
 * hsa.h and hsa_ext_amd.h: tests/test_hsa_api.py compiles the pinned ROCm headers and checks every
 * constant, struct layout and function name below against them and the runtime .so. */
#ifndef KILN_HSA_API_H
#define KILN_HSA_API_H

#include <stddef.h>
#include <stdint.h>

typedef int hsa_status_t;
typedef struct { uint64_t handle; } hsa_agent_t, hsa_isa_t, hsa_signal_t, hsa_executable_t,
    hsa_code_object_reader_t, hsa_executable_symbol_t, hsa_amd_memory_pool_t;
typedef struct hsa_queue_s {
    uint32_t type, features;
    void *base_address;
    hsa_signal_t doorbell_signal;
    uint32_t size, reserved1;
    uint64_t id;
} hsa_queue_t;
typedef struct hsa_kernel_dispatch_packet_s {
    uint16_t header, setup, workgroup_size_x, workgroup_size_y, workgroup_size_z, reserved0;
    uint32_t grid_size_x, grid_size_y, grid_size_z, private_segment_size, group_segment_size;
    uint64_t kernel_object;
    void *kernarg_address;
    uint64_t reserved2;
    hsa_signal_t completion_signal;
} hsa_kernel_dispatch_packet_t;

enum {
    HSA_STATUS_INFO_BREAK = 1,
    HSA_AGENT_INFO_DEVICE = 17,
    HSA_AGENT_INFO_QUEUE_MAX_SIZE = 14,
    HSA_DEVICE_TYPE_CPU = 0,
    HSA_DEVICE_TYPE_GPU = 1,
    HSA_ISA_INFO_NAME = 1,
    HSA_AMD_MEMORY_POOL_INFO_SEGMENT = 0,
    HSA_AMD_MEMORY_POOL_INFO_GLOBAL_FLAGS = 1,
    HSA_AMD_MEMORY_POOL_INFO_RUNTIME_ALLOC_ALLOWED = 5,
    HSA_AMD_SEGMENT_GLOBAL = 0,
    HSA_AMD_MEMORY_POOL_GLOBAL_FLAG_KERNARG_INIT = 1,
    HSA_AMD_MEMORY_POOL_GLOBAL_FLAG_COARSE_GRAINED = 4,
    HSA_EXECUTABLE_SYMBOL_INFO_KERNEL_OBJECT = 22,
    HSA_EXECUTABLE_SYMBOL_INFO_KERNEL_KERNARG_SEGMENT_SIZE = 11,
    HSA_EXECUTABLE_SYMBOL_INFO_KERNEL_GROUP_SEGMENT_SIZE = 13,
    HSA_EXECUTABLE_SYMBOL_INFO_KERNEL_PRIVATE_SEGMENT_SIZE = 14,
    HSA_PROFILE_FULL = 1,
    HSA_DEFAULT_FLOAT_ROUNDING_MODE_DEFAULT = 0,
    HSA_QUEUE_TYPE_SINGLE = 1,
    HSA_SIGNAL_CONDITION_LT = 2,
    HSA_WAIT_STATE_BLOCKED = 0,
    HSA_PACKET_TYPE_KERNEL_DISPATCH = 2,
    HSA_PACKET_HEADER_BARRIER = 8,
    HSA_PACKET_HEADER_SCACQUIRE_FENCE_SCOPE = 9,
    HSA_PACKET_HEADER_SCRELEASE_FENCE_SCOPE = 11,
    HSA_FENCE_SCOPE_SYSTEM = 2,
    HSA_KERNEL_DISPATCH_PACKET_SETUP_DIMENSIONS = 0,
};

/* The functions that return hsa_status_t, then the others; each X(name, parameters). */
#define HSA_FUNCTIONS(X)                                                                                  \
    X(hsa_init, (void))                                                                                   \
    X(hsa_status_string, (hsa_status_t, const char **))                                                   \
    X(hsa_iterate_agents, (hsa_status_t (*)(hsa_agent_t, void *), void *))                               \
    X(hsa_agent_get_info, (hsa_agent_t, int, void *))                                                     \
    X(hsa_agent_iterate_isas, (hsa_agent_t, hsa_status_t (*)(hsa_isa_t, void *), void *))                \
    X(hsa_isa_get_info_alt, (hsa_isa_t, int, void *))                                                     \
    X(hsa_amd_agent_iterate_memory_pools, (hsa_agent_t, hsa_status_t (*)(hsa_amd_memory_pool_t, void *),  \
                                           void *))                                                       \
    X(hsa_amd_memory_pool_get_info, (hsa_amd_memory_pool_t, int, void *))                                 \
    X(hsa_amd_memory_pool_allocate, (hsa_amd_memory_pool_t, size_t, uint32_t, void **))                  \
    X(hsa_amd_memory_pool_free, (void *))                                                                 \
    X(hsa_amd_agents_allow_access, (uint32_t, const hsa_agent_t *, const uint32_t *, const void *))     \
    X(hsa_memory_copy, (void *, const void *, size_t))                                                    \
    X(hsa_code_object_reader_create_from_memory, (const void *, size_t, hsa_code_object_reader_t *))      \
    X(hsa_code_object_reader_destroy, (hsa_code_object_reader_t))                                         \
    X(hsa_executable_create_alt, (int, int, const char *, hsa_executable_t *))                            \
    X(hsa_executable_load_agent_code_object, (hsa_executable_t, hsa_agent_t, hsa_code_object_reader_t,   \
                                              const char *, void *))                                      \
    X(hsa_executable_freeze, (hsa_executable_t, const char *))                                            \
    X(hsa_executable_destroy, (hsa_executable_t))                                                         \
    X(hsa_executable_get_symbol_by_name, (hsa_executable_t, const char *, const hsa_agent_t *,           \
                                          hsa_executable_symbol_t *))                                     \
    X(hsa_executable_symbol_get_info, (hsa_executable_symbol_t, int, void *))                             \
    X(hsa_queue_create, (hsa_agent_t, uint32_t, int, void *, void *, uint32_t, uint32_t, hsa_queue_t **)) \
    X(hsa_queue_destroy, (hsa_queue_t *))                                                                 \
    X(hsa_signal_create, (int64_t, uint32_t, const hsa_agent_t *, hsa_signal_t *))                        \
    X(hsa_signal_destroy, (hsa_signal_t))
#define HSA_VALUE_FUNCTIONS(X)                                                       \
    X(uint64_t, hsa_queue_add_write_index_relaxed, (const hsa_queue_t *, uint64_t)) \
    X(uint64_t, hsa_queue_load_read_index_scacquire, (const hsa_queue_t *))          \
    X(void, hsa_signal_store_screlease, (hsa_signal_t, int64_t))                     \
    X(void, hsa_signal_store_relaxed, (hsa_signal_t, int64_t))                       \
    X(int64_t, hsa_signal_wait_scacquire, (hsa_signal_t, int, int64_t, uint64_t, int))

#endif
