/* One thread pool for BLAS and the compiled loops (nncore; glue in _blas_pool.pxi).

   OpenBLAS >= 0.3.27 hands its parallel jobs to a caller-supplied function
   when one is registered (openblas_set_threads_callback_function). nncore's
   hook, nnc_blas_jobs, runs them on the OpenMP team that the compiled loops
   use, so OpenBLAS's own workers (which spin after each GEMM and fight any
   OpenMP region next to them) stay asleep. The GEMMs split the same way
   (OpenBLAS chooses the jobs), so every bit is as on OpenBLAS's own threads.

   Jobs of one call synchronise with each other, so all of them must run at
   once: one thread each, with a nested level allowed if we are already inside
   a region. OpenBLAS indexes its per-thread work buffers by the job's number:
   two callers running jobs at once (fits in two Python threads) would share
   them. Its own pool serialises callers; so does nnc_blas_jobs_lock.

   Fork. GNU OpenMP cannot start a thread team in a child forked after the
   parent ran one (the child's team waits for threads that were not copied),
   and OpenBLAS calls the hook in the child too, so a forked child would hang
   in its first multi-threaded BLAS call. nnc_blas_pool_atfork_child runs in
   every child (pthread_atfork): it takes the hook out of OpenBLAS (which then
   runs its jobs on its own threads, which it restarts after a fork), resets
   the lock (another thread of the parent may have held it) and tells the
   glue, through nnc_forked_child, to keep nncore's OpenMP loops on one
   thread in that process. */
#ifndef NNCORE_BLAS_POOL_H
#define NNCORE_BLAS_POOL_H

#include <stddef.h>

#include "_fp_mode.h"

#if defined(_OPENMP) && defined(__linux__)
#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#define NNC_BLAS_POOL 1
static pthread_mutex_t nnc_blas_jobs_lock = PTHREAD_MUTEX_INITIALIZER;
#else
#define NNC_BLAS_POOL 0
#endif

typedef void (*nnc_dojob_t)(int, void*, int);
typedef void (*nnc_jobs_t)(int, nnc_dojob_t, int, size_t, void*, int);
typedef void (*nnc_set_jobs_t)(nnc_jobs_t);

static long nnc_blas_pool_calls = 0;       /* parallel BLAS sections run on our team */
static nnc_set_jobs_t nnc_blas_pool_installed_in = NULL;   /* setter holding our hook */
static int nnc_blas_pool_users = 0;       /* epoch loops running now (under the GIL) */
static int nnc_forked_child = 0;          /* 1 in a child forked from this process */

static void nnc_blas_jobs(int sync, nnc_dojob_t dojob, int numjobs, size_t elsize,
                          void* jobdata, int dojob_data) {
#if NNC_BLAS_POOL
    int level = omp_get_active_level(), max_levels = omp_get_max_active_levels();
    /* The caller's FTZ/DAZ bits (nncore.set_flush_denormal, _fp_mode.h) on every
       job's thread for the job, so the GEMM's bits do not depend on the thread. */
    unsigned caller_bits = nnc_fp_bits();
    (void)sync;
    __atomic_fetch_add(&nnc_blas_pool_calls, 1, __ATOMIC_RELAXED);
    if (level >= max_levels) omp_set_max_active_levels(level + 1);
    pthread_mutex_lock(&nnc_blas_jobs_lock);
    #pragma omp parallel num_threads(numjobs)
    {
        int i;
        unsigned own_bits = nnc_fp_swap_bits(caller_bits);
        for (i = omp_get_thread_num(); i < numjobs; i += omp_get_num_threads())
            dojob(i, (char*)jobdata + (size_t)i * elsize, dojob_data);
        nnc_fp_swap_bits(own_bits);
    }
    pthread_mutex_unlock(&nnc_blas_jobs_lock);
    if (level >= max_levels) omp_set_max_active_levels(max_levels);
#else
    (void)sync; (void)dojob; (void)numjobs; (void)elsize; (void)jobdata; (void)dojob_data;
#endif
}

/* openblas_set_threads_callback_function of the BLAS that the library holding
   ``addr`` (SciPy's cython_blas) links to, or NULL. */
static nnc_set_jobs_t nnc_blas_pool_setter(void* addr) {
#if NNC_BLAS_POOL
    Dl_info info;
    void* lib;
    void* setter;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname) return NULL;
    lib = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return NULL;
    setter = dlsym(lib, "openblas_set_threads_callback_function");
    if (!setter) setter = dlsym(lib, "scipy_openblas_set_threads_callback_function");
    dlclose(lib);
    return (nnc_set_jobs_t)setter;
#else
    (void)addr;
    return NULL;
#endif
}

/* OpenBLAS's own thread count, get and set, from the library holding ``addr``
   (plain or scipy_-prefixed names); both NULL if either is missing. The
   2-thread dense step (_dense_tasks.pxi) sets 1 around its task region, where
   each of the two threads makes single-threaded BLAS calls of its own. */
typedef void (*nnc_blas_set_threads_t)(int);
typedef int (*nnc_blas_get_threads_t)(void);
static nnc_blas_set_threads_t nnc_blas_set_threads = NULL;
static nnc_blas_get_threads_t nnc_blas_get_threads = NULL;

static void nnc_blas_thread_fns(void* addr) {
#if NNC_BLAS_POOL
    Dl_info info;
    void* lib;
    void* set;
    void* get;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname) return;
    lib = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return;
    set = dlsym(lib, "openblas_set_num_threads");
    if (!set) set = dlsym(lib, "scipy_openblas_set_num_threads");
    get = dlsym(lib, "openblas_get_num_threads");
    if (!get) get = dlsym(lib, "scipy_openblas_get_num_threads");
    dlclose(lib);
    if (set && get) {
        nnc_blas_set_threads = (nnc_blas_set_threads_t)set;
        nnc_blas_get_threads = (nnc_blas_get_threads_t)get;
    }
#else
    (void)addr;
#endif
}

/* Whether the hook can be installed: a setter, and every job sure to get its
   own thread (no OMP_DYNAMIC, no OMP_THREAD_LIMIT below ``most``). */
static int nnc_blas_pool_ok(nnc_set_jobs_t setter, int most) {
#if NNC_BLAS_POOL
    return setter && !omp_get_dynamic() && omp_get_thread_limit() >= most;
#else
    (void)setter; (void)most;
    return 0;
#endif
}

static int nnc_blas_pool_is_installed(void) { return nnc_blas_pool_installed_in != NULL; }

/* Install (on = 1) or remove the hook. Returns whether it is installed. */
static int nnc_blas_pool_set(nnc_set_jobs_t setter, int on, int most) {
    if (on && !nnc_blas_pool_ok(setter, most)) return 0;
    if (setter) setter(on ? nnc_blas_jobs : (nnc_jobs_t)0);
    nnc_blas_pool_installed_in = on ? setter : NULL;
    return on;
}

#if NNC_BLAS_POOL
static void nnc_blas_pool_atfork_child(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    nnc_forked_child = 1;
    if (nnc_blas_pool_installed_in) nnc_blas_pool_installed_in((nnc_jobs_t)0);
    nnc_blas_pool_installed_in = NULL;
    nnc_blas_pool_users = 0;
    nnc_blas_jobs_lock = fresh;
}
#endif

/* Registers the fork handler once (at module import). 0 on success. */
static int nnc_blas_pool_register_atfork(void) {
#if NNC_BLAS_POOL
    return pthread_atfork(NULL, NULL, nnc_blas_pool_atfork_child);
#else
    return 0;
#endif
}

#endif /* NNCORE_BLAS_POOL_H */
