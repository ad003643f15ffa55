#define _POSIX_C_SOURCE 200809L
#include "serve_batch.h"

#include "errors.h"
#include "tensor.h"

#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int64_t batch_rows(const kiln_model_desc *m)
{
    return m->n_inputs > 0 && m->inputs[0].rank > 0 ? m->inputs[0].shape[0] : 1;
}

static size_t row_bytes(const kiln_tensor_desc *desc, int64_t rows)
{
    return tensor_bytes(desc) / (size_t)rows;
}

/* Queued rows from the head that fit in one batch. */
static int64_t ready_rows(const struct batcher *b)
{
    int64_t rows = 0;
    for (const struct batch_item *i = b->head; i != NULL && rows + i->rows <= b->max_rows; i = i->next) {
        rows += i->rows;
    }
    return rows;
}

/* Waits (the queue holds the leader's own item) until a full batch is queued, or the requests still
 * being parsed stop coming, or the timeout after the head's arrival. */
static void wait_for_batch(struct batcher *b)
{
    double deadline = b->head->queued + b->timeout;
    struct timespec until = {.tv_sec = (time_t)deadline, .tv_nsec = (long)((deadline - (double)(time_t)deadline) * 1e9)};
    while (ready_rows(b) < b->max_rows && b->coming > 0 && now() < deadline) {
        pthread_cond_timedwait(&b->arrived, &b->lock, &until);
    }
}

/* Detaches the items of the next batch from the queue. */
static struct batch_item *take_batch(struct batcher *b)
{
    struct batch_item *first = b->head, *last = NULL;
    int64_t rows = 0;
    for (struct batch_item *i = b->head; i != NULL && rows + i->rows <= b->max_rows; i = i->next) {
        rows += i->rows;
        last = i;
    }
    b->head = last->next;
    b->tail = b->head == NULL ? NULL : b->tail;
    last->next = NULL;
    return first;
}

static struct session *smallest_holding(struct bucket_sessions *b, int64_t rows, uint32_t *index)
{
    *index = b->count - 1;
    for (uint32_t i = 0; i < b->count; i++) {
        if (batch_rows(b->items[i]->model) >= rows) {
            *index = i;
            break;
        }
    }
    return b->items[*index];
}

/* The session whose buffers hold the gathered rows, and how it runs them: whole, or in `lanes`. */
static struct session *gathering_session(struct bucket_sessions *sessions, int64_t rows, uint32_t *bucket,
                                         int *lanes)
{
    *lanes = row_lanes_plan(&sessions->split, rows);
    if (*lanes > 0) {
        *bucket = sessions->count - 1;
        return sessions->items[*bucket];
    }
    return smallest_holding(sessions, rows, bucket);
}

void batch_run(struct bucket_sessions *sessions, struct batch_item *items)
{
    int64_t gathered = 0;
    for (struct batch_item *i = items; i != NULL; i = i->next) {
        gathered += i->rows;
    }
    uint32_t bucket;
    int lanes;
    struct session *s = gathering_session(sessions, gathered, &bucket, &lanes);
    const kiln_model_desc *m = s->model;
    int64_t rows = batch_rows(m);
    for (uint32_t t = 0; t < m->n_inputs; t++) {
        size_t row = row_bytes(&m->inputs[t], rows), at = 0;
        for (struct batch_item *i = items; i != NULL; i = i->next) {
            memcpy((char *)s->inputs[t] + at, i->inputs[t], row * (size_t)i->rows);
            at += row * (size_t)i->rows;
        }
        memset((char *)s->inputs[t] + at, 0, tensor_bytes(&m->inputs[t]) - at);  /* padding rows */
    }
    double started = now();
    if (lanes > 0) {
        row_lanes_run(&sessions->split, lanes, sessions->runs);
        atomic_fetch_add(&sessions->split_runs, 1);
    } else {
        session_run(s);
        atomic_fetch_add(&sessions->runs[bucket], 1);
    }
    double finished = now();
    for (uint32_t t = 0; t < m->n_outputs; t++) {
        size_t row = row_bytes(&m->outputs[t], rows), at = 0;
        for (struct batch_item *i = items; i != NULL; i = i->next) {
            memcpy(i->outputs[t], (char *)s->outputs[t] + at, row * (size_t)i->rows);
            at += row * (size_t)i->rows;
        }
    }
    for (struct batch_item *i = items; i != NULL; i = i->next) {
        i->started = started;
        i->finished = finished;
    }
}

/* Runs the next batch as its leader, the lock held on entry and exit but not while the model runs. */
static void lead(struct batcher *b)
{
    b->leading = true;
    wait_for_batch(b);
    struct batch_item *items = take_batch(b);
    pthread_mutex_unlock(&b->lock);
    batch_run(b->sessions, items);
    pthread_mutex_lock(&b->lock);
    for (struct batch_item *i = items; i != NULL; i = i->next) {
        i->done = true;
    }
    b->leading = false;
    pthread_cond_broadcast(&b->finished);  /* its requests return, and a waiting one leads the next batch */
}

void batcher_init(struct batcher *b, struct bucket_sessions *sessions, int64_t max_rows, long timeout_us)
{
    *b = (struct batcher){.sessions = sessions, .max_rows = max_rows, .timeout = (double)timeout_us * 1e-6};
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);  /* deadlines are monotonic seconds */
    pthread_cond_init(&b->arrived, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&b->finished, NULL);
}

void batcher_expect(struct batcher *b)
{
    pthread_mutex_lock(&b->lock);
    b->coming++;
    pthread_mutex_unlock(&b->lock);
}

void batcher_forget(struct batcher *b)
{
    pthread_mutex_lock(&b->lock);
    b->coming--;
    pthread_cond_signal(&b->arrived);
    pthread_mutex_unlock(&b->lock);
}

void batcher_submit(struct batcher *b, struct batch_item *item)
{
    item->queued = now();
    item->done = false;
    item->next = NULL;
    pthread_mutex_lock(&b->lock);
    b->coming--;
    if (b->tail != NULL) {
        b->tail->next = item;
    } else {
        b->head = item;
    }
    b->tail = item;
    pthread_cond_signal(&b->arrived);
    while (!item->done) {
        if (b->leading) {
            pthread_cond_wait(&b->finished, &b->lock);
        } else {
            lead(b);  /* the item is still queued: no batch is running to take it */
        }
    }
    pthread_mutex_unlock(&b->lock);
}

void batcher_destroy(struct batcher *b)
{
    pthread_cond_destroy(&b->arrived);
    pthread_cond_destroy(&b->finished);
    pthread_mutex_destroy(&b->lock);
}
