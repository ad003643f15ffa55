/* Who runs the model when requests are not batched. A request alone runs on every thread (the wide
 * session); while others wait, requests run side by side, each on a share of the threads in a lane of
 * its own (a narrow session per lane, each with its own scratch arena over the shared weights). Under
 * load two requests on a core each beat two cores on one request: no layer waits for the slower thread,
 * and no layer reads what the other core wrote (on a host whose cores share no cache, that costs most
 * of the second thread's gain). Each lane costs a scratch arena: by default there are as many as
 * threads, at most LANES_AUTO. Requests take their turn in arrival order. */
#ifndef KILN_SERVE_LANES_H
#define KILN_SERVE_LANES_H

#include "session.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct lane_waiter {
    pthread_cond_t turn;
    struct lane_waiter *next;
};

#define LANES_AUTO 4

struct lanes {
    struct session *wide;
    struct session **narrow;   /* none when the wide session runs alone */
    bool *busy;                /* per narrow lane */
    int count;                 /* narrow lanes */
    int running;               /* narrow lanes busy */
    bool wide_running;
    struct lane_waiter *head, *tail;          /* requests waiting, in arrival order: only the head is woken */
    atomic_ullong wide_runs, narrow_runs;     /* for /metrics */
    pthread_mutex_t lock;
};

/* `lanes` narrow lanes (0: the threads, at most LANES_AUTO) for a CPU session with more than one thread
 * when `side_by_side`; else (or for fewer than 2) the wide session alone, taken by one request at a
 * time. */
void lanes_open(struct lanes *l, struct session *wide, bool side_by_side, int lanes);
/* How many lanes `threads` threads make for `--lanes` (0: the threads, at most LANES_AUTO). */
int lanes_count(int lanes, int threads);
/* The threads of lane `i` of `count`: every thread in some lane. */
int lane_threads(int threads, int count, int i);
/* Waits for this request's turn: the session to run it on, held until lanes_release. */
struct session *lanes_acquire(struct lanes *l);
void lanes_release(struct lanes *l, struct session *s);
void lanes_close(struct lanes *l);

#endif
