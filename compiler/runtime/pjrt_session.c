#define _POSIX_C_SOURCE 200809L
#include "pjrt_session.h"

#include "errors.h"
#include "pjrt_program.h"
#include "tensor.h"

#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static void create_client(struct pjrt_session *s)
{
    const PJRT_Api *api = s->plugin->api;
    PJRT_Client_Create_Args create = PJRT_ARGS(PJRT_Client_Create_Args);
    pjrt_check(api, api->PJRT_Client_Create(&create), "creating the PJRT client");
    s->client = create.client;
    PJRT_Client_AddressableDevices_Args devices = PJRT_ARGS(PJRT_Client_AddressableDevices_Args);
    devices.client = s->client;
    pjrt_check(api, api->PJRT_Client_AddressableDevices(&devices), "listing PJRT devices");
    if (devices.num_addressable_devices == 0) {
        fail("the PJRT plugin %s found no device", s->plugin->path);
    }
    s->device = devices.addressable_devices[0];
}

static PJRT_Buffer *upload(struct pjrt_session *s, const void *data, int type, const int64_t *dims,
                           uint32_t rank, const char *what)
{
    const PJRT_Api *api = s->plugin->api;
    PJRT_Client_BufferFromHostBuffer_Args args = PJRT_ARGS(PJRT_Client_BufferFromHostBuffer_Args);
    args.client = s->client;
    args.data = data;
    args.type = type;
    args.dims = dims;
    args.num_dims = rank;
    args.host_buffer_semantics = PJRT_HostBufferSemantics_kImmutableOnlyDuringCall;
    args.device = s->device;
    pjrt_check(api, api->PJRT_Client_BufferFromHostBuffer(&args), what);
    pjrt_await(api, args.done_with_host_buffer, what);
    return args.buffer;
}

static void destroy_buffer(const PJRT_Api *api, PJRT_Buffer *buffer)
{
    PJRT_Buffer_Destroy_Args args = PJRT_ARGS(PJRT_Buffer_Destroy_Args);
    args.buffer = buffer;
    pjrt_check(api, api->PJRT_Buffer_Destroy(&args), "freeing a device buffer");
}

/* bool weights are stored as BOOL in safetensors and as PRED on the device. */
static int weight_type(const kiln_weight_desc *w)
{
    switch (w->dtype) {
    case KILN_F32: return PJRT_Buffer_Type_F32;
    case KILN_I64: return PJRT_Buffer_Type_S64;
    case KILN_I32: return PJRT_Buffer_Type_S32;
    case KILN_I8: return PJRT_Buffer_Type_S8;
    case KILN_U8: return PJRT_Buffer_Type_U8;
    case KILN_F16: return PJRT_Buffer_Type_F16;
    case KILN_BF16: return PJRT_Buffer_Type_BF16;
    default: return PJRT_Buffer_Type_PRED;
    }
}

static void upload_weights(struct pjrt_session *s, const uint8_t *data)
{
    const kiln_model_desc *d = &s->model->desc;
    s->weights = calloc(d->n_weights + 1, sizeof *s->weights);
    if (s->weights == NULL) {
        fail("out of memory");
    }
    for (uint32_t i = 0; i < d->n_weights; i++) {
        const kiln_weight_desc *w = &d->weights[i];
        s->weights[i] = upload(s, data + w->offset, weight_type(w), w->shape, w->rank, "uploading weights");
    }
}

void pjrt_session_open(struct pjrt_session *s, const struct pjrt_plugin *plugin,
                       const struct pjrt_model *model, const uint8_t *weights, const char *cache_dir)
{
    *s = (struct pjrt_session){.plugin = plugin, .model = model};
    double start = now_ms();
    pjrt_plugin_initialize(plugin);
    create_client(s);
    s->executable = pjrt_program_load(plugin, s->client, model->program_path, cache_dir, &s->compiled_how);
    pjrt_program_check_outputs(plugin, s->executable, model->desc.n_outputs);
    upload_weights(s, weights);
    s->startup_ms = now_ms() - start;
}

