/* Is there a TPU here that the bundled libtpu can drive? */
#ifndef KILN_TPU_PROBE_H
#define KILN_TPU_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/* TPU device nodes (/dev/accel* or /dev/vfio/<group> with Google's PCI vendor id)
 * on a Google Compute Engine host, then libtpu creating a client in a child
 * process within $KILN_TPU_TIMEOUT seconds (default 60; its stderr is drained meanwhile, so no
 * amount of logging stalls it). On true `found` says
 * what was found; on false `why` says what was missing. */
bool tpu_probe(char *found, size_t found_size, char *why, size_t why_size);

/* The first half of tpu_probe alone: the device nodes on a Google Compute Engine host. A forced
 * --platform tpu needs them (without, libtpu spends minutes asking the GCE metadata server). */
bool tpu_device(char *found, size_t found_size, char *why, size_t why_size);

#endif
