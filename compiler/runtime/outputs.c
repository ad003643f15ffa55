#include "outputs.h"

#include "bindings.h"
#include "buckets.h"
#include "npy.h"
#include "report.h"
#include "tensor.h"

#include <stdlib.h>

/* Output i as the run's inputs give it: cut back to their batch, or to their padded dims; saved to
 * `path`, else summarized. */
static void deliver(const struct session *s, uint32_t i, const char *path)
{
    const kiln_model_desc *m = s->model;
    kiln_tensor_desc output = bucket_cut(&m->outputs[i], s->rows);
    void *data = s->outputs[i], *cut = NULL;
    if (s->given != NULL) {
        output = bucket_output_cut(buckets_linked(m), m, i, s->given);
        data = cut = alloc_aligned(tensor_bytes(&output));
        bucket_crop(cut, &output, s->outputs[i], &m->outputs[i]);
    }
    if (path != NULL) {
        npy_save(path, &output, data);
    } else {
        report_output(&output, data);
    }
    free(cut);
}

void outputs_deliver(const struct session *s, const struct options *o)
{
    const kiln_model_desc *m = s->model;
    for (int i = 0; i < o->n_outputs; i++) {
        struct binding b = binding_resolve(o->outputs[i], m->outputs, m->n_outputs, "--output", "output");
        deliver(s, b.index, b.path);
    }
    for (uint32_t i = 0; o->n_outputs == 0 && i < m->n_outputs; i++) {
        deliver(s, i, NULL);
    }
}
