#include "inputs.h"

#include "bindings.h"
#include "buckets.h"
#include "errors.h"
#include "files.h"
#include "image.h"
#include "npy.h"
#include "pgm.h"
#include "tensor.h"

#include <stdbool.h>
#include <stdlib.h>

static void load_pgm(const char *path, const uint8_t *file, size_t size,
                     const kiln_tensor_desc *input, float *dst)
{
    struct pgm image;
    pgm_parse(&image, path, file, size);
    image_check_input(input, image.height, image.width, path);
    image_to_input(dst, image.pixels, (size_t)image.width * image.height, image.max_value);
}

static void load_file(struct binding b, const uint8_t *file, size_t size, const kiln_tensor_desc *input,
                      void *dst, bool pgm_only)
{
    if (pgm_has_magic(file, size)) {
        load_pgm(b.path, file, size, input, dst);
    } else if (pgm_only) {
        fail("%s: not a binary PGM file (no P5 magic)", b.path);
    } else if (npy_has_magic(file, size)) {
        npy_load(b.path, file, size, input, dst);
    } else {
        fail("%s: neither a .npy file nor a binary PGM image", b.path);
    }
}

static void load_input(struct session *s, struct binding b, bool pgm_only)
{
    size_t size;
    uint8_t *file = read_file(b.path, &size);
    const kiln_tensor_desc *full = &s->model->inputs[b.index];
    if (s->given == NULL) {
        kiln_tensor_desc input = bucket_cut(full, s->rows);
        load_file(b, file, size, &input, s->inputs[b.index], pgm_only);
    } else {
        kiln_tensor_desc input = bucket_given(full, &s->given[b.index]);
        void *data = alloc_aligned(tensor_bytes(&input));
        load_file(b, file, size, &input, data, pgm_only);
        bucket_pad(buckets_linked(s->model), b.index, s->inputs[b.index], full, data, &input);
        free(data);
    }
    free(file);
}

static void bind(struct session *s, bool *bound, const char *arg, const char *flag, bool pgm_only)
{
    const kiln_model_desc *m = s->model;
    struct binding b = binding_resolve(arg, m->inputs, m->n_inputs, flag, "input");
    if (bound[b.index]) {
        fail_usage("input '%s' is given twice", m->inputs[b.index].name);
    }
    bound[b.index] = true;
    load_input(s, b, pgm_only);
}

void inputs_load(struct session *s, const struct options *o)
{
    const kiln_model_desc *m = s->model;
    bool *bound = calloc(m->n_inputs + 1, sizeof *bound);
    if (bound == NULL) {
        fail("out of memory");
    }
    for (int i = 0; i < o->n_inputs; i++) {
        bind(s, bound, o->inputs[i], "--input", false);
    }
    if (o->pgm != NULL) {
        bind(s, bound, o->pgm, "--pgm", true);
    }
    for (uint32_t i = 0; i < m->n_inputs; i++) {
        if (!bound[i] && o->bench == 0) {
            fail_usage("missing input '%s' (use --input %s=FILE)", m->inputs[i].name,
                       m->inputs[i].name);
        }
    }
    free(bound);
}

void inputs_shapes(const kiln_model_desc *m, const struct options *o, struct input_shape *shapes)
{
    for (int i = 0; i < o->n_inputs; i++) {
        struct binding b = binding_resolve(o->inputs[i], m->inputs, m->n_inputs, "--input", "input");
        size_t size;
        uint8_t *file = read_file(b.path, &size);
        if (npy_has_magic(file, size)) {
            npy_read_shape(b.path, file, size, shapes[b.index].dims, &shapes[b.index].rank);
        }
        free(file);
    }
}
