/* The launcher: runs the compiled model linked into this executable.
 * See `--help`; the ABI with the model object is kiln_model.h. */
#include "bench.h"
#include "buckets.h"
#include "tensor.h"
#include "cpu_features.h"
#include "dataset.h"
#include "errors.h"
#include "gpu_session.h"
#include "inputs.h"
#include "options.h"
#include "outputs.h"
#include "pjrt_session.h"
#include "platform.h"
#include "pool.h"
#include "report.h"
#include "serve.h"
#include "session.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_abi(const kiln_model_desc *m)
{
    if (m->abi_version != KILN_ABI_VERSION) {
        fail("model object has ABI version %u, this launcher speaks %u; rebuild both with one kiln",
             m->abi_version, KILN_ABI_VERSION);
    }
}

/* The one stderr line saying what runs the model, and why; printed when the
 * model first runs, so a rejected input still gets a one-line answer. */
static void describe_choice(const struct platform_choice *platform, const kiln_variant_desc *variant,
                            char *line, size_t size)
{
    char features[128];
    cpu_mask_names(variant->required_features, features, sizeof features);
    snprintf(line, size, "platform %s (%s), cpu variant %s (%s)", platform->name, platform->reason,
             variant->name, features);
}

/* The shape bucket (of `set`, the first the whole model's) the --input files fit; for serve the
 * largest (serve opens the others beside it); the first for --info, --idx and runs without inputs.
 * The same choice on every platform. *given: the inputs' shapes when a non-leading dim is padded
 * (the caller frees them), else NULL. */
static struct bucket_choice choose_bucket(struct bucket_set set, const struct options *o,
                                          struct input_shape **given)
{
    const kiln_model_desc *first = set.models[0];
    *given = NULL;
    if (o->serve) {
        return (struct bucket_choice){set.models[set.count - 1], 0};
    }
    if (set.count == 1 || o->info || o->idx_images != NULL || o->n_inputs == 0) {
        return (struct bucket_choice){first, 0};
    }
    struct input_shape *shapes = calloc(first->n_inputs + 1, sizeof *shapes);
    if (shapes == NULL) {
        fail("out of memory");
    }
    inputs_shapes(first, o, shapes);
    struct bucket_choice choice = bucket_select(set, shapes);
    if (choice.padded) {
        *given = shapes;
    } else {
        free(shapes);
    }
    return choice;
}

/* The chosen bucket's batch when there are several (its leading input dim), else 0. */
static int64_t bucket_batch(struct bucket_set set, const struct bucket_choice *bucket)
{
    const kiln_model_desc *m = bucket->model;
    return set.count > 1 && m->n_inputs > 0 && m->inputs[0].rank > 0 ? m->inputs[0].shape[0] : 0;
}

/* ", shape bucket batch 4 (input batch 3, zero-padded)" after the choice line, when there are buckets. */
static void describe_bucket(struct bucket_set set, const struct bucket_choice *bucket, char *line, size_t size)
{
    int64_t batch = bucket_batch(set, bucket);
    if (batch == 0) {
        return;
    }
    size_t used = strlen(line);
    if (bucket->padded) {
        const kiln_model_desc *m = bucket->model;
        char shape[160];
        format_shape(m->inputs[0].shape, m->inputs[0].rank, shape, sizeof shape);
        snprintf(line + used, size - used, ", shape bucket %s %s (inputs padded)", m->inputs[0].name, shape);
        return;
    }
    used += (size_t)snprintf(line + used, size - used, ", shape bucket batch %lld", (long long)batch);
    if (bucket->rows > 0 && used < size) {
        snprintf(line + used, size - used, " (input batch %lld, zero-padded)", (long long)bucket->rows);
    }
}

/* --input/--pgm files in, one run (or --bench runs), outputs out. */
static void run_inputs(struct session *s, const struct options *o)
{
    inputs_load(s, o);
    if (o->bench > 0) {
        bench_run(s, o->bench);
    } else {
        session_run(s);
    }
    if (o->bench == 0 || o->n_outputs > 0) {
        outputs_deliver(s, o);
    }
}

/* serve, --info, --idx, or --input runs, on an open session. */
static void run(struct session *s, const struct options *o, const struct platform_choice *platform,
                const struct cpu_features *cpu)
{
    if (o->serve) {
        serve_run(s, o, platform->name);
    } else if (o->info) {
        note("%s", s->choice);
        report_info(s, platform, cpu);
        platform_report_plugins();
    } else if (o->idx_images != NULL) {
        dataset_run(s, o);
    } else {
        run_inputs(s, o);
    }
}

