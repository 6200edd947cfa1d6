/* Flushing subnormal floats in nncore's compiled training loops
   (nncore.set_flush_denormal; glue in _fp_mode.pxi).

   Why: arithmetic on subnormal floats takes a microcode assist on x86 (about
   50x slower per instruction on the development Xeon). A ReLU network whose
   units die keeps exactly-zero gradients, and Adam's first moment then decays
   by beta1 per step into the subnormal range (bench/subnormal_adam.py). XLA's
   CPU code flushes subnormals to zero; nncore, like PyTorch, keeps IEEE
   semantics unless asked, as ``torch.set_flush_denormal(True)`` asks.

   How: on x86-64 the SSE control register MXCSR has two bits, FTZ (results
   that would be subnormal become a zero of the same sign) and DAZ (subnormal
   inputs read as a zero of the same sign). They belong to each thread. With the
   switch on, every compiled entry point that applies it (the epoch loop and
   the optimizer steps) sets both on the calling thread and on each OpenMP
   worker of its team before any arithmetic, and afterwards puts back the two
   bits each thread had, so nothing leaks into the caller's NumPy or into other
   users of the OpenMP threads (the other MXCSR bits, rounding mode and
   exception flags included, are left alone). BLAS jobs run on nncore's team
   (_blas_pool.h) take the bits of the thread that called BLAS, so a GEMM's
   output does not depend on which thread computed which block.

   Worker threads are addressed by their team number in a region at least as
   wide as the loop's: GNU OpenMP gives a non-nested team of the same master
   the same pool threads in the same order, so the region that saves and the
   one that restores meet the same threads. Known limit: a parallel region
   inside the loop wider than OpenMP's default width (BLAS given more threads
   than that) would create threads that keep flushing afterwards. */
#ifndef NNCORE_FP_MODE_H
#define NNCORE_FP_MODE_H

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define NNC_FP_FLUSH_SUPPORTED 1
#else
#define NNC_FP_FLUSH_SUPPORTED 0
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#define NNC_MXCSR_FTZ 0x8000u
#define NNC_MXCSR_DAZ 0x0040u
#define NNC_MXCSR_FLUSH (NNC_MXCSR_FTZ | NNC_MXCSR_DAZ)
#define NNC_FP_TEAM_MAX 256

/* The switch (set under the GIL by _fp_mode.pxi; read when a loop starts). */
static int nnc_flush_denormal = 0;

/* The FTZ/DAZ bits of the calling thread (0 where there is no MXCSR). */
static inline unsigned nnc_fp_bits(void) {
#if NNC_FP_FLUSH_SUPPORTED
    return _mm_getcsr() & NNC_MXCSR_FLUSH;
#else
    return 0;
#endif
}

/* Put the calling thread's FTZ/DAZ bits to ``bits``; returns the bits it had. */
static inline unsigned nnc_fp_swap_bits(unsigned bits) {
#if NNC_FP_FLUSH_SUPPORTED
    unsigned csr = _mm_getcsr();
    if ((csr & NNC_MXCSR_FLUSH) != bits) _mm_setcsr((csr & ~NNC_MXCSR_FLUSH) | bits);
    return csr & NNC_MXCSR_FLUSH;
#else
    (void)bits;
    return 0;
#endif
}

/* Workers 1 .. threads-1 of the team: swap in ``bits`` (saving theirs in
   saved[t]) or, with ``restore``, put saved[t] back. */
static void nnc_fp_team(int threads, unsigned bits, unsigned* saved, int restore) {
#if defined(_OPENMP) && NNC_FP_FLUSH_SUPPORTED
    if (threads > NNC_FP_TEAM_MAX) threads = NNC_FP_TEAM_MAX;
    if (threads <= 1) return;
    #pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        if (t > 0) {
            if (restore) nnc_fp_swap_bits(saved[t]);
            else saved[t] = nnc_fp_swap_bits(bits);
        }
    }
#else
    (void)threads; (void)bits; (void)saved; (void)restore;
#endif
}

/* The FTZ/DAZ bits of each thread of a team of ``threads`` (out[t]; for tests). */
static void nnc_fp_team_bits(int threads, unsigned* out) {
    int t;
    for (t = 0; t < threads && t < NNC_FP_TEAM_MAX; t++) out[t] = 0xffffffffu;
#ifdef _OPENMP
    if (threads > NNC_FP_TEAM_MAX) threads = NNC_FP_TEAM_MAX;
    #pragma omp parallel num_threads(threads)
    out[omp_get_thread_num()] = nnc_fp_bits();
#else
    if (threads > 0) out[0] = nnc_fp_bits();
#endif
}

/* A loop of ``threads`` threads starts: with the switch on, FTZ and DAZ on its
   team and then on this thread. Returns 0 when it changed nothing, else the
   team width it set (pass it to nnc_fp_leave); saved[] keeps each thread's
   bits. The team goes first and is at least OpenMP's default width, because a
   thread that OpenMP creates inherits the creating thread's MXCSR: a worker
   born while this thread flushes would keep flushing after the loop. */
static inline int nnc_fp_enter(int threads, unsigned* saved) {
    int team = threads;
    if (!nnc_flush_denormal || !NNC_FP_FLUSH_SUPPORTED) return 0;
#ifdef _OPENMP
    if (omp_get_max_threads() > team) team = omp_get_max_threads();
#endif
    if (team < 1) team = 1;
    nnc_fp_team(team, NNC_MXCSR_FLUSH, saved, 0);
    saved[0] = nnc_fp_swap_bits(NNC_MXCSR_FLUSH);
    return team;
}

static inline void nnc_fp_leave(int team, unsigned* saved) {
    if (!team) return;
    nnc_fp_swap_bits(saved[0]);
    nnc_fp_team(team, 0, saved, 1);
}

#endif /* NNCORE_FP_MODE_H */
