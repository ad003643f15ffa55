/* kiln_parallel_for splits [0, n) into one contiguous chunk per thread; the
 * caller runs chunk 0. Generated code calls it many times per inference, so a
 * call costs one atomic bump to start the workers and one to collect them.
 * Waiting threads poll briefly, then poll while yielding the core (threads
 * may outnumber cores, e.g. under a container CPU quota, and the thread that
 * is late must get to run), and only then sleep on a futex; wake-ups are
 * syscalls only when someone actually sleeps. */
#define _GNU_SOURCE
#include "pool.h"

#include "errors.h"
#include "kiln_model.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SPIN_ITERATIONS 100   /* busy polls, a few us: back-to-back calls never sleep */
#define YIELD_ITERATIONS 2000 /* then polls that give the core away, should threads outnumber cores */

struct worker {
    struct pool *pool;
    int index;
    pthread_t thread;
};

struct pool {
    int threads;
    struct worker *workers;  /* [1, threads); the caller is thread 0 */
    kiln_task_fn fn;         /* the current job, published by bumping generation */
    void *ctx;
    int64_t n;
    atomic_uint generation;  /* one per job */
    atomic_uint finished;    /* generation of the last job every worker finished */
    atomic_int pending;      /* workers still in the current job */
    atomic_uint worker_sleepers;
    atomic_uint caller_sleepers;
    atomic_bool stop;
};

/* Set on pool threads and on the caller while it runs its chunk: a nested
 * kiln_parallel_for then runs inline instead of deadlocking. */
static _Thread_local bool inside_task;

static void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void wait_while(atomic_uint *word, unsigned value, atomic_uint *sleepers)
{
    for (int i = 0; i < SPIN_ITERATIONS + YIELD_ITERATIONS; i++) {
        if (atomic_load(word) != value) {
            return;
        }
        if (i < SPIN_ITERATIONS) {
            cpu_relax();
        } else {
            sched_yield();
        }
    }
    atomic_fetch_add(sleepers, 1);
    while (atomic_load(word) == value) {
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
    }
    atomic_fetch_sub(sleepers, 1);
}

/* Sequentially consistent with wait_while: a sleeper either sees the new value
 * before sleeping or is counted here. */
static void wake_all(atomic_uint *word, atomic_uint *sleepers)
{
    if (atomic_load(sleepers) > 0) {
        syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    }
}

static void run_chunk(const struct pool *pool, int index)
{
    int64_t base = pool->n / pool->threads;
    int64_t extra = pool->n % pool->threads;
    int64_t begin = index * base + (index < extra ? index : extra);
    int64_t end = begin + base + (index < extra ? 1 : 0);
    if (begin < end) {
        pool->fn(pool->ctx, begin, end);
    }
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    struct pool *pool = self->pool;
    unsigned seen = 0;
    inside_task = true;
    for (;;) {
        wait_while(&pool->generation, seen, &pool->worker_sleepers);
        seen++; /* the caller starts no job before every worker finished the last */
        if (atomic_load(&pool->stop)) {
            return NULL;
        }
        run_chunk(pool, self->index);
        if (atomic_fetch_sub(&pool->pending, 1) == 1) {
            atomic_store(&pool->finished, seen);
            wake_all(&pool->finished, &pool->caller_sleepers);
        }
    }
}

/* Hands the job to the workers, runs chunk 0, waits for the rest. */
static void run_job(struct pool *pool, kiln_task_fn fn, void *ctx, int64_t n)
{
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    atomic_store(&pool->pending, pool->threads - 1);
    unsigned previous = atomic_fetch_add(&pool->generation, 1);
    wake_all(&pool->generation, &pool->worker_sleepers);
    inside_task = true;
    run_chunk(pool, 0);
    inside_task = false;
    wait_while(&pool->finished, previous, &pool->caller_sleepers);
}

void kiln_parallel_for(void *handle, kiln_task_fn fn, void *ctx, int64_t n)
{
    struct pool *pool = handle;
    if (n <= 0) {
        return;
    }
    if (pool == NULL || pool->threads == 1 || n == 1 || inside_task) {
        fn(ctx, 0, n);
        return;
    }
    run_job(pool, fn, ctx, n);
}

struct pool *pool_create(int threads)
{
    threads = threads > POOL_MAX_THREADS ? POOL_MAX_THREADS : threads;
    struct pool *pool = calloc(1, sizeof *pool);
    struct worker *workers = calloc((size_t)threads, sizeof *workers);
    if (pool == NULL || workers == NULL) {
        fail("out of memory creating %d threads", threads);
    }
    pool->threads = threads;
    pool->workers = workers;
    for (int i = 1; i < threads; i++) {
        workers[i] = (struct worker){.pool = pool, .index = i};
        int err = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        if (err != 0) {
            fail("cannot start thread %d of %d: %s", i + 1, threads, strerror(err));
        }
    }
    return pool;
}

void pool_destroy(struct pool *pool)
{
    atomic_store(&pool->stop, true);
    atomic_fetch_add(&pool->generation, 1);
    wake_all(&pool->generation, &pool->worker_sleepers);
    for (int i = 1; i < pool->threads; i++) {
        pthread_join(pool->workers[i].thread, NULL);
    }
    free(pool->workers);
    free(pool);
}

int pool_default_threads(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        return 1;
    }
    int count = CPU_COUNT(&set);
    return count < 1 ? 1 : count > POOL_MAX_THREADS ? POOL_MAX_THREADS : count;
}
