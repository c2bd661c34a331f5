/* The SIMD level declared in cpu.h, decided here alone: the forward and backward attention
 * kernels both ask gb_simd_level(), so GLASSBOX_SIMD means the same to each. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

gb_simd gb_simd_level(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    const char *forced = getenv("GLASSBOX_SIMD");
    if (forced && strcmp(forced, "portable") == 0) return GB_SIMD_PORTABLE;
    if (!__builtin_cpu_supports("avx2")) return GB_SIMD_PORTABLE;
    if (!__builtin_cpu_supports("fma")) return GB_SIMD_AVX2;
    if ((forced && strcmp(forced, "avx2") == 0) || !__builtin_cpu_supports("avx512f")) return GB_SIMD_AVX2_FMA;
    return GB_SIMD_AVX512;
#else
    return GB_SIMD_PORTABLE;
#endif
}
