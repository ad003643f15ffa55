/* The thread pool behind kiln_parallel_for. */
#ifndef KILN_POOL_H
#define KILN_POOL_H

#define POOL_MAX_THREADS 256

struct pool;

/* threads counts the calling thread (at most POOL_MAX_THREADS): a pool of 1
 * runs everything inline. */
struct pool *pool_create(int threads);
void pool_destroy(struct pool *pool);

/* Bracket one inference: between them waiting workers stay awake (polling, giving
 * the core away when it is wanted) instead of sleeping between layers. */
void pool_begin(struct pool *pool);
void pool_end(struct pool *pool);

/* Cores this process may run on (sched_getaffinity), at least 1. */
int pool_default_threads(void);

#endif
