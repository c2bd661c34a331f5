/* The task runner declared in threads.h, and its one thread pool.
 *
 * A call's work is cut into n_tasks independent tasks; n_threads threads (the caller's own
 * thread is one of them) claim task numbers from one atomic counter in the call's own stack
 * frame. Each thread gets its own work buffer, all allocated before any task runs, so that a
 * failed allocation leaves nothing half written.
 * The other threads come from one persistent pool per process, shared by every kernel (one set
 * of threads, however many kernels a model calls): started on first use, spinning briefly and
 * then parked on a condition variable between calls, so a small call does not pay ~25 us per
 * thread to start and join it, and a call soon after another, of any kernel, finds them still
 * spinning. One call uses the pool at a time: a call that finds it busy (another Python thread
 * is in a kernel) starts threads of its own for that call, so concurrent calls never wait for
 * each other. A thread that cannot be started leaves its share to the others.
 * The kernels call no BLAS, so they never compete with BLAS threads. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "attention.h"  /* the status codes */
#include "threads.h"

#define GB_ALIGN 64

typedef struct {
    gb_task_fn run;
    void *context;
    int64_t n_tasks;
    atomic_llong next;  /* the next unclaimed task number */
} gb_task_queue;

typedef struct {
    gb_task_queue *queue;
    void *work;
} gb_worker;

/* The cores this process may run on: its affinity mask on Linux (as core.parallel.cores()
 * counts them, so that a server started under taskset or a cpuset does not oversubscribe),
 * else the online cores. */
static long gb_count_cores(void)
{
#ifdef __linux__
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) return CPU_COUNT(&allowed);
#endif
    return sysconf(_SC_NPROCESSORS_ONLN);
}

/* gb_count_cores(), asked once per process: each ask is a system call, and sysconf reads a file
 * under /sys every time (5 us on the 2-core test machines, a fifth of a small 2-thread call). */
static long gb_usable_cores(void)
{
    static atomic_long cached;  /* 0: not asked yet */
    long count = atomic_load_explicit(&cached, memory_order_relaxed);
    if (count == 0) {
        count = gb_count_cores();
        if (count <= 0) count = 1;
        atomic_store_explicit(&cached, count, memory_order_relaxed);
    }
    return count;
}

/* GLASSBOX_NUM_THREADS when set to a positive integer, else gb_usable_cores() (at most GB_MAX_THREADS). */
int gb_configured_threads(void)
{
    long count = 0;
    const char *forced = getenv("GLASSBOX_NUM_THREADS");
    if (forced && *forced) count = strtol(forced, NULL, 10);
    if (count <= 0) count = gb_usable_cores();
    return count > GB_MAX_THREADS ? GB_MAX_THREADS : (int)count;
}

static void gb_drain(gb_task_queue *queue, void *work)
{
    for (;;) {
        int64_t task = atomic_fetch_add_explicit(&queue->next, 1, memory_order_relaxed);
        if (task >= queue->n_tasks) return;
        queue->run(queue->context, task, work);
    }
}

static void *gb_worker_main(void *arg)
{
    gb_worker *worker = arg;
    gb_drain(worker->queue, worker->work);
    return NULL;
}

/* The persistent workers. Worker w (1-based) takes part in a round when w <= active, with
 * work slot w; the caller is slot 0. Between rounds a worker first spins for up to
 * GB_SPIN_NS on the round counter (a call that follows soon after, as the next layer's
 * does, then needs no wake-up through the kernel: that costs ~15-20 us), then sleeps. The
 * caller waits for the workers the same way. */
#define GB_SPIN_NS 50000

