/* kiln_parallel_for splits [0, n) into a few contiguous chunks per thread.
 * Each thread first claims, one at a time, the chunks of its own share (thread
 * t of T: the t-th T-th of [0, n)), then takes the last unclaimed chunks of the
 * others' shares, so a worker that is late (asleep, or preempted on a busy
 * host) costs at most the chunks it did not take, and two threads are never
 * much slower than one. Shares are the same for every job of the same size, so
 * a thread mostly reads what it wrote in the layer before: its own cache, not
 * the other core's (which can be five times further away on a virtual
 * machine whose cores the host places apart).
 *
 * Waiting threads poll, yielding the core now and then (threads may outnumber
 * cores, and the thread that is late must get to run), inside an inference
 * (pool_begin .. pool_end) and for SPIN_NS after it, and then sleep on a futex,
 * so an idle launcher or a server between requests burns no core. The
 * pool_begin of the next inference wakes the sleepers while the first, small
 * layers still run inline. Wake-ups are syscalls only when
 * someone sleeps. */
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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SPIN_NS 50000          /* polls before sleeping, once the pool is cold */
/* A thread that polls without yielding halves the speed of the one it waits for
 * when both share a core (another process has the other one): a yield is cheap
 * when nobody else wants the core. */
#define POLLS_PER_YIELD 64
#define CHUNKS_PER_THREAD 4    /* enough that a late thread's share is small, few enough to keep runs long */
#define CACHE_LINE 64

struct worker {
    /* end << 32 | next: the chunks of this thread's share not yet claimed */
    _Alignas(CACHE_LINE) atomic_uint_least64_t share;
    struct pool *pool;
    pthread_t thread;
    int index;
};

/* Fields on separate cache lines by who writes them, so spinning readers of one
 * do not steal the line another thread is writing. */
struct pool {
    int threads;
    struct worker *workers;  /* one per thread, the caller's first (its thread unused) */
    /* The current job: written by the caller before it publishes the shares, and
     * not again until every chunk is done. */
    _Alignas(CACHE_LINE) kiln_task_fn fn;
    void *ctx;
    int64_t n;
    int64_t chunks;
    unsigned job;
    _Alignas(CACHE_LINE) atomic_uint done;      /* chunks of the current job finished */
    atomic_uint finished;                        /* the last job whose chunks all finished */
    atomic_uint caller_sleepers;
    _Alignas(CACHE_LINE) atomic_uint generation; /* bumped on a new job or a pool_begin */
    atomic_uint worker_sleepers;
    atomic_bool hot;                             /* inside an inference */
    atomic_bool stop;
};

/* The pool whose chunks this thread runs (its workers', and the caller's while it
 * takes chunks): a nested kiln_parallel_for on it runs inline instead of
 * deadlocking; one on another pool (a serving lane's, driven from a chunk) runs
 * on that pool's threads. */
static _Thread_local struct pool *running;

static void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void sleep_while(atomic_uint *word, unsigned value, atomic_uint *sleepers)
{
    atomic_fetch_add(sleepers, 1);
    while (atomic_load(word) == value) {
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
    }
    atomic_fetch_sub(sleepers, 1);
}

/* Waits while *word == value: polls, giving the core away every POLLS_PER_YIELD
 * polls, while the pool is hot and for SPIN_NS after (so back-to-back
 * inferences never sleep in between); then sleeps. */
static void wait_while(struct pool *pool, atomic_uint *word, unsigned value, atomic_uint *sleepers)
{
    int64_t sleep_at = now_ns() + SPIN_NS;
    for (unsigned i = 1; atomic_load(word) == value; i++) {
        if (i % POLLS_PER_YIELD != 0) {
            cpu_relax();
            continue;
        }
        int64_t now = now_ns();
        if (atomic_load(&pool->hot)) {
            sleep_at = now + SPIN_NS;
        }
        if (now < sleep_at) {
            sched_yield();
        } else {
            sleep_while(word, value, sleepers);
        }
    }
}

/* Sequentially consistent with sleep_while: a sleeper either sees the new value
 * before sleeping or is counted here. */
static void wake_all(atomic_uint *word, atomic_uint *sleepers)
{
    if (atomic_load(sleepers) > 0) {
        syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    }
}

/* Claims the first unclaimed chunk of a share, or (`last`) its last one; -1 when
 * none is left. */