/* Every PJRT model's descriptor, as the bucket set bucket_select chooses from. */
static struct bucket_set pjrt_buckets(const struct pjrt_model *models, uint32_t count)
{
    const kiln_model_desc **descs = calloc(count, sizeof *descs);
    if (descs == NULL) {
        fail("out of memory");
    }
    for (uint32_t b = 0; b < count; b++) {
        descs[b] = &models[b].desc;
    }
    return (struct bucket_set){descs, count};
}

static struct pjrt_model *pjrt_chosen(struct pjrt_model *models, uint32_t count, const kiln_model_desc *desc)
{
    for (uint32_t b = 0; b < count; b++) {
        if (&models[b].desc == desc) {
            return &models[b];
        }
    }
    return &models[0];
}

/* tpu and cpu-xla: the StableHLO program of the chosen shape bucket from share/<platform>/ through
 * the PJRT plugin. */
static void run_pjrt(const struct options *o, const struct platform_choice *platform,
                     const struct cpu_features *cpu)
{
    uint32_t count;
    struct pjrt_model *models = pjrt_model_load(platform->name, &count);
    struct bucket_set set = pjrt_buckets(models, count);
    struct input_shape *given;
    struct bucket_choice bucket = choose_bucket(set, o, &given);
    struct pjrt_model *model = pjrt_chosen(models, count, bucket.model);
    char *path = pjrt_plugin_path(platform->name);
    struct pjrt_plugin plugin;
    char why[1024];
    if (!pjrt_plugin_open(&plugin, path, why, sizeof why)) {
        fail("%s", why);
    }
    struct session s;
    session_open(&s, &model->desc, NULL, o->weights != NULL ? o->weights : model->weights_path, 1);
    s.rows = bucket.rows;
    s.given = given;
    struct pjrt_session pjrt;
    pjrt_session_open(&pjrt, &plugin, model, s.weights.data, o->cache_dir);
    s.pjrt = &pjrt;
    snprintf(s.choice, sizeof s.choice, "platform %s (%s), PJRT C API %d.%d, program %s in %.0f ms",
             platform->name, platform->reason, plugin.major, plugin.minor, pjrt.compiled_how,
             pjrt.startup_ms);
    describe_bucket(set, &bucket, s.choice, sizeof s.choice);
    run(&s, o, platform, cpu);
    pjrt_session_close(&pjrt);
    session_close(&s);
    free((void *)set.models);
    pjrt_model_free(models, count);
    free(path);
}

int main(int argc, char **argv)
{
    struct options o;
    options_parse(&o, argc, argv);
    if (o.serve) {
        serve_tune_malloc(argv);
    }
    check_abi(&kiln_model);
    struct platform_choice platform = platform_choose(o.platform);
    struct cpu_features cpu;
    cpu_features_detect(&cpu);
    if (platform.pjrt) {
        run_pjrt(&o, &platform, &cpu);
        return 0;
    }
    struct bucket_set set = buckets_linked(&kiln_model);
    struct input_shape *given;
    struct bucket_choice bucket = choose_bucket(set, &o, &given);
    const kiln_variant_desc *variant = variant_select(bucket.model, &cpu);
    struct session s;
    session_open(&s, bucket.model, variant, o.weights, o.threads ? o.threads : pool_default_threads());
    s.rows = bucket.rows;
    s.given = given;
    describe_choice(&platform, variant, s.choice, sizeof s.choice);
    struct gpu_session gpu;
    bool on_gpu = strcmp(platform.name, "cuda") == 0 || strcmp(platform.name, "rocm") == 0;
    if (on_gpu) {
        gpu_session_open(&gpu, platform.name, &s, bucket_batch(set, &bucket));
        s.gpu = &gpu;
        snprintf(s.choice, sizeof s.choice, "platform %s (%s), %s", platform.name, platform.reason, gpu.how);
    }
    describe_bucket(set, &bucket, s.choice, sizeof s.choice);
    run(&s, &o, &platform, &cpu);
    if (on_gpu) {
        gpu_session_close(&gpu);
    }
    session_close(&s);
    free(given);
    return 0;
}