static PJRT_Buffer **upload_arguments(struct pjrt_session *s, void *const *inputs)
{
    const struct pjrt_model *m = s->model;
    PJRT_Buffer **args = calloc(m->n_arguments + 1, sizeof *args);
    if (args == NULL) {
        fail("out of memory");
    }
    for (uint32_t i = 0; i < m->n_arguments; i++) {
        const struct pjrt_argument *a = &m->arguments[i];
        if (a->is_weight) {
            args[i] = s->weights[a->index];
            continue;
        }
        const kiln_tensor_desc *t = &m->desc.inputs[a->index];
        args[i] = upload(s, inputs[a->index], m->input_types[a->index], t->shape, t->rank, "uploading an input");
    }
    return args;
}

static void download(struct pjrt_session *s, PJRT_Buffer *buffer, void *dst, size_t bytes)
{
    const PJRT_Api *api = s->plugin->api;
    PJRT_Buffer_ToHostBuffer_Args args = PJRT_ARGS(PJRT_Buffer_ToHostBuffer_Args);
    args.src = buffer;
    args.dst = dst;
    args.dst_size = bytes;
    pjrt_check(api, api->PJRT_Buffer_ToHostBuffer(&args), "copying an output to the host");
    pjrt_await(api, args.event, "copying an output to the host");
}

static void execute(struct pjrt_session *s, PJRT_Buffer *const *args, PJRT_Buffer **results)
{
    const PJRT_Api *api = s->plugin->api;
    PJRT_ExecuteOptions options = PJRT_ARGS(PJRT_ExecuteOptions);
    PJRT_Event *done = NULL;
    PJRT_LoadedExecutable_Execute_Args run = PJRT_ARGS(PJRT_LoadedExecutable_Execute_Args);
    run.executable = s->executable;
    run.options = &options;
    run.argument_lists = &args;
    run.num_devices = 1;
    run.num_args = s->model->n_arguments;
    run.output_lists = &results;
    run.device_complete_events = &done;
    pjrt_check(api, api->PJRT_LoadedExecutable_Execute(&run), "running the model");
    pjrt_await(api, done, "running the model");
}

void pjrt_session_run(struct pjrt_session *s, void *const *inputs, void *const *outputs)
{
    const kiln_model_desc *d = &s->model->desc;
    PJRT_Buffer **args = upload_arguments(s, inputs);
    PJRT_Buffer **results = calloc(d->n_outputs + 1, sizeof *results);
    if (results == NULL) {
        fail("out of memory");
    }
    execute(s, args, results);
    for (uint32_t i = 0; i < d->n_outputs; i++) {
        download(s, results[i], outputs[i], tensor_bytes(&d->outputs[i]));
        destroy_buffer(s->plugin->api, results[i]);
    }
    for (uint32_t i = 0; i < s->model->n_arguments; i++) {
        if (!s->model->arguments[i].is_weight) {
            destroy_buffer(s->plugin->api, args[i]);
        }
    }
    free(results);
    free(args);
}

void pjrt_session_close(struct pjrt_session *s)
{
    const PJRT_Api *api = s->plugin->api;
    for (uint32_t i = 0; i < s->model->desc.n_weights; i++) {
        destroy_buffer(api, s->weights[i]);
    }
    free(s->weights);
    PJRT_LoadedExecutable_Destroy_Args exe = PJRT_ARGS(PJRT_LoadedExecutable_Destroy_Args);
    exe.executable = s->executable;
    pjrt_check(api, api->PJRT_LoadedExecutable_Destroy(&exe), "freeing the executable");
    PJRT_Client_Destroy_Args client = PJRT_ARGS(PJRT_Client_Destroy_Args);
    client.client = s->client;
    pjrt_check(api, api->PJRT_Client_Destroy(&client), "closing the PJRT client");
    *s = (struct pjrt_session){0};
}
