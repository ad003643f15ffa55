/* The part of the PJRT C API the launcher uses, declared from the public API
 * documentation (xla/pjrt/c/pjrt_c_api.h in OpenXLA, API version 0.113).
 *
 * Rules of the API this relies on: a plugin exports `const PJRT_Api *GetPjrtApi(void)`;
 * every argument struct starts with `struct_size` (set by the caller to the size it
 * was built with) and an extension pointer; fields of argument structs and of the
 * function table are only ever appended within one major version, so a table from a
 * newer minor version has everything below at the same offsets. A function added
 * after 0.0 must be checked against the table's own `struct_size` (PJRT_API_HAS). */
#ifndef KILN_PJRT_API_H
#define KILN_PJRT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KILN_PJRT_MAJOR 0
#define KILN_PJRT_MINOR 113

#define PJRT_ARGS(type) ((type){.struct_size = sizeof(type)})

typedef struct PJRT_Error PJRT_Error;
typedef struct PJRT_Event PJRT_Event;
typedef struct PJRT_Client PJRT_Client;
typedef struct PJRT_Device PJRT_Device;
typedef struct PJRT_Memory PJRT_Memory;
typedef struct PJRT_Executable PJRT_Executable;
typedef struct PJRT_LoadedExecutable PJRT_LoadedExecutable;
typedef struct PJRT_Buffer PJRT_Buffer;
typedef struct PJRT_SerializedExecutable PJRT_SerializedExecutable;
typedef struct PJRT_Extension_Base PJRT_Extension_Base;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    int major_version;
    int minor_version;
} PJRT_Api_Version;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Error *error;
} PJRT_Error_Destroy_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    const PJRT_Error *error;
    const char *message;  /* out, lives as long as `error` */
    size_t message_size;  /* out */
} PJRT_Error_Message_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
} PJRT_Plugin_Initialize_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Event *event;
} PJRT_Event_Args;  /* PJRT_Event_Destroy_Args and PJRT_Event_Await_Args share this layout */

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    const void *create_options;  /* PJRT_NamedValue[]; none */
    size_t num_options;
    void *kv_get_callback;
    void *kv_get_user_arg;
    void *kv_put_callback;
    void *kv_put_user_arg;
    PJRT_Client *client;  /* out */
    void *kv_try_get_callback;
    void *kv_try_get_user_arg;
} PJRT_Client_Create_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Client *client;
} PJRT_Client_Destroy_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Client *client;
    const char *text;  /* out: platform name or version, owned by the client */
    size_t text_size;
} PJRT_Client_String_Args;  /* PJRT_Client_PlatformName_Args and ..._PlatformVersion_Args */

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Client *client;
    PJRT_Device *const *addressable_devices;  /* out */
    size_t num_addressable_devices;
} PJRT_Client_AddressableDevices_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    char *code;
    size_t code_size;
    const char *format;  /* "mlir": MLIR bytecode or text */
    size_t format_size;
} PJRT_Program;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Client *client;
    const PJRT_Program *program;
    const char *compile_options;  /* serialized xla.CompileOptionsProto */
    size_t compile_options_size;
    PJRT_LoadedExecutable *executable;  /* out */
} PJRT_Client_Compile_Args;

enum { PJRT_Buffer_Type_PRED = 1, PJRT_Buffer_Type_S8 = 2, PJRT_Buffer_Type_S32 = 4,
       PJRT_Buffer_Type_S64 = 5, PJRT_Buffer_Type_U8 = 6, PJRT_Buffer_Type_F16 = 10,
       PJRT_Buffer_Type_F32 = 11, PJRT_Buffer_Type_BF16 = 13 };

