/* Everything one model run needs: the chosen variant, mapped weights,
 * aligned input/output/scratch buffers and the thread pool. */
#ifndef KILN_SESSION_H
#define KILN_SESSION_H

#include "kiln_model.h"
#include "weights.h"

#include <stdbool.h>

struct pool;
struct input_shape;
struct pjrt_session;
struct gpu_session;

struct session {
    const kiln_model_desc *model;
    const kiln_variant_desc *variant;  /* NULL when a PJRT plugin runs the model */
    struct pjrt_session *pjrt;
    struct gpu_session *gpu;           /* cuda or rocm runs the model */
    struct weights weights;
    void **inputs;   /* one zeroed, aligned buffer per model input */
    void **outputs;
    uint8_t *scratch;
    struct pool *pool;
    int threads;
    int64_t rows;      /* the inputs' batch when the model's (shape bucket's) is larger: zero-padded
                          inputs, outputs cut back to it; 0 = the model's own */
    const struct input_shape *given;   /* per input, the shape given when a non-leading dim is padded
                                          (bucket_pad, bucket_output_cut); NULL = the model's own */
    char choice[256];  /* platform and variant line, printed before the first run */
    bool ran;
    /* what belongs to another session (a sibling shape bucket, a serving lane) */
    bool weights_borrowed, pool_borrowed, scratch_borrowed;
};

void session_open(struct session *s, const kiln_model_desc *model, const kiln_variant_desc *variant,
                  const char *weights_override, int threads);
/* A session for another shape bucket of `base`'s model: its own input and output buffers, `base`'s
 * mapped weights and thread pool (one run at a time across the two), and its scratch arena when that is
 * large enough; the same CPU variant. */
void session_open_sibling(struct session *s, const struct session *base, const kiln_model_desc *model);
/* A session of `base`'s own model on `threads` threads of its own, over `base`'s mapped weights: its own
 * input and output buffers, and `base`'s scratch arena when `share_scratch` (the two never run at once),
 * else its own. */
void session_open_lane(struct session *s, const struct session *base, bool share_scratch, int threads);
void session_run(struct session *s);
/* Runs `s`'s CPU variant on other buffers, scratch arena and pool: a slice of a larger bucket's run. */
void session_run_on(const struct session *s, void *const *inputs, void **outputs, uint8_t *scratch,
                    struct pool *pool);
void session_close(struct session *s);

#endif
