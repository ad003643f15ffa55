/* The launcher: runs the compiled model linked into this executable.
 * See `--help`; the ABI with the model object is kiln_model.h. */
#include "bench.h"
#include "buckets.h"
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

/* The shape bucket the --input files fit; for serve the largest (serve opens the others beside it);
 * the first (kiln_model) for --info, --idx and runs without inputs. */
static struct bucket_choice choose_bucket(const struct options *o)
{
    struct bucket_set set = buckets_linked(&kiln_model);
    if (o->serve) {
        return (struct bucket_choice){set.models[set.count - 1], 0};
    }
    if (set.count == 1 || o->info || o->idx_images != NULL || o->n_inputs == 0) {
        return (struct bucket_choice){&kiln_model, 0};
    }
    struct input_shape *shapes = calloc(kiln_model.n_inputs + 1, sizeof *shapes);
    if (shapes == NULL) {
        fail("out of memory");
    }
    inputs_shapes(&kiln_model, o, shapes);
    struct bucket_choice choice = bucket_select(set, shapes);
    free(shapes);
    return choice;
}

/* ", shape bucket batch 4 (input batch 3, zero-padded)" after the choice line, when there are buckets. */
static void describe_bucket(const struct bucket_choice *bucket, char *line, size_t size)
{
    const kiln_model_desc *m = bucket->model;
    if (buckets_linked(&kiln_model).count == 1 || m->n_inputs == 0 || m->inputs[0].rank == 0) {
        return;
    }
    size_t used = strlen(line);
    used += (size_t)snprintf(line + used, size - used, ", shape bucket batch %lld",
                             (long long)m->inputs[0].shape[0]);
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

/* tpu and cpu-xla: the StableHLO program from share/<platform>/ through the PJRT plugin. */
static void run_pjrt(const struct options *o, const struct platform_choice *platform,
                     const struct cpu_features *cpu)
{
    struct pjrt_model model;
    pjrt_model_load(&model, platform->name);
    char *path = pjrt_plugin_path(platform->name);
    struct pjrt_plugin plugin;
    char why[1024];
    if (!pjrt_plugin_open(&plugin, path, why, sizeof why)) {
        fail("%s", why);
    }
    struct session s;
    session_open(&s, &model.desc, NULL, o->weights != NULL ? o->weights : model.weights_path, 1);
    struct pjrt_session pjrt;
    pjrt_session_open(&pjrt, &plugin, &model, s.weights.data, o->cache_dir);
    s.pjrt = &pjrt;
    snprintf(s.choice, sizeof s.choice, "platform %s (%s), PJRT C API %d.%d, program %s in %.0f ms",
             platform->name, platform->reason, plugin.major, plugin.minor, pjrt.compiled_how,
             pjrt.startup_ms);
    run(&s, o, platform, cpu);
    pjrt_session_close(&pjrt);
    session_close(&s);
    pjrt_model_free(&model);
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
    struct bucket_choice bucket = choose_bucket(&o);
    const kiln_variant_desc *variant = variant_select(bucket.model, &cpu);
    struct session s;
    session_open(&s, bucket.model, variant, o.weights, o.threads ? o.threads : pool_default_threads());
    s.rows = bucket.rows;
    describe_choice(&platform, variant, s.choice, sizeof s.choice);
    describe_bucket(&bucket, s.choice, sizeof s.choice);
    struct gpu_session gpu;
    bool on_gpu = strcmp(platform.name, "cuda") == 0 || strcmp(platform.name, "rocm") == 0;
    if (on_gpu) {
        gpu_session_open(&gpu, platform.name, &s);
        s.gpu = &gpu;
        snprintf(s.choice, sizeof s.choice, "platform %s (%s), %s", platform.name, platform.reason, gpu.how);
    }
    run(&s, &o, &platform, &cpu);
    if (on_gpu) {
        gpu_session_close(&gpu);
    }
    session_close(&s);
    return 0;
}
