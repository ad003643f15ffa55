#define _POSIX_C_SOURCE 200809L
#include "serve_lanes.h"

#include "errors.h"

#include <stdlib.h>

int lanes_count(int lanes, int threads)
{
    return lanes ? lanes : threads < LANES_AUTO ? threads : LANES_AUTO;
}

int lane_threads(int threads, int count, int i)
{
    return threads / count + (i < threads % count);
}

void lanes_open(struct lanes *l, struct session *wide, bool side_by_side, int lanes)
{
    *l = (struct lanes){.wide = wide};
    pthread_mutex_init(&l->lock, NULL);
    if (lanes > wide->threads) {
        fail("serve: --lanes %d exceeds the %d threads (--threads) the lanes share", lanes, wide->threads);
    }
    int count = lanes_count(lanes, wide->threads);
    if (!side_by_side || wide->gpu != NULL || wide->pjrt != NULL || count < 2) {
        return;
    }
    l->count = count;
    l->narrow = calloc((size_t)l->count, sizeof *l->narrow);
    l->busy = calloc((size_t)l->count, sizeof *l->busy);
    if (l->narrow == NULL || l->busy == NULL) {
        fail("out of memory");
    }
    for (int i = 0; i < l->count; i++) {
        l->narrow[i] = malloc(sizeof *l->narrow[i]);
        if (l->narrow[i] == NULL) {
            fail("out of memory");
        }
        /* lane 0 runs only while the wide session does not: it works in the wide one's arena */
        session_open_lane(l->narrow[i], wide, i == 0, lane_threads(wide->threads, count, i));
    }
}

static bool lane_free(const struct lanes *l)
{
    return !l->wide_running && (l->count == 0 || l->running < l->count);
}

/* Queued behind the others until this request is the first and a lane is free. */
static void wait_turn(struct lanes *l)
{
    struct lane_waiter me = {.next = NULL};
    pthread_cond_init(&me.turn, NULL);
    if (l->tail != NULL) {
        l->tail->next = &me;
    } else {
        l->head = &me;
    }
    l->tail = &me;
    while (l->head != &me || !lane_free(l)) {
        pthread_cond_wait(&me.turn, &l->lock);
    }
    l->head = me.next;
    l->tail = l->head == NULL ? NULL : l->tail;
    pthread_cond_destroy(&me.turn);
}

static void wake_first(struct lanes *l)
{
    if (l->head != NULL && lane_free(l)) {
        pthread_cond_signal(&l->head->turn);
    }
}

struct session *lanes_acquire(struct lanes *l)
{
    pthread_mutex_lock(&l->lock);
    if (l->head != NULL || !lane_free(l)) {
        wait_turn(l);
    }
    bool alone = l->running == 0 && l->head == NULL;  /* nobody runs, nobody waits */
    struct session *s = l->wide;
    if (l->count == 0 || alone) {
        l->wide_running = true;
        atomic_fetch_add(&l->wide_runs, 1);
    } else {
        int i = 0;
        while (l->busy[i]) {
            i++;
        }
        l->busy[i] = true;
        l->running++;
        s = l->narrow[i];
        atomic_fetch_add(&l->narrow_runs, 1);
    }
    wake_first(l);  /* the next request may take another lane at once */
    pthread_mutex_unlock(&l->lock);
    return s;
}

void lanes_release(struct lanes *l, struct session *s)
{
    pthread_mutex_lock(&l->lock);
    if (s == l->wide) {
        l->wide_running = false;
    } else {
        for (int i = 0; i < l->count; i++) {
            if (l->narrow[i] == s) {
                l->busy[i] = false;
            }
        }
        l->running--;
    }
    wake_first(l);
    pthread_mutex_unlock(&l->lock);
}

void lanes_close(struct lanes *l)
{
    for (int i = 0; i < l->count; i++) {
        session_close(l->narrow[i]);
        free(l->narrow[i]);
    }
    free(l->narrow);
    free(l->busy);
    pthread_mutex_destroy(&l->lock);
}
