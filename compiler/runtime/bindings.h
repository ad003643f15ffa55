/* "--input NAME=FILE" / "--output NAME=FILE": which tensor a file belongs to. */
#ifndef KILN_BINDINGS_H
#define KILN_BINDINGS_H

#include "kiln_model.h"

struct binding {
    int index;         /* into the tensor list */
    const char *path;
};

/* NAME= is recognised only when NAME is one of the tensors, so paths may hold
 * '='. A bare FILE is allowed when there is exactly one tensor. Fails with a
 * usage error otherwise; `flag` and `kind` ("input", "output") word it. */
struct binding binding_resolve(const char *arg, const kiln_tensor_desc *tensors, uint32_t count,
                               const char *flag, const char *kind);

#endif