enum { PJRT_HostBufferSemantics_kImmutableOnlyDuringCall = 0 };

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Client *client;
    const void *data;
    int type;  /* PJRT_Buffer_Type */
    const int64_t *dims;
    size_t num_dims;
    const int64_t *byte_strides;
    size_t num_byte_strides;
    int host_buffer_semantics;
    PJRT_Device *device;
    PJRT_Memory *memory;
    void *device_layout;
    PJRT_Event *done_with_host_buffer;  /* out */
    PJRT_Buffer *buffer;                /* out */
} PJRT_Client_BufferFromHostBuffer_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    void **send_callbacks;
    void **recv_callbacks;
    size_t num_send_ops;
    size_t num_recv_ops;
    int launch_id;
    const int64_t *non_donatable_input_indices;
    size_t num_non_donatable_input_indices;
    void *context;
    const char *call_location;
    size_t num_tasks;
    int *task_ids;
    int64_t *incarnation_ids;
    void *multi_slice_config;
    bool use_major_to_minor_data_layout_for_callbacks;
    void *hlo_output_callbacks;
    size_t num_hlo_output_callbacks;
} PJRT_ExecuteOptions;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_LoadedExecutable *executable;
    PJRT_ExecuteOptions *options;
    PJRT_Buffer *const *const *argument_lists;  /* [num_devices][num_args] */
    size_t num_devices;
    size_t num_args;
    PJRT_Buffer **const *output_lists;  /* [num_devices][num_outputs], filled by the plugin */
    PJRT_Event **device_complete_events;
    PJRT_Device *execute_device;
} PJRT_LoadedExecutable_Execute_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_LoadedExecutable *executable;
} PJRT_LoadedExecutable_Destroy_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_LoadedExecutable *loaded_executable;
    PJRT_Executable *executable;  /* out, destroy with PJRT_Executable_Destroy */
} PJRT_LoadedExecutable_GetExecutable_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Executable *executable;
} PJRT_Executable_Destroy_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Executable *executable;
    size_t num_outputs;  /* out */
} PJRT_Executable_NumOutputs_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    const PJRT_Executable *executable;
    const char *serialized_bytes;  /* out, lives as long as serialized_executable */
    size_t serialized_bytes_size;
    PJRT_SerializedExecutable *serialized_executable;
    void (*serialized_executable_deleter)(PJRT_SerializedExecutable *exec);
} PJRT_Executable_Serialize_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Client *client;
    const char *serialized_executable;
    size_t serialized_executable_size;
    PJRT_LoadedExecutable *loaded_executable;  /* out */
    const char *overridden_serialized_compile_options;
    size_t overridden_serialized_compile_options_size;
    void *load_options;
} PJRT_Executable_DeserializeAndLoad_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Buffer *buffer;
} PJRT_Buffer_Destroy_Args;

typedef struct {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Buffer *src;
    void *host_layout;
    void *dst;
    size_t dst_size;
    PJRT_Event *event;  /* out */
} PJRT_Buffer_ToHostBuffer_Args;

typedef void *PJRT_Unused;

/* The function table, in the documented order. Entries the launcher never calls
 * are untyped; they only hold their place. */
