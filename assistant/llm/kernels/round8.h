/* One group of 32 float32 inputs rounded to 8-bit integers with one scale, the group's largest
 * magnitude / 127 (GGUF Q8_1's form, what llama.cpp multiplies 4-bit weights with): the shared
 * first step of gemm4.c (a prompt's rows) and gemv4.c (a step's row, `assistant_gemv4_q8`).
 * Included by those sources (AVX2); native.py's build key covers this header too. */
#ifndef ASSISTANT_ROUND8_H
#define ASSISTANT_ROUND8_H

#include <stdint.h>
#include <immintrin.h>

/* Writes the 32 codes (input order) to q and returns the scale; with code_sum, the sum of the
 * codes; with value_sum, the sum of the float32 inputs. */
static inline float assistant_round_group8(const float *x, int8_t *q, int *code_sum,
                                           float *value_sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 a = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                   _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float step = _mm_cvtss_f32(h) / 127.0f;
    const __m256 inverse = _mm256_set1_ps(step > 0.0f ? 1.0f / step : 0.0f);
    /* round to nearest (the default rounding mode) */
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inverse));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inverse));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inverse));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inverse));
    /* packs interleave 128-bit lanes; the permute restores input order */
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, b);
    if (code_sum) {
        const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        *code_sum = _mm_cvtsi128_si32(s4);
    }
    if (value_sum) {
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3));
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
        *value_sum = _mm_cvtss_f32(s4);
    }
    return step;
}

#endif
