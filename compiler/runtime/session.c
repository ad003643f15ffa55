#include "session.h"

#include "errors.h"
#include "gpu_session.h"
#include "pjrt_session.h"
#include "pool.h"
#include "tensor.h"

#include <stdlib.h>

static void **alloc_tensors(const kiln_tensor_desc *descs, uint32_t count)
{
    void **buffers = calloc(count ? count : 1, sizeof *buffers);
    if (buffers == NULL) {
        fail("out of memory");
    }
    for (uint32_t i = 0; i < count; i++) {
        buffers[i] = alloc_aligned(tensor_bytes(&descs[i]));
    }
    return buffers;
}

static void free_tensors(void **buffers, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        free(buffers[i]);
    }
    free(buffers);
}

void session_open(struct session *s, const kiln_model_desc *model, const kiln_variant_desc *variant,
                  const char *weights_override, int threads)
{
    *s = (struct session){.model = model, .variant = variant, .threads = threads};
    weights_load(&s->weights, model, weights_override);
    s->inputs = alloc_tensors(model->inputs, model->n_inputs);
    s->outputs = alloc_tensors(model->outputs, model->n_outputs);
    s->scratch = alloc_aligned(model->scratch_bytes);
    s->pool = pool_create(threads);
}

void session_open_sibling(struct session *s, const struct session *base, const kiln_model_desc *model)
{
    *s = (struct session){.model = model, .threads = base->threads, .weights = base->weights,
                          .pool = base->pool, .weights_borrowed = true, .pool_borrowed = true, .ran = true};
    s->variant = &model->variants[base->variant - base->model->variants];
    s->inputs = alloc_tensors(model->inputs, model->n_inputs);
    s->outputs = alloc_tensors(model->outputs, model->n_outputs);
    /* Siblings run one at a time (one pool): a smaller bucket works in the base's arena. */
    s->scratch_borrowed = model->scratch_bytes <= base->model->scratch_bytes;
    s->scratch = s->scratch_borrowed ? base->scratch : alloc_aligned(model->scratch_bytes);
}

void session_open_lane(struct session *s, const struct session *base, bool share_scratch, int threads)
{
    *s = (struct session){.model = base->model, .variant = base->variant, .threads = threads, .weights = base->weights,
                          .weights_borrowed = true, .scratch_borrowed = share_scratch, .ran = true};
    s->inputs = alloc_tensors(s->model->inputs, s->model->n_inputs);
    s->outputs = alloc_tensors(s->model->outputs, s->model->n_outputs);
    s->scratch = share_scratch ? base->scratch : alloc_aligned(s->model->scratch_bytes);
    s->pool = pool_create(threads);
}

void session_run(struct session *s)
{
    if (!s->ran && s->choice[0] != '\0') {
        note("%s", s->choice);
    }
    s->ran = true;
    if (s->pjrt != NULL) {
        pjrt_session_run(s->pjrt, s->inputs, s->outputs);
        return;
    }
    if (s->gpu != NULL) {
        gpu_session_run(s->gpu, s);
        return;
    }
    session_run_on(s, s->inputs, s->outputs, s->scratch, s->pool);
}

void session_run_on(const struct session *s, void *const *inputs, void **outputs, uint8_t *scratch,
                    struct pool *pool)
{
    pool_begin(pool);
    s->variant->entry(s->weights.data, (const void *const *)inputs, outputs, scratch, pool);
    pool_end(pool);
}

void session_close(struct session *s)
{
    if (!s->scratch_borrowed) {
        free(s->scratch);
    }
    free_tensors(s->outputs, s->model->n_outputs);
    free_tensors(s->inputs, s->model->n_inputs);
    if (!s->pool_borrowed) {
        pool_destroy(s->pool);
    }
    if (!s->weights_borrowed) {
        weights_unload(&s->weights);
    }
}
