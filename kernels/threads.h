/* The kernels' task runner: one persistent thread pool for the whole extension (threads.c), so
 * that the attention forward and backward and the few-row products take turns on the same
 * threads instead of keeping a set of threads each. Internal to the extension: these symbols
 * are hidden, the .so exports only the public headers' functions. */
#ifndef GLASSBOX_THREADS_H
#define GLASSBOX_THREADS_H

#include <stddef.h>
#include <stdint.h>

#define GB_MAX_THREADS 64

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* One task: run(context, task, work), where work is the running thread's own buffer. */
typedef void (*gb_task_fn)(void *context, int64_t task, void *work);

/* Threads a large call uses: GLASSBOX_NUM_THREADS when set to a positive integer, else the cores
 * the process may run on; at most GB_MAX_THREADS. */
int gb_configured_threads(void);

/* Runs run(context, t, work) for every t < n_tasks on up to n_threads threads (the caller's
 * thread is one of them), each with its own work buffer of work_bytes, aligned to 64 bytes.
 * Returns GB_OK, or GB_ERR_NOMEM (attention.h's codes) when the buffers could not be allocated:
 * then no task has run. */
int gb_run_tasks(gb_task_fn run, void *context, int64_t n_tasks, int64_t n_threads, size_t work_bytes);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
