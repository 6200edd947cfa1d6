/* Run-time choice of the instruction set for nncore's own vector loops
   (_tanh.h, _tiny.h).

   The wheel is compiled for baseline x86-64 (no -march=native). Loops that
   gain from wider vectors are compiled a second and third time with GCC's
   target attribute (AVX2; AVX-512F) and called through a switch on nnc_isa,
   set once at import (nnc_isa_init) from what the CPU has. Every copy performs
   the same IEEE operations in the same order (no FMA: -ffp-contract=off holds
   for every copy), so all levels give the same bits; tests force each level
   the machine has (nnc_isa_set, through _kernels._set_isa) and compare.
   Other compilers and architectures get the baseline copy only. */
#ifndef NNCORE_ISA_H
#define NNCORE_ISA_H

enum { NNC_ISA_BASE = 0, NNC_ISA_AVX2 = 1, NNC_ISA_AVX512 = 2 };

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(NNCORE_NO_CLONES) && (__GNUC__ >= 8)
#define NNC_ISA_DISPATCH 1
#define NNC_TARGET_AVX2 __attribute__((target("avx2")))
#define NNC_TARGET_AVX512 __attribute__((target("avx512f")))
#else
#define NNC_ISA_DISPATCH 0
#endif

static int nnc_isa = NNC_ISA_BASE;

/* The best level this CPU runs. */
static int nnc_isa_best(void) {
#if NNC_ISA_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return NNC_ISA_AVX512;
    if (__builtin_cpu_supports("avx2")) return NNC_ISA_AVX2;
#endif
    return NNC_ISA_BASE;
}

static void nnc_isa_init(void) { nnc_isa = nnc_isa_best(); }

/* Use ``level`` (at most the CPU's best; lower in tests); returns the level now in use. */
static int nnc_isa_set(int level) {
    int best = nnc_isa_best();
    nnc_isa = level < NNC_ISA_BASE ? NNC_ISA_BASE : (level > best ? best : level);
    return nnc_isa;
}

#endif
