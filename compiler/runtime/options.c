#include "options.h"

#include "errors.h"
#include "kiln_model.h"
#include "pool.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_usage(const char *program)
{
    printf("usage: %s [options]\n"
           "       %s serve [--host ADDR] [--port N] [options]\n"
           "\n"
           "Runs the compiled model '%s'.\n"
           "\n"
           "  --input [NAME=]FILE   an input as .npy or binary PGM (NAME= may be left out\n"
           "                        for a single-input model); repeat per input\n"
           "  --pgm FILE            a binary PGM (P5) image as the input\n"
           "  --output [NAME=]FILE  write an output as .npy; without it the result is printed\n"
           "  --idx IMAGES          run every image of an IDX file (.gz is fine)\n"
           "  --labels LABELS       ... and print the accuracy against this IDX label file\n"
           "  --limit N, --offset N ... on N images / from image N\n"
           "  --bench N             time N runs after a warm-up (missing inputs are zeros)\n"
           "  --threads N|auto      threads to use (default auto: the cores this process may\n"
           "                        run on; a layer too small to share runs on one)\n"
           "  --platform NAME       auto, cpu, or a platform the bundle carries: cuda,\n"
           "                        rocm, tpu, cpu-xla (--info lists them)\n"
           "                        (default: $KILN_PLATFORM or auto)\n"
           "  --cache-dir DIR       tpu/cpu-xla: keep the compiled program here so a\n"
           "                        restart skips XLA compilation\n"
           "  --weights FILE        safetensors weights (default: $KILN_WEIGHTS, else\n"
           "                        ../weights/%s.safetensors beside the executable;\n"
           "                        tpu/cpu-xla: the file share/<platform>/manifest.json names)\n"
           "  --info                describe platform, CPU variant, model and weights\n"
           "\n"
           "serve: answer the Open Inference Protocol (KServe v2) over HTTP, /metrics too\n"
           "  --host ADDR           bind address (default 0.0.0.0)\n"
           "  --port N              port (default 8000)\n"
           "  --http-threads N      connections answered at once (default 64)\n"
           "  --max-request-bytes N largest request body (default 67108864)\n"
           "  --timeout-ms N        request read and keep-alive idle timeout (default 30000)\n"
           "  --lanes N             requests run side by side under load, at most N, each on\n"
           "                        threads/N threads, each in a scratch arena of its own\n"
           "                        (default: the threads, at most 4); a request alone runs on\n"
           "                        every thread; a run of several rows is split across the\n"
           "                        lanes where smaller shape buckets hold slices of it; 1: one\n"
           "                        request at a time, rows never split\n"
           "  --max-batch N         gather requests into batches of up to N rows (a model\n"
           "                        compiled with batch >= N, or shape buckets the largest of\n"
           "                        which is; each batch runs in the smallest bucket holding\n"
           "                        it, padded)\n"
           "  --batch-timeout-us N  how long a batch waits for requests being parsed (default 500)\n"
           "  --help                show this help\n"
           "\n"
           "Environment: KILN_PLATFORM, KILN_WEIGHTS, KILN_CPU_LEVEL (force a CPU variant),\n"
           "KILN_PJRT_PLUGIN (the PJRT plugin file), KILN_TPU_TIMEOUT (seconds, default 60).\n",
           program, program, kiln_model.model_name, kiln_model.model_name);
}

static long parse_count(const char *flag, const char *text, long min, long max)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        fail_usage("%s needs an integer from %ld to %ld, got '%s'", flag, min, max, text);
    }
    return value;
}

/* 0 for auto. */
static int parse_threads(const char *text)
{
    return strcmp(text, "auto") == 0 ? 0 : (int)parse_count("--threads", text, 1, POOL_MAX_THREADS);
}

static void add_binding(const char **list, int *count, const char *flag, const char *value)
{
    if (*count == MAX_BINDINGS) {
        fail_usage("too many %s flags (at most %d)", flag, MAX_BINDINGS);
    }
    list[(*count)++] = value;
}

static const char *const value_flags[] = {
    "--input", "--output", "--platform", "--weights", "--pgm", "--idx",
    "--labels", "--limit", "--offset", "--threads", "--bench", "--cache-dir",
    "--host", "--port", "--http-threads", "--max-request-bytes", "--timeout-ms", "--max-batch",
    "--batch-timeout-us", "--lanes",
};

