#include "outputs.h"

#include "bindings.h"
#include "buckets.h"
#include "npy.h"
#include "report.h"

void outputs_deliver(const struct session *s, const struct options *o)
{
    const kiln_model_desc *m = s->model;
    for (int i = 0; i < o->n_outputs; i++) {
        struct binding b = binding_resolve(o->outputs[i], m->outputs, m->n_outputs, "--output", "output");
        kiln_tensor_desc output = bucket_cut(&m->outputs[b.index], s->rows);
        npy_save(b.path, &output, s->outputs[b.index]);
    }
    if (o->n_outputs > 0) {
        return;
    }
    for (uint32_t i = 0; i < m->n_outputs; i++) {
        kiln_tensor_desc output = bucket_cut(&m->outputs[i], s->rows);
        report_output(&output, s->outputs[i]);
    }
}
