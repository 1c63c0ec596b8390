/* One row times a 4-bit weight matrix (a decoding step's product), with AVX2 and FMA; the row in
 * float32 (`assistant_gemv4`) or rounded to 8 bits (`assistant_gemv4_q8`).
 *
 * Built on first use by assistant/native.py (`cc -O3 -march=native -shared`) and called through
 * ctypes by assistant/gemv.py. torch's int4 CPU kernel is written for AVX-512; on AVX2-only CPUs it
 * reads a 4-bit weight slower than float32's product reads a 32-bit one, so a decoding step
 * there is bound by the kernel, not by memory. This one streams the codes once.
 *
 * Layout: for output o and group g of 32 inputs, 16 bytes at codes[(o * groups + g) * 16]: byte j
 * holds input j's code in its low nibble and input j + 16's in its high nibble. The weight is
 * code * scale[o, g] + minimum[o, g] (GGUF Q4_1's form), so
 *   y[o] = sum_g scale[o, g] * (codes . x)[g] + minimum[o, g] * (sum of x over group g).
 * x and y are float32; sums are float32.
 */
#include <stdint.h>
#include <stdlib.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include "round8.h"

int assistant_gemv4_supported(void) { return 1; }

static inline float horizontal_sum(__m256 v) {
    __m128 low = _mm256_castps256_ps128(v), high = _mm256_extractf128_ps(v, 1);
    low = _mm_add_ps(low, high);
    low = _mm_add_ps(low, _mm_movehl_ps(low, low));
    low = _mm_add_ss(low, _mm_movehdup_ps(low));
    return _mm_cvtss_f32(low);
}

static inline __m256 eight(__m128i bytes) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}

/* Returns 0, or 1 when memory for the group sums cannot be had. */
int assistant_gemv4(const uint8_t *codes, const float *scale, const float *minimum,
                    const float *x, float *y, int out, int in) {
    const int groups = in / 32;
    float *sums = (float *)malloc(sizeof(float) * (size_t)groups);
    if (!sums) return 1;
    for (int g = 0; g < groups; g++) {
        __m256 s = _mm256_loadu_ps(x + g * 32);
        s = _mm256_add_ps(s, _mm256_loadu_ps(x + g * 32 + 8));
        s = _mm256_add_ps(s, _mm256_loadu_ps(x + g * 32 + 16));
        s = _mm256_add_ps(s, _mm256_loadu_ps(x + g * 32 + 24));
        sums[g] = horizontal_sum(s);
    }
    const __m128i nibble = _mm_set1_epi8(0x0F);
    for (int o = 0; o < out; o++) {
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
            __m256 dot = _mm256_mul_ps(eight(low), _mm256_loadu_ps(xg));
            dot = _mm256_fmadd_ps(eight(_mm_srli_si128(low, 8)), _mm256_loadu_ps(xg + 8), dot);
            dot = _mm256_fmadd_ps(eight(high), _mm256_loadu_ps(xg + 16), dot);
            dot = _mm256_fmadd_ps(eight(_mm_srli_si128(high, 8)), _mm256_loadu_ps(xg + 24), dot);
            total = _mm256_fmadd_ps(_mm256_set1_ps(row_scale[g]), dot, total);
            offset += row_minimum[g] * sums[g];
        }
        y[o] = horizontal_sum(total) + offset;
    }
    free(sums);
    return 0;
}

/* The same product with x rounded to 8-bit integers, one scale per group of 32 (GGUF Q8_1's form,
 * what llama.cpp multiplies a Q4_1 row with): each group is one `vpmaddubsw` of the 32 codes by the
 * 32 rounded inputs, where the float32 product above converts and multiplies every code.
 *   y[o] = sum_g scale[o, g] * d[g] * (codes . q)[g] + minimum[o, g] * (sum of x over group g)
 * Returns 0, or 1 when memory for the rounded input cannot be had. */
int assistant_gemv4_q8(const uint8_t *codes, const float *scale, const float *minimum,
                       const float *x, float *y, int out, int in) {
    const int groups = in / 32;
    int8_t *q = malloc((size_t)in);
    float *d = malloc(sizeof(float) * (size_t)groups * 2);
    if (!q || !d) {
        free(q), free(d);
        return 1;
    }
    float *sums = d + groups;
    for (int g = 0; g < groups; g++)
        d[g] = assistant_round_group8(x + g * 32, q + g * 32, NULL, &sums[g]);
    const __m128i nibble = _mm_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int o = 0; o < out; o++) {
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
        y[o] = horizontal_sum(total) + offset;
    }
    free(q), free(d);
    return 0;
}

#else

int assistant_gemv4_supported(void) { return 0; }

int assistant_gemv4(const uint8_t *codes, const float *scale, const float *minimum,
                    const float *x, float *y, int out, int in) {
    (void)codes; (void)scale; (void)minimum; (void)x; (void)y; (void)out; (void)in;
    return 2;
}

int assistant_gemv4_q8(const uint8_t *codes, const float *scale, const float *minimum,
                       const float *x, float *y, int out, int in) {
    (void)codes; (void)scale; (void)minimum; (void)x; (void)y; (void)out; (void)in;
    return 2;
}

#endif