static bool takes_value(const char *flag)
{
    for (size_t i = 0; i < sizeof value_flags / sizeof value_flags[0]; i++) {
        if (strcmp(flag, value_flags[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Applies a flag of value_flags. */
static void apply(struct options *o, const char *flag, const char *value)
{
    if (strcmp(flag, "--input") == 0) add_binding(o->inputs, &o->n_inputs, flag, value);
    else if (strcmp(flag, "--output") == 0) add_binding(o->outputs, &o->n_outputs, flag, value);
    else if (strcmp(flag, "--platform") == 0) o->platform = value;
    else if (strcmp(flag, "--weights") == 0) o->weights = value;
    else if (strcmp(flag, "--cache-dir") == 0) o->cache_dir = value;
    else if (strcmp(flag, "--pgm") == 0) o->pgm = value;
    else if (strcmp(flag, "--idx") == 0) o->idx_images = value;
    else if (strcmp(flag, "--labels") == 0) o->idx_labels = value;
    else if (strcmp(flag, "--limit") == 0) o->limit = parse_count(flag, value, 1, LONG_MAX);
    else if (strcmp(flag, "--offset") == 0) o->offset = parse_count(flag, value, 0, LONG_MAX);
    else if (strcmp(flag, "--threads") == 0) o->threads = parse_threads(value);
    else if (strcmp(flag, "--host") == 0) o->host = value;
    else if (strcmp(flag, "--port") == 0) o->port = (int)parse_count(flag, value, 1, 65535);
    else if (strcmp(flag, "--http-threads") == 0) o->http_threads = (int)parse_count(flag, value, 1, 1024);
    else if (strcmp(flag, "--max-request-bytes") == 0) o->max_request_bytes = parse_count(flag, value, 1, LONG_MAX);
    else if (strcmp(flag, "--timeout-ms") == 0) o->timeout_ms = parse_count(flag, value, 1, 86400000);
    else if (strcmp(flag, "--max-batch") == 0) o->max_batch = (int)parse_count(flag, value, 1, 1 << 20);
    else if (strcmp(flag, "--batch-timeout-us") == 0) o->batch_timeout_us = parse_count(flag, value, 1, 10000000);
    else if (strcmp(flag, "--lanes") == 0) o->lanes = (int)parse_count(flag, value, 1, 1024);
    else o->bench = parse_count(flag, value, 1, 100000000);
}

static void check_combinations(const struct options *o)
{
    bool runs_files = o->n_inputs > 0 || o->n_outputs > 0 || o->pgm != NULL || o->idx_images != NULL || o->bench;
    if (o->serve && (runs_files || o->info)) {
        fail_usage("serve takes requests over HTTP: no --input, --output, --pgm, --idx, --bench or --info");
    }
    bool serve_flags = o->host != NULL || o->port || o->http_threads || o->max_request_bytes || o->timeout_ms ||
                       o->max_batch || o->batch_timeout_us || o->lanes;
    if (!o->serve && serve_flags) {
        fail_usage("--host, --port, --http-threads, --max-request-bytes, --timeout-ms, --lanes, --max-batch and "
                   "--batch-timeout-us need serve");
    }
    if (o->idx_images != NULL && (o->n_inputs > 0 || o->pgm != NULL)) {
        fail_usage("--idx cannot be combined with --input or --pgm");
    }
    if (o->idx_images == NULL && (o->idx_labels != NULL || o->limit || o->offset)) {
        fail_usage("--labels, --limit and --offset need --idx");
    }
    if (o->pgm != NULL && o->n_inputs > 0) {
        fail_usage("--pgm cannot be combined with --input");
    }
}

static void serve_defaults(struct options *o)
{
    if (!o->serve) {
        return;
    }
    o->host = o->host ? o->host : "0.0.0.0";
    o->port = o->port ? o->port : 8000;
    o->http_threads = o->http_threads ? o->http_threads : 64;
    o->max_request_bytes = o->max_request_bytes ? o->max_request_bytes : 64L << 20;
    o->timeout_ms = o->timeout_ms ? o->timeout_ms : 30000;
    o->batch_timeout_us = o->batch_timeout_us ? o->batch_timeout_us : 500;
}

void options_parse(struct options *o, int argc, char **argv)
{
    *o = (struct options){0};
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        o->serve = true;
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_usage(argv[0]);
            exit(0);
        }
        if (strcmp(arg, "--info") == 0) {
            o->info = true;
            continue;
        }
        char flag[32];
        size_t flag_len = strcspn(arg, "=");
        snprintf(flag, sizeof flag, "%.*s", (int)flag_len, arg);
        if (!takes_value(flag)) {
            fail_usage("unknown option '%s' (see --help)", arg);
        }
        if (arg[flag_len] == '=') {
            apply(o, flag, arg + flag_len + 1);
        } else if (i + 1 < argc) {
            apply(o, flag, argv[++i]);
        } else {
            fail_usage("%s needs a value (see --help)", flag);
        }
    }
    check_combinations(o);
    serve_defaults(o);
}
