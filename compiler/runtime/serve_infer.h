/* POST /v2/models/<name>/infer of the Open Inference Protocol (KServe v2), with Triton's binary
 * tensor extension: JSON tensors in and out, or raw bytes after a JSON header. */
#ifndef KILN_SERVE_INFER_H
#define KILN_SERVE_INFER_H

#include "serve_batch.h"
#include "serve_lanes.h"
#include "session.h"
#include "strbuf.h"

#include <semaphore.h>
#include <stddef.h>

struct infer_request {
    char *body;              /* malloc'd; serve_infer frees it once the request is parsed, or once it has
                                run when binary inputs are read in place */
    size_t size;
    long header_length;      /* Inference-Header-Content-Length, or -1: the whole body is JSON */
};

struct infer_reply {
    int status;              /* HTTP status; 200 or a 4xx with `error` set */
    char error[256];
    struct strbuf body;      /* the JSON, then the binary outputs */
    size_t json_length;      /* bytes of JSON at the front of body */
    double queue_seconds;    /* waiting for the session */
    double infer_seconds;
};

/* What answers requests: a session per shape bucket, or lanes of the one session, taken in turn, or a
 * batcher. */
struct serve_model {
    struct session *session;  /* the largest bucket: the shapes requests are checked against */
    struct bucket_sessions *sessions;
    struct lanes lanes;       /* without batching; with buckets, the largest bucket's session alone */
    struct batcher *batcher;  /* NULL: no dynamic batching */
    sem_t parsers;            /* requests parsed at once: parsing is CPU work, and each parse holds a JSON tree */
};

/* The protocol's datatype name ("FP32", ...) of a kiln dtype. */
const char *v2_datatype(uint32_t dtype);

/* Runs one request, freeing its body before it waits for the model; fills `reply`. */
void serve_infer(struct serve_model *model, const struct infer_request *req, struct infer_reply *reply);

#endif
