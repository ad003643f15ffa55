/* What the launcher prints on stdout: results and --info. */
#ifndef KILN_REPORT_H
#define KILN_REPORT_H

#include "cpu_features.h"
#include "platform.h"
#include "session.h"

#include <stdbool.h>

/* [1, K] or [K] float32 with K >= 2. */
bool is_classifier(const kiln_tensor_desc *output);
int64_t argmax(const kiln_tensor_desc *output, const float *values);

/* Top-5 classes with probabilities for a classifier, else a summary. */
void report_output(const kiln_tensor_desc *output, const void *data);

void report_info(const struct session *s, const struct platform_choice *platform,
                 const struct cpu_features *cpu);

#endif
