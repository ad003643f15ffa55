/* The command line. */
#ifndef KILN_OPTIONS_H
#define KILN_OPTIONS_H

#include <stdbool.h>

#define MAX_BINDINGS 64

struct options {
    const char *platform;            /* NULL: $KILN_PLATFORM or auto */
    const char *weights;             /* NULL: $KILN_WEIGHTS or next to the executable */
    const char *cache_dir;           /* PJRT platforms: compiled executables kept here */
    const char *inputs[MAX_BINDINGS];  /* "NAME=FILE" or "FILE" */
    int n_inputs;
    const char *outputs[MAX_BINDINGS];
    int n_outputs;
    const char *pgm;
    const char *idx_images;
    const char *idx_labels;
    long limit;                      /* 0: to the end */
    long offset;
    int threads;                     /* 0 (auto): one per available core */
    long bench;                      /* 0: no benchmark */
    bool info;
    bool serve;                      /* the `serve` subcommand */
    const char *host;                /* serve: bind address */
    int port;
    int http_threads;                /* serve: connections answered at once */
    long max_request_bytes;
    long timeout_ms;                 /* serve: request read and keep-alive idle timeout */
    int max_batch;                   /* serve: dynamic batching up to this many rows; 0: off */
    long batch_timeout_us;           /* serve: how long a batch waits for more rows */
    int lanes;                       /* serve: requests run side by side under load; 0: auto */
};

/* Fills `o` from argv; exits 2 with one line on a bad command line, 0 after --help. */
void options_parse(struct options *o, int argc, char **argv);

#endif