static struct {
    pthread_mutex_t owner;  /* held by the call that uses the pool */
    pthread_mutex_t lock;   /* guards the sleeps and wake-ups, and everything below but the atomics */
    pthread_cond_t wake, done;
    gb_task_queue *queue;
    char *work;
    size_t stride;
    atomic_llong round;     /* one more for every call that uses the pool (written under lock) */
    atomic_int finished;    /* workers done with this round */
    int64_t first_round[GB_MAX_THREADS];  /* the round at each worker's start (it waits for the next) */
    int n_workers, active;
} gb_pool = {.owner = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
            .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static pthread_once_t gb_pool_once = PTHREAD_ONCE_INIT;

static inline void gb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t gb_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* 1 when the round moved past `seen`. */
static int gb_round_moved(int64_t seen)
{
    return atomic_load_explicit(&gb_pool.round, memory_order_acquire) != seen;
}

/* 1 when `active` workers finished this round. */
static int gb_workers_finished(int64_t active)
{
    return atomic_load_explicit(&gb_pool.finished, memory_order_acquire) >= active;
}

/* 1 when done(arg) held within GB_SPIN_NS of spinning. */
static inline int gb_spin_until(int (*done)(int64_t), int64_t arg)
{
    const int64_t deadline = gb_now_ns() + GB_SPIN_NS;
    for (int spins = 1;; spins++) {
        if (done(arg)) return 1;
        gb_cpu_relax();
        if (spins % 64 == 0 && gb_now_ns() > deadline) return 0;
    }
}

static void *gb_pool_worker(void *arg)
{
    const int slot = (int)(intptr_t)arg;
    pthread_mutex_lock(&gb_pool.lock);
    int64_t seen = gb_pool.first_round[slot];
    pthread_mutex_unlock(&gb_pool.lock);
    for (;;) {
        if (!gb_spin_until(gb_round_moved, seen)) {
            pthread_mutex_lock(&gb_pool.lock);
            while (atomic_load(&gb_pool.round) == seen) pthread_cond_wait(&gb_pool.wake, &gb_pool.lock);
            pthread_mutex_unlock(&gb_pool.lock);
        }
        pthread_mutex_lock(&gb_pool.lock);  /* the round's fields, as the caller wrote them */
        seen = atomic_load(&gb_pool.round);
        const int active = gb_pool.active;
        gb_task_queue *queue = gb_pool.queue;
        void *work = gb_pool.work + (size_t)slot * gb_pool.stride;
        pthread_mutex_unlock(&gb_pool.lock);
        if (slot > active) continue;  /* this call needs fewer threads */
        gb_drain(queue, work);
        if (atomic_fetch_add_explicit(&gb_pool.finished, 1, memory_order_acq_rel) + 1 == active) {
            pthread_mutex_lock(&gb_pool.lock);
            pthread_cond_signal(&gb_pool.done);
            pthread_mutex_unlock(&gb_pool.lock);
        }
    }
    return NULL;
}

/* A forked child has none of the parent's threads: it starts with an empty pool. */
static void gb_pool_after_fork(void)
{
    pthread_mutex_init(&gb_pool.owner, NULL);
    pthread_mutex_init(&gb_pool.lock, NULL);
    pthread_cond_init(&gb_pool.wake, NULL);
    pthread_cond_init(&gb_pool.done, NULL);
    gb_pool.n_workers = 0;
}

static void gb_pool_setup(void) { pthread_atfork(NULL, NULL, gb_pool_after_fork); }

/* Runs the queue on the caller and up to `helpers` pool workers (the caller holds gb_pool.owner). */
static void gb_pool_run(gb_task_queue *queue, char *work, size_t stride, int helpers)
{
    pthread_mutex_lock(&gb_pool.lock);
    while (gb_pool.n_workers < helpers) {
        const int slot = gb_pool.n_workers + 1;
        pthread_t thread;
        gb_pool.first_round[slot] = atomic_load(&gb_pool.round);
        if (pthread_create(&thread, NULL, gb_pool_worker, (void *)(intptr_t)slot) != 0) break;
        pthread_detach(thread);
        gb_pool.n_workers = slot;
    }
    const int active = helpers < gb_pool.n_workers ? helpers : gb_pool.n_workers;
    gb_pool.active = active;
    atomic_store(&gb_pool.finished, 0);
    gb_pool.queue = queue, gb_pool.work = work, gb_pool.stride = stride;
    atomic_fetch_add_explicit(&gb_pool.round, 1, memory_order_release);
    pthread_cond_broadcast(&gb_pool.wake);
    pthread_mutex_unlock(&gb_pool.lock);
    gb_drain(queue, work);
    if (gb_spin_until(gb_workers_finished, active)) return;
    pthread_mutex_lock(&gb_pool.lock);
    while (atomic_load(&gb_pool.finished) < active) pthread_cond_wait(&gb_pool.done, &gb_pool.lock);
    pthread_mutex_unlock(&gb_pool.lock);
}

/* Runs the queue on the caller and `helpers` threads started for this call alone. */
static void gb_spawn_run(gb_task_queue *queue, char *work, size_t stride, int helpers)
{
    pthread_t threads[GB_MAX_THREADS];
    gb_worker workers[GB_MAX_THREADS];
    int started[GB_MAX_THREADS] = {0};
    for (int t = 1; t <= helpers; t++) {
        workers[t] = (gb_worker){.queue = queue, .work = work + (size_t)t * stride};
        started[t] = pthread_create(&threads[t], NULL, gb_worker_main, &workers[t]) == 0;
    }
    gb_drain(queue, work);
    for (int t = 1; t <= helpers; t++)
        if (started[t]) pthread_join(threads[t], NULL);
}

/* One thread: the caller's alone. More: the pool, or threads of the call's own while another call
 * has the pool. */
int gb_run_tasks(gb_task_fn run, void *context, int64_t n_tasks, int64_t n_threads, size_t work_bytes)
{
    if (n_threads > n_tasks) n_threads = n_tasks;
    if (n_threads > GB_MAX_THREADS) n_threads = GB_MAX_THREADS;
    if (n_threads < 1) n_threads = 1;
    const size_t stride = (work_bytes + GB_ALIGN) / GB_ALIGN * GB_ALIGN;  /* never 0 */
    char *work = aligned_alloc(GB_ALIGN, stride * (size_t)n_threads);
    if (!work) return GB_ERR_NOMEM;
    gb_task_queue queue = {.run = run, .context = context, .n_tasks = n_tasks};
    atomic_init(&queue.next, 0);
    const int helpers = (int)n_threads - 1;
    if (helpers == 0) {
        gb_drain(&queue, work);
    } else if (pthread_once(&gb_pool_once, gb_pool_setup) == 0 && pthread_mutex_trylock(&gb_pool.owner) == 0) {
        gb_pool_run(&queue, work, stride, helpers);
        pthread_mutex_unlock(&gb_pool.owner);
    } else {
        gb_spawn_run(&queue, work, stride, helpers);
    }
    free(work);
    return GB_OK;
}
