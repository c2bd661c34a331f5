/* Run-time choice of the SIMD code path, shared by the forward and backward kernels:
 * AVX2 and AVX-512 code is compiled through target attributes (never -march=native) and
 * used only when the CPU reports the features it needs. GLASSBOX_SIMD=portable turns both
 * off, GLASSBOX_SIMD=avx2 only AVX-512. */
#include <stdlib.h>
#include <string.h>

/* 1 when the AVX2 path may run: the CPU has AVX2 (and FMA too when need_fma). */
static inline int gb_avx2_usable(int need_fma)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const char *forced = getenv("GLASSBOX_SIMD");
    if (forced && strcmp(forced, "portable") == 0) return 0;
    return __builtin_cpu_supports("avx2") && (!need_fma || __builtin_cpu_supports("fma"));
#else
    (void)need_fma;
    return 0;
#endif
}

/* 1 when the AVX-512 path may run: the CPU has AVX-512F, AVX2 and FMA, and GLASSBOX_SIMD allows it. */
static inline int gb_avx512_usable(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const char *forced = getenv("GLASSBOX_SIMD");
    if (forced && strcmp(forced, "avx2") == 0) return 0;
    return gb_avx2_usable(1) && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}
