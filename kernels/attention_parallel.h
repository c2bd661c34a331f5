/* Fork-join task runner for the attention kernels (included by attention.c and attention_backward.c).
 *
 * A call's work is cut into n_tasks independent tasks; n_threads threads (the
 * caller's own thread is one of them) claim task numbers from one atomic counter
 * in the call's own stack frame, so there is no global mutable state and several
 * calls may run at once. Each thread gets its own work buffer, all allocated
 * before any task runs: when that fails nothing has been written.
 * Thread count: GLASSBOX_NUM_THREADS when it is a positive integer, else the
 * online cores. The kernel calls no BLAS, so it never competes with BLAS threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define GB_MAX_THREADS 64
#define GB_ALIGN 64

typedef void (*gb_task_fn)(void *context, int64_t task, void *work);

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

/* GLASSBOX_NUM_THREADS when set to a positive integer, else the online cores (at most GB_MAX_THREADS). */
static int gb_configured_threads(void)
{
    long count = 0;
    const char *forced = getenv("GLASSBOX_NUM_THREADS");
    if (forced && *forced) count = strtol(forced, NULL, 10);
    if (count <= 0) count = sysconf(_SC_NPROCESSORS_ONLN);
    if (count <= 0) count = 1;
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

/* Runs run(context, t, work) for every t < n_tasks on up to n_threads threads.
 * A thread that cannot be started just leaves its share to the others. */
static int gb_run_tasks(gb_task_fn run, void *context, int64_t n_tasks, int64_t n_threads, size_t work_bytes)
{
    if (n_threads > n_tasks) n_threads = n_tasks;
    if (n_threads > GB_MAX_THREADS) n_threads = GB_MAX_THREADS;
    if (n_threads < 1) n_threads = 1;
    const size_t stride = (work_bytes + GB_ALIGN) / GB_ALIGN * GB_ALIGN;  /* never 0 */
    char *work = aligned_alloc(GB_ALIGN, stride * (size_t)n_threads);
    if (!work) return GB_ERR_NOMEM;
    gb_task_queue queue = {.run = run, .context = context, .n_tasks = n_tasks};
    atomic_init(&queue.next, 0);
    pthread_t threads[GB_MAX_THREADS];
    gb_worker workers[GB_MAX_THREADS];
    int started[GB_MAX_THREADS] = {0};
    for (int64_t t = 1; t < n_threads; t++) {
        workers[t] = (gb_worker){.queue = &queue, .work = work + (size_t)t * stride};
        started[t] = pthread_create(&threads[t], NULL, gb_worker_main, &workers[t]) == 0;
    }
    gb_drain(&queue, work);
    for (int64_t t = 1; t < n_threads; t++)
        if (started[t]) pthread_join(threads[t], NULL);
    free(work);
    return GB_OK;
}
