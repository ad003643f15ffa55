#include "report.h"

#include "buckets.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP_K 5
#define SUMMARY_VALUES 8

bool is_classifier(const kiln_tensor_desc *output)
{
    bool vector = output->rank == 1 || (output->rank == 2 && output->shape[0] == 1);
    return output->dtype == KILN_F32 && vector && output->shape[output->rank - 1] >= 2;
}

int64_t argmax(const kiln_tensor_desc *output, const float *values)
{
    int64_t n = shape_elements(output->shape, output->rank), best = 0;
    for (int64_t i = 1; i < n; i++) {
        if (values[i] > values[best]) {
            best = i;
        }
    }
    return best;
}

static bool is_distribution(const float *values, int64_t n)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!(values[i] >= 0.0f && values[i] <= 1.0f)) {
            return false;
        }
        sum += values[i];
    }
    return fabs(sum - 1.0) < 1e-3;
}

static void softmax(const float *logits, double *probs, int64_t n)
{
    double max = logits[0], sum = 0;
    for (int64_t i = 1; i < n; i++) {
        max = fmax(max, logits[i]);
    }
    for (int64_t i = 0; i < n; i++) {
        probs[i] = exp(logits[i] - max);
        sum += probs[i];
    }
    for (int64_t i = 0; i < n; i++) {
        probs[i] /= sum;
    }
}

static void print_top_classes(const kiln_tensor_desc *output, const float *values)
{
    int64_t n = shape_elements(output->shape, output->rank);
    double *probs = malloc((size_t)n * sizeof *probs);
    bool already = is_distribution(values, n);
    for (int64_t i = 0; i < n; i++) {
        probs[i] = values[i];
    }
    if (!already) {
        softmax(values, probs, n);
    }
    int64_t k = n < TOP_K ? n : TOP_K;
    printf("top-%lld classes of '%s'%s:\n", (long long)k, output->name, already ? "" : " (softmax)");
    for (int64_t rank = 0; rank < k; rank++) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++) {
            best = probs[i] > probs[best] ? i : best;
        }
        printf("  %5lld  %.4f\n", (long long)best, probs[best]);
        probs[best] = -1.0;
    }
    free(probs);
}

static void print_summary(const kiln_tensor_desc *output, const void *data)
{
    int64_t n = shape_elements(output->shape, output->rank);
    double min = INFINITY, max = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = tensor_value(output, data, i);
        min = fmin(min, v);
        max = fmax(max, v);
        sum += v;
    }
    char shape[160];
    format_shape(output->shape, output->rank, shape, sizeof shape);
    printf("%s: %s %s min %.6g max %.6g mean %.6g\n  first values:", output->name, dtype_name(output->dtype),
           shape, min, max, n ? sum / (double)n : 0.0);
    for (int64_t i = 0; i < n && i < SUMMARY_VALUES; i++) {
        printf(" %.6g", tensor_value(output, data, i));
    }
    printf("%s\n", n > SUMMARY_VALUES ? " ..." : "");
}

void report_output(const kiln_tensor_desc *output, const void *data)
{
    if (is_classifier(output)) {
        print_top_classes(output, data);
    } else {
        print_summary(output, data);
    }
}

static void print_tensors(const char *kind, const kiln_tensor_desc *tensors, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        char shape[160];
        format_shape(tensors[i].shape, tensors[i].rank, shape, sizeof shape);
        printf("%-10s %s: %s %s\n", kind, tensors[i].name, dtype_name(tensors[i].dtype), shape);
    }
}

static void print_weights(const struct session *s)
{
    const kiln_model_desc *m = s->model;
    if (s->weights.path == NULL) {
        printf("%-10s none\n", "weights:");
        return;
    }
    printf("%-10s %s (%u tensors, %llu bytes, sha256 verified)\n", "weights:", s->weights.path,
           m->n_weights, (unsigned long long)m->weights_data_bytes);
}

/* Whether the buckets differ only in their batch (model(batch_sizes)). */
static bool by_batch(struct bucket_set set)
{
    for (uint32_t b = 1; b < set.count; b++) {
        const kiln_model_desc *m = set.models[b];
        if (m->n_inputs == 0 || m->inputs[0].shape[0] == set.models[0]->inputs[0].shape[0]) {
            return false;
        }
    }
    return true;
}

/* The shape buckets linked in (model(shapes), model(batch_sizes)), when there are several. */
static void print_buckets(void)
{
    struct bucket_set set = buckets_linked(&kiln_model);
    if (set.count < 2) {
        return;
    }
    printf("%-10s", "buckets:");
    bool batches = by_batch(set);
    for (uint32_t b = 0; b < set.count; b++) {
        const kiln_model_desc *m = set.models[b];
        char shape[160] = "[]";
        if (m->n_inputs > 0) {
            format_shape(m->inputs[0].shape, m->inputs[0].rank, shape, sizeof shape);
        }
        if (batches) {
            printf("%s batch %lld", b ? "," : "", m->n_inputs > 0 ? (long long)m->inputs[0].shape[0] : 0LL);
        } else {
            printf("%s %s %s", b ? "," : "", m->n_inputs > 0 ? m->inputs[0].name : "", shape);
        }
    }
    printf(batches ? " (a smaller batch runs zero-padded in the next bucket up)\n"
                   : " (inputs run in the smallest bucket that takes them, padded where the model allows)\n");
}

void report_info(const struct session *s, const struct platform_choice *platform,
                 const struct cpu_features *cpu)
{
    const kiln_model_desc *m = s->model;
    printf("%-10s %s (%s)\n", "platform:", platform->name, platform->reason);
    if (s->variant != NULL) {
        char required[128], variants[256];
        cpu_mask_names(s->variant->required_features, required, sizeof required);
        variant_names(m, variants, sizeof variants);
        printf("%-10s %s (requires %s; model has %s)\n", "variant:", s->variant->name, required, variants);
    }
    printf("%-10s %s\n", "cpu:", cpu->detected);
    printf("%-10s %s\n", "model:", m->model_name);
    print_tensors("input:", m->inputs, m->n_inputs);
    print_tensors("output:", m->outputs, m->n_outputs);
    if (strcmp(platform->name, "cpu") == 0) {
        print_buckets();
    }
    print_weights(s);
    printf("%-10s %llu bytes\n", "scratch:", (unsigned long long)m->scratch_bytes);
    printf("%-10s %d\n", "threads:", s->threads);
}