static int64_t claim_from(struct worker *w, bool last)
{
    uint_least64_t word = atomic_load(&w->share);
    for (;;) {
        uint_least64_t next = word & UINT32_MAX, end = word >> 32;
        if (next >= end) {
            return -1;
        }
        uint_least64_t taken = last ? (end - 1) << 32 | next : word + 1;
        if (atomic_compare_exchange_weak(&w->share, &word, taken)) {
            return (int64_t)(last ? end - 1 : next);
        }
    }
}

/* Claims a chunk of whatever job is published, from thread `self`'s share first;
 * -1 when none is left. A claimed chunk pins the job: the caller rewrites it
 * only after all are done. */
static int64_t claim_chunk(struct pool *pool, int self)
{
    int64_t chunk = claim_from(&pool->workers[self], false);
    for (int i = 1; chunk < 0 && i < pool->threads; i++) {
        chunk = claim_from(&pool->workers[(self + i) % pool->threads], true);
    }
    return chunk;
}

static void run_chunk(const struct pool *pool, int64_t chunk)
{
    int64_t chunks = pool->chunks;
    int64_t base = pool->n / chunks;
    int64_t extra = pool->n % chunks;
    int64_t begin = chunk * base + (chunk < extra ? chunk : extra);
    pool->fn(pool->ctx, begin, begin + base + (chunk < extra ? 1 : 0));
}

/* Runs chunks until none is left to claim; the thread finishing the job's last
 * one tells the caller. */
static void run_chunks(struct pool *pool, int self)
{
    for (int64_t chunk; (chunk = claim_chunk(pool, self)) >= 0;) {
        unsigned job = pool->job;
        int64_t chunks = pool->chunks;
        run_chunk(pool, chunk);
        if (atomic_fetch_add(&pool->done, 1) + 1 == (unsigned)chunks) {
            atomic_store(&pool->finished, job);
            wake_all(&pool->finished, &pool->caller_sleepers);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    struct pool *pool = self->pool;
    unsigned seen = 0;
    running = pool;
    for (;;) {
        wait_while(pool, &pool->generation, seen, &pool->worker_sleepers);
        seen = atomic_load(&pool->generation);
        if (atomic_load(&pool->stop)) {
            return NULL;
        }
        run_chunks(pool, self->index);
    }
}

static void run_job(struct pool *pool, kiln_task_fn fn, void *ctx, int64_t n)
{
    int64_t most = (int64_t)pool->threads * CHUNKS_PER_THREAD;
    int64_t chunks = n < most ? n : most;
    unsigned previous = pool->job;
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->chunks = chunks;
    pool->job = previous + 1;
    atomic_store(&pool->done, 0);
    for (int t = 0; t < pool->threads; t++) {
        uint_least64_t begin = (uint_least64_t)(chunks * t / pool->threads);
        uint_least64_t end = (uint_least64_t)(chunks * (t + 1) / pool->threads);
        atomic_store(&pool->workers[t].share, end << 32 | begin);
    }
    atomic_fetch_add(&pool->generation, 1);
    wake_all(&pool->generation, &pool->worker_sleepers);
    struct pool *outer = running;
    running = pool;
    run_chunks(pool, 0);
    running = outer;
    wait_while(pool, &pool->finished, previous, &pool->caller_sleepers);
}

void kiln_parallel_for(void *handle, kiln_task_fn fn, void *ctx, int64_t n)
{
    struct pool *pool = handle;
    if (n <= 0) {
        return;
    }
    if (pool == NULL || pool->threads == 1 || n == 1 || pool == running) {
        fn(ctx, 0, n);
        return;
    }
    run_job(pool, fn, ctx, n);
}

void pool_begin(struct pool *pool)
{
    atomic_store(&pool->hot, true);
    atomic_fetch_add(&pool->generation, 1);
    wake_all(&pool->generation, &pool->worker_sleepers);
}

void pool_end(struct pool *pool)
{
    atomic_store(&pool->hot, false);
}

struct pool *pool_create(int threads)
{
    threads = threads > POOL_MAX_THREADS ? POOL_MAX_THREADS : threads;
    struct pool *pool = aligned_alloc(CACHE_LINE, sizeof(struct pool));
    struct worker *workers = aligned_alloc(CACHE_LINE, (size_t)threads * sizeof *workers);
    if (pool == NULL || workers == NULL) {
        fail("out of memory creating %d threads", threads);
    }
    memset(pool, 0, sizeof *pool);
    memset(workers, 0, (size_t)threads * sizeof *workers);
    pool->threads = threads;
    pool->workers = workers;
    for (int i = 1; i < threads; i++) {
        workers[i].pool = pool;
        workers[i].index = i;
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
