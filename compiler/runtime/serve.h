/* `serve`: the launcher as an HTTP inference server speaking the Open Inference Protocol
 * (KServe v2, as Triton implements it), with Prometheus metrics; HTTP by civetweb. */
#ifndef KILN_SERVE_H
#define KILN_SERVE_H

#include "options.h"
#include "session.h"

/* Serves `s` until SIGTERM or SIGINT, then stops accepting, finishes in-flight requests and returns. */
void serve_run(struct session *s, const struct options *o, const char *platform);

#endif
