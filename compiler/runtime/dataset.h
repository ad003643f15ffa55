/* --idx: run every image of an IDX set through a classifier, optionally
 * scoring against IDX labels. */
#ifndef KILN_DATASET_H
#define KILN_DATASET_H

#include "options.h"
#include "session.h"

void dataset_run(struct session *s, const struct options *o);

#endif
