/* The kernels' one run-time choice of SIMD code (cpu.c): the CPU's features, capped by the
 * GLASSBOX_SIMD environment variable. The AVX2 and AVX-512 code is compiled through target
 * attributes (never -march=native), so the extension runs on any x86-64, and a kernel takes
 * such a path only when gb_simd_level() allows it. Internal to the extension (hidden symbols). */
#ifndef GLASSBOX_CPU_H
#define GLASSBOX_CPU_H

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* Each level includes the ones below it. */
typedef enum {
    GB_SIMD_PORTABLE,  /* plain C only (vectorised by the compiler for SSE2 or NEON) */
    GB_SIMD_AVX2,      /* AVX2 */
    GB_SIMD_AVX2_FMA,  /* AVX2 and FMA */
    GB_SIMD_AVX512,    /* AVX-512F, AVX2 and FMA */
} gb_simd;

/* The widest level this CPU has, capped by GLASSBOX_SIMD: "portable" gives GB_SIMD_PORTABLE,
 * "avx2" at most GB_SIMD_AVX2_FMA. The variable is read on every call, so a change applies to
 * the next kernel call. Always GB_SIMD_PORTABLE off x86-64. */
gb_simd gb_simd_level(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
