/* What the CPU (and the OS, for AVX register state) supports. */
#ifndef KILN_CPU_FEATURES_H
#define KILN_CPU_FEATURES_H

#include <stdint.h>

struct cpu_features {
    uint32_t mask;       /* enum kiln_cpu_feature bits, what variants require */
    char detected[512];  /* the individual flags found, space separated */
};

void cpu_features_detect(struct cpu_features *cpu);

/* "avx512 avx2 fma sse4.2" for a kiln_cpu_feature mask, into buf. */
void cpu_mask_names(uint32_t mask, char *buf, unsigned size);

#endif
