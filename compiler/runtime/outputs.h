/* Delivering the model's outputs: .npy files for --output, else printed. */
#ifndef KILN_OUTPUTS_H
#define KILN_OUTPUTS_H

#include "options.h"
#include "session.h"

void outputs_deliver(const struct session *s, const struct options *o);

#endif
