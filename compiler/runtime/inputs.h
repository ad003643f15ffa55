/* Filling the model's inputs from --input and --pgm files. */
#ifndef KILN_INPUTS_H
#define KILN_INPUTS_H

#include "buckets.h"
#include "options.h"
#include "session.h"

/* Loads every bound input; an unbound input is an error unless benchmarking
 * (then it stays zero). */
void inputs_load(struct session *s, const struct options *o);

/* The shapes of the .npy files --input gives (rank 0 for inputs without one), for
 * choosing a shape bucket before the session exists; `shapes` has n_inputs zeroed entries. */
void inputs_shapes(const kiln_model_desc *m, const struct options *o, struct input_shape *shapes);

#endif
