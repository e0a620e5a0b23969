/* transpose16.h: a 16 x 16 transpose of 32-bit lanes in registers, for the
 * AVX-512 packers (fp32 panels; bf16 pairs travel as one 32-bit lane).
 * Callable from code built with -mavx512f or marked target("avx512f"). */
#ifndef MREC_TRANSPOSE16_H
#define MREC_TRANSPOSE16_H

#include <immintrin.h>

/* r[0..15] (16 rows of 16) -> r[c] = column c. Pairs interleave, then
 * quads within each 128-bit lane, then lanes across the four quads. */
static inline __attribute__((always_inline, target("avx512f"))) void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    for (int g = 0; g < 16; g += 4) {
        u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    /* u[4g + c], lane L: rows 4g..4g+3 at column 4L + c */
    for (int c = 0; c < 4; c++) {
        __m512 p0 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 p1 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 1, 3, 1));
        __m512 q0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 q1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 1, 3, 1));
        r[c] = _mm512_shuffle_f32x4(p0, q0, _MM_SHUFFLE(2, 0, 2, 0));
        r[8 + c] = _mm512_shuffle_f32x4(p0, q0, _MM_SHUFFLE(3, 1, 3, 1));
        r[4 + c] = _mm512_shuffle_f32x4(p1, q1, _MM_SHUFFLE(2, 0, 2, 0));
        r[12 + c] = _mm512_shuffle_f32x4(p1, q1, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

#endif
