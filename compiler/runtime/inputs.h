/* Filling the model's inputs from --input and --pgm files. */
#ifndef KILN_INPUTS_H
#define KILN_INPUTS_H

#include "options.h"
#include "session.h"

/* Loads every bound input; an unbound input is an error unless benchmarking
 * (then it stays zero). */
void inputs_load(struct session *s, const struct options *o);

#endif