typedef struct PJRT_Api {
    size_t struct_size;
    PJRT_Extension_Base *extension_start;
    PJRT_Api_Version pjrt_api_version;

    void (*PJRT_Error_Destroy)(PJRT_Error_Destroy_Args *args);
    void (*PJRT_Error_Message)(PJRT_Error_Message_Args *args);
    PJRT_Unused PJRT_Error_GetCode;
    PJRT_Error *(*PJRT_Plugin_Initialize)(PJRT_Plugin_Initialize_Args *args);
    PJRT_Unused PJRT_Plugin_Attributes;
    PJRT_Error *(*PJRT_Event_Destroy)(PJRT_Event_Args *args);
    PJRT_Unused PJRT_Event_IsReady;
    PJRT_Unused PJRT_Event_Error;
    PJRT_Error *(*PJRT_Event_Await)(PJRT_Event_Args *args);
    PJRT_Unused PJRT_Event_OnReady;

    PJRT_Error *(*PJRT_Client_Create)(PJRT_Client_Create_Args *args);
    PJRT_Error *(*PJRT_Client_Destroy)(PJRT_Client_Destroy_Args *args);
    PJRT_Error *(*PJRT_Client_PlatformName)(PJRT_Client_String_Args *args);
    PJRT_Unused PJRT_Client_ProcessIndex;
    PJRT_Error *(*PJRT_Client_PlatformVersion)(PJRT_Client_String_Args *args);
    PJRT_Unused PJRT_Client_Devices;
    PJRT_Error *(*PJRT_Client_AddressableDevices)(PJRT_Client_AddressableDevices_Args *args);
    PJRT_Unused PJRT_Client_LookupDevice;
    PJRT_Unused PJRT_Client_LookupAddressableDevice;
    PJRT_Unused PJRT_Client_AddressableMemories;
    PJRT_Error *(*PJRT_Client_Compile)(PJRT_Client_Compile_Args *args);
    PJRT_Unused PJRT_Client_DefaultDeviceAssignment;
    PJRT_Error *(*PJRT_Client_BufferFromHostBuffer)(PJRT_Client_BufferFromHostBuffer_Args *args);

    PJRT_Unused PJRT_DeviceDescription_Id;
    PJRT_Unused PJRT_DeviceDescription_ProcessIndex;
    PJRT_Unused PJRT_DeviceDescription_Attributes;
    PJRT_Unused PJRT_DeviceDescription_Kind;
    PJRT_Unused PJRT_DeviceDescription_DebugString;
    PJRT_Unused PJRT_DeviceDescription_ToString;
    PJRT_Unused PJRT_Device_GetDescription;
    PJRT_Unused PJRT_Device_IsAddressable;
    PJRT_Unused PJRT_Device_LocalHardwareId;
    PJRT_Unused PJRT_Device_AddressableMemories;
    PJRT_Unused PJRT_Device_DefaultMemory;
    PJRT_Unused PJRT_Device_MemoryStats;
    PJRT_Unused PJRT_Memory_Id;
    PJRT_Unused PJRT_Memory_Kind;
    PJRT_Unused PJRT_Memory_DebugString;
    PJRT_Unused PJRT_Memory_ToString;
    PJRT_Unused PJRT_Memory_AddressableByDevices;

    PJRT_Error *(*PJRT_Executable_Destroy)(PJRT_Executable_Destroy_Args *args);
    PJRT_Unused PJRT_Executable_Name;
    PJRT_Unused PJRT_Executable_NumReplicas;
    PJRT_Unused PJRT_Executable_NumPartitions;
    PJRT_Error *(*PJRT_Executable_NumOutputs)(PJRT_Executable_NumOutputs_Args *args);
    PJRT_Unused PJRT_Executable_SizeOfGeneratedCodeInBytes;
    PJRT_Unused PJRT_Executable_GetCostAnalysis;
    PJRT_Unused PJRT_Executable_OutputMemoryKinds;
    PJRT_Unused PJRT_Executable_OptimizedProgram;
    PJRT_Error *(*PJRT_Executable_Serialize)(PJRT_Executable_Serialize_Args *args);

    PJRT_Error *(*PJRT_LoadedExecutable_Destroy)(PJRT_LoadedExecutable_Destroy_Args *args);
    PJRT_Error *(*PJRT_LoadedExecutable_GetExecutable)(PJRT_LoadedExecutable_GetExecutable_Args *args);
    PJRT_Unused PJRT_LoadedExecutable_AddressableDevices;
    PJRT_Unused PJRT_LoadedExecutable_Delete;
    PJRT_Unused PJRT_LoadedExecutable_IsDeleted;
    PJRT_Error *(*PJRT_LoadedExecutable_Execute)(PJRT_LoadedExecutable_Execute_Args *args);
    PJRT_Error *(*PJRT_Executable_DeserializeAndLoad)(PJRT_Executable_DeserializeAndLoad_Args *args);
    PJRT_Unused PJRT_LoadedExecutable_Fingerprint;

    PJRT_Error *(*PJRT_Buffer_Destroy)(PJRT_Buffer_Destroy_Args *args);
    PJRT_Unused PJRT_Buffer_ElementType;
    PJRT_Unused PJRT_Buffer_Dimensions;
    PJRT_Unused PJRT_Buffer_UnpaddedDimensions;
    PJRT_Unused PJRT_Buffer_DynamicDimensionIndices;
    PJRT_Unused PJRT_Buffer_GetMemoryLayout;
    PJRT_Unused PJRT_Buffer_OnDeviceSizeInBytes;
    PJRT_Unused PJRT_Buffer_Device;
    PJRT_Unused PJRT_Buffer_Memory;
    PJRT_Unused PJRT_Buffer_Delete;
    PJRT_Unused PJRT_Buffer_IsDeleted;
    PJRT_Unused PJRT_Buffer_CopyToDevice;
    PJRT_Error *(*PJRT_Buffer_ToHostBuffer)(PJRT_Buffer_ToHostBuffer_Args *args);
} PJRT_Api;

/* True when the plugin's table reaches `field` and fills it. */
#define PJRT_API_HAS(api, field)                                                         \
    (offsetof(PJRT_Api, field) + sizeof((api)->field) <= (api)->struct_size && (api)->field != NULL)

#endif
