#include "dataset.h"

#include "errors.h"
#include "idx.h"
#include "image.h"
#include "report.h"
#include "tensor.h"

#include <stdio.h>

static void check_model(const kiln_model_desc *m)
{
    if (m->n_inputs != 1) {
        fail_usage("--idx needs a single-input model; '%s' has %u inputs", m->model_name, m->n_inputs);
    }
    if (m->n_outputs < 1 || !is_classifier(&m->outputs[0])) {
        fail_usage("--idx needs a classifier output (f32 [1, K]); '%s' has none", m->model_name);
    }
}

/* The [begin, end) image range that --offset and --limit select. */
static void select_range(const struct options *o, uint32_t count, uint64_t *begin, uint64_t *end)
{
    if ((uint64_t)o->offset >= count) {
        fail_usage("--offset %ld is past the %u images of %s", o->offset, count, o->idx_images);
    }
    *begin = (uint64_t)o->offset;
    *end = count;
    if (o->limit > 0 && *begin + (uint64_t)o->limit < *end) {
        *end = *begin + (uint64_t)o->limit;
    }
}

static void load_labels(struct idx *labels, const char *path, uint32_t images)
{
    idx_load(labels, path, 1);
    if (labels->dims[0] != images) {
        fail("%s: %u labels for %u images", path, labels->dims[0], images);
    }
}

void dataset_run(struct session *s, const struct options *o)
{
    const kiln_model_desc *m = s->model;
    check_model(m);
    struct idx images, labels = {0};
    idx_load(&images, o->idx_images, 3);
    uint32_t rows = images.dims[1], cols = images.dims[2];
    image_check_input(&m->inputs[0], rows, cols, o->idx_images);
    if (o->idx_labels != NULL) {
        load_labels(&labels, o->idx_labels, images.dims[0]);
    }
    uint64_t begin, end, correct = 0;
    select_range(o, images.dims[0], &begin, &end);
    size_t pixels = (size_t)rows * cols;
    for (uint64_t i = begin; i < end; i++) {
        image_to_input(s->inputs[0], images.data + i * pixels, pixels, 255);
        session_run(s);
        int64_t predicted = argmax(&m->outputs[0], s->outputs[0]);
        if (labels.bytes == NULL) {
            printf("%llu %lld\n", (unsigned long long)i, (long long)predicted);
        } else {
            correct += predicted == labels.data[i];
        }
    }
    if (labels.bytes != NULL) {
        uint64_t total = end - begin;
        printf("accuracy: %.4f (%llu/%llu)\n", (double)correct / (double)total,
               (unsigned long long)correct, (unsigned long long)total);
    }
    idx_free(&labels);
    idx_free(&images);
}
