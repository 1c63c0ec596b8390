/* The rows of a 4-bit weight matrix times one input (a decoding step's product), AVX2 and FMA: the
 * shared core of gemv4.c (one product per call) and step.c (a whole decoding step per call).
 *
 * Layout: for output o and group g of 32 inputs, 16 bytes at codes[(o * groups + g) * 16]: byte j
 * holds input j's code in its low nibble and input j + 16's in its high nibble. The weight is
 * code * scale[o, g] + minimum[o, g] (GGUF Q4_1's form), so
 *   y[o] = sum_g scale[o, g] * (codes . x)[g] + minimum[o, g] * (sum of x over group g).
 * Included by those sources; native.py's build key covers this header too. */
#ifndef ASSISTANT_GEMV4_H
#define ASSISTANT_GEMV4_H

#include <stdint.h>
#include <immintrin.h>

static inline float gemv4_horizontal_sum(__m256 v) {
    __m128 low = _mm256_castps256_ps128(v), high = _mm256_extractf128_ps(v, 1);
    low = _mm_add_ps(low, high);
    low = _mm_add_ps(low, _mm_movehl_ps(low, low));
    low = _mm_add_ss(low, _mm_movehdup_ps(low));
    return _mm_cvtss_f32(low);
}

static inline __m256 gemv4_eight(__m128i bytes) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}

/* sums[g] = the sum of x over group g, for `groups` groups of 32. */
static inline void gemv4_group_sums(const float *x, float *sums, int groups) {
    for (int g = 0; g < groups; g++) {
        __m256 s = _mm256_loadu_ps(x + g * 32);
        s = _mm256_add_ps(s, _mm256_loadu_ps(x + g * 32 + 8));
        s = _mm256_add_ps(s, _mm256_loadu_ps(x + g * 32 + 16));
        s = _mm256_add_ps(s, _mm256_loadu_ps(x + g * 32 + 24));
        sums[g] = gemv4_horizontal_sum(s);
    }
}

/* y[o] for o in [begin, end), x in float32 (sums from `gemv4_group_sums`). */
static inline void gemv4_rows(const uint8_t *codes, const float *scale, const float *minimum,
                              const float *x, const float *sums, float *y, int begin, int end,
                              int groups) {
    const __m128i nibble = _mm_set1_epi8(0x0F);
    for (int o = begin; o < end; o++) {
        const uint8_t *row = codes + (size_t)o * (size_t)groups * 16;
        const float *row_scale = scale + (size_t)o * (size_t)groups;
        const float *row_minimum = minimum + (size_t)o * (size_t)groups;
        __m256 total = _mm256_setzero_ps();
        float offset = 0.0f;
        for (int g = 0; g < groups; g++) {
            const float *xg = x + g * 32;
            __m128i packed = _mm_loadu_si128((const __m128i *)(row + g * 16));
            __m128i low = _mm_and_si128(packed, nibble);
            __m128i high = _mm_and_si128(_mm_srli_epi16(packed, 4), nibble);
            __m256 dot = _mm256_mul_ps(gemv4_eight(low), _mm256_loadu_ps(xg));
            dot = _mm256_fmadd_ps(gemv4_eight(_mm_srli_si128(low, 8)), _mm256_loadu_ps(xg + 8), dot);
            dot = _mm256_fmadd_ps(gemv4_eight(high), _mm256_loadu_ps(xg + 16), dot);
            dot = _mm256_fmadd_ps(gemv4_eight(_mm_srli_si128(high, 8)), _mm256_loadu_ps(xg + 24),
                                  dot);
            total = _mm256_fmadd_ps(_mm256_set1_ps(row_scale[g]), dot, total);
            offset += row_minimum[g] * sums[g];
        }
        y[o] = gemv4_horizontal_sum(total) + offset;
    }
}

/* The same rows with x rounded to 8-bit integers q, one scale d[g] per group of 32 (GGUF Q8_1's
 * form, what llama.cpp multiplies a Q4_1 row with; `assistant_round_group8`): each group is one
 * `vpmaddubsw` of the 32 codes by the 32 rounded inputs.
 *   y[o] = sum_g scale[o, g] * d[g] * (codes . q)[g] + minimum[o, g] * (sum of x over group g) */
static inline void gemv4_rows_q8(const uint8_t *codes, const float *scale, const float *minimum,
                                 const int8_t *q, const float *d, const float *sums, float *y,
                                 int begin, int end, int groups) {
    const __m128i nibble = _mm_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int o = begin; o < end; o++) {
        const uint8_t *row = codes + (size_t)o * (size_t)groups * 16;
        const float *row_scale = scale + (size_t)o * (size_t)groups;
        const float *row_minimum = minimum + (size_t)o * (size_t)groups;
        __m256 total = _mm256_setzero_ps();
        float offset = 0.0f;
        for (int g = 0; g < groups; g++) {
            const __m128i packed = _mm_loadu_si128((const __m128i *)(row + g * 16));
            const __m128i low = _mm_and_si128(packed, nibble);
            const __m128i high = _mm_and_si128(_mm_srli_epi16(packed, 4), nibble);
            const __m256i group_codes = _mm256_set_m128i(high, low); /* inputs 0..15, 16..31 */
            const __m256i xq = _mm256_loadu_si256((const __m256i *)(q + g * 32));
            const __m256i pairs = _mm256_maddubs_epi16(group_codes, xq);
            const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
            total = _mm256_fmadd_ps(_mm256_set1_ps(row_scale[g] * d[g]), dot, total);
            offset += row_minimum[g] * sums[g];
        }
        y[o] = gemv4_horizontal_sum(total) + offset;
    }
}

#endif
