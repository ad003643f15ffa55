/* `serve`: the launcher as an HTTP inference server speaking the Open Inference Protocol
 * (KServe v2, as Triton implements it), with Prometheus metrics; HTTP by civetweb. */
#ifndef KILN_SERVE_H
#define KILN_SERVE_H

#include "options.h"
#include "session.h"

/* Re-executes this program once with glibc's per-thread cache of freed small blocks (tcache) off, unless
 * GLIBC_TUNABLES already sets it. Each HTTP thread's cache keeps a request's worth of blocks that pin
 * pages all over the heap: at 64 connections that was 2 MiB of the batched mnist server's 10.5 MiB.
 * glibc reads the switch only from the environment at startup, hence the exec; if it fails, nothing changes. */
void serve_tune_malloc(char **argv);

/* Serves `s` until SIGTERM or SIGINT, then stops accepting, finishes in-flight requests and returns. */
void serve_run(struct session *s, const struct options *o, const char *platform);

#endif
