/* One row times a 4-bit weight matrix (a decoding step's product), with AVX2 and FMA; the row in
 * float32 (`assistant_gemv4`) or rounded to 8 bits (`assistant_gemv4_q8`).
 *
 * Built on first use by assistant/native.py (`cc -O3 -march=native -shared`) and called through
 * ctypes by assistant/gemv.py. torch's int4 CPU kernel is written for AVX-512; on AVX2-only CPUs it
 * reads a 4-bit weight slower than float32's product reads a 32-bit one, so a decoding step
 * there is bound by the kernel, not by memory. This one streams the codes once.
 *
 * The layout and the arithmetic: gemv4.h (shared with step.c, a whole decoding step).
 */
#include <stdint.h>
#include <stdlib.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include "round8.h"
#include "gemv4.h"

int assistant_gemv4_supported(void) { return 1; }

/* Returns 0, or 1 when memory for the group sums cannot be had. */
int assistant_gemv4(const uint8_t *codes, const float *scale, const float *minimum,
                    const float *x, float *y, int out, int in) {
    const int groups = in / 32;
    float *sums = (float *)malloc(sizeof(float) * (size_t)groups);
    if (!sums) return 1;
    gemv4_group_sums(x, sums, groups);
    gemv4_rows(codes, scale, minimum, x, sums, y, 0, out, groups);
    free(sums);
    return 0;
}

/* The same product with x rounded to 8-bit integers, one scale per group of 32 (`gemv4_rows_q8`).
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
    gemv4_rows_q8(codes, scale, minimum, q, d, sums, y, 0, out, groups);
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
