/* Run-time choice of the SIMD code path, shared by the forward and backward kernels:
 * AVX2 code is compiled through target attributes (never -march=native) and used only
 * when the CPU reports the features it needs and GLASSBOX_SIMD is not "portable". */
#include <stdlib.h>
#include <string.h>

/* 1 when the AVX2 path may run: the CPU has AVX2 (and FMA too when need_fma). */
static int gb_avx2_usable(int need_fma)
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
