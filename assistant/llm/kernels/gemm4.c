/* A prompt's rows times a 4-bit weight matrix, in 8-bit integer products (AVX2), with float32 out.
 *
 * Built on first use by assistant/native.py (`cc -O3 -march=native -shared`) and called through
 * ctypes by assistant/gemm.py. On a CPU without AVX512-VNNI torch's 8-bit products run a reference
 * loop, and its 4-bit kernel is slower than float32; this one multiplies the layer's own 4-bit
 * codes (exact: GGUF Q4_1's `code * scale + minimum` per group of 32 inputs) by the rows rounded
 * to 8-bit integers with one scale per row and group of 32 (GGUF Q8_1's form, what llama.cpp
 * multiplies a Q4_1 matrix with), using `vpmaddubsw` (unsigned codes times signed rows, 32 products
 * per instruction, summed in 16 bits: 8 steps of 4 inputs stay below 2^15, since
 * 8 * 2 * 2 * 15 * 127 = 30,480) and converting to float32 once per group:
 *   y[m, n] = sum_g scale[n, g] * d[m, g] * (codes[n, g] . q[m, g]) + minimum[n, g] * s[m, g]
 * where q[m, g] = round(x[m, g] / d[m, g]) and s[m, g] = d[m, g] * sum(q[m, g]).
 *
 * Layout of the weight (`pack` in gemm.py): for each block of 16 outputs, for each 4 inputs,
 * 64 bytes: outputs 0..15 of the block, 4 codes (one byte each, 0..15) per output. Scales and
 * minimums per block of 16 outputs and group: 16 float32 each, [N / 16][K / 32][16].
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 4          /* rows per tile */
#define ROW_BLOCK 64    /* rows whose 8-bit copy stays in the L2 cache while every block runs */

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include "round8.h"

int assistant_gemm4_supported(void) { return 1; }

typedef struct {
    const uint8_t *codes;
    const float *scale, *minimum, *x;
    float *y;
    int8_t *q;      /* [M][K] */
    float *d, *s;   /* [M][G] */
    int M, N, K, G;
} Job;

/* Row m of x in 8-bit integers, one scale per group of 32. */
static void round_row(const Job *job, int m) {
    const float *x = job->x + (size_t)m * job->K;
    int8_t *q = job->q + (size_t)m * job->K;
    for (int g = 0; g < job->G; g++) {
        int code_sum;
        const float d = assistant_round_group8(x + g * 32, q + g * 32, &code_sum, NULL);
        job->d[(size_t)m * job->G + g] = d;
        job->s[(size_t)m * job->G + g] = d * (float)code_sum;
    }
}

static inline __m256i four_bytes(const int8_t *p) {
    int32_t value;
    memcpy(&value, p, sizeof value);
    return _mm256_set1_epi32(value);
}

/* Adds one group's 16-bit sums (8 outputs of one row), scaled, into `total`. */
static inline void add_group(float *total, __m256i sums, __m256 scale, __m256 minimum, float d,
                             float s) {
    const __m256 products = _mm256_cvtepi32_ps(_mm256_madd_epi16(sums, _mm256_set1_epi16(1)));
    __m256 t = _mm256_loadu_ps(total);
    t = _mm256_fmadd_ps(products, _mm256_mul_ps(scale, _mm256_set1_ps(d)), t);
    t = _mm256_fmadd_ps(minimum, _mm256_set1_ps(s), t);
    _mm256_storeu_ps(total, t);
}

/* Rows m..m+rows-1 (rows <= ROWS) times the 16 outputs of block `block`, into y. The 16-bit sums
 * of four rows and two vectors of 8 outputs stay in registers; the float32 totals in memory (they
 * change once per group of 32 inputs). */
static void tile(const Job *job, int m, int rows, int block) {
    const int K = job->K, G = job->G;
    const uint8_t *codes = job->codes + (size_t)block * K * 16;
    const float *scale = job->scale + (size_t)block * G * 16;
    const float *minimum = job->minimum + (size_t)block * G * 16;
    float total[ROWS][16];
    memset(total, 0, sizeof total);
    int row[ROWS];
    for (int r = 0; r < ROWS; r++) row[r] = m + (r < rows ? r : 0);
    const int8_t *q0 = job->q + (size_t)row[0] * K, *q1 = job->q + (size_t)row[1] * K;
    const int8_t *q2 = job->q + (size_t)row[2] * K, *q3 = job->q + (size_t)row[3] * K;
    for (int g = 0; g < G; g++) {
        __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00;
        __m256i s20 = s00, s21 = s00, s30 = s00, s31 = s00;
        const uint8_t *c = codes + (size_t)g * 8 * 64;
        const int offset = g * 32;
        /* not unrolled: unrolled, gcc 12 computes every product first and spills them all */
#pragma GCC unroll 1
        for (int step = 0; step < 8; step++) {
            const __m256i b0 = _mm256_loadu_si256((const __m256i *)(c + step * 64));
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(c + step * 64 + 32));
            const int at = offset + step * 4;
            __m256i a = four_bytes(q0 + at);
            s00 = _mm256_add_epi16(s00, _mm256_maddubs_epi16(b0, a));
            s01 = _mm256_add_epi16(s01, _mm256_maddubs_epi16(b1, a));
            a = four_bytes(q1 + at);
            s10 = _mm256_add_epi16(s10, _mm256_maddubs_epi16(b0, a));
            s11 = _mm256_add_epi16(s11, _mm256_maddubs_epi16(b1, a));
            a = four_bytes(q2 + at);
            s20 = _mm256_add_epi16(s20, _mm256_maddubs_epi16(b0, a));
            s21 = _mm256_add_epi16(s21, _mm256_maddubs_epi16(b1, a));
            a = four_bytes(q3 + at);
            s30 = _mm256_add_epi16(s30, _mm256_maddubs_epi16(b0, a));
            s31 = _mm256_add_epi16(s31, _mm256_maddubs_epi16(b1, a));
        }
        const __m256 c0 = _mm256_loadu_ps(scale + g * 16), c1 = _mm256_loadu_ps(scale + g * 16 + 8);
        const __m256 n0 = _mm256_loadu_ps(minimum + g * 16);
        const __m256 n1 = _mm256_loadu_ps(minimum + g * 16 + 8);
        const float *d = job->d + g, *sum = job->s + g;
        const size_t G_ = (size_t)G;
        add_group(total[0], s00, c0, n0, d[row[0] * G_], sum[row[0] * G_]);
        add_group(total[0] + 8, s01, c1, n1, d[row[0] * G_], sum[row[0] * G_]);
        add_group(total[1], s10, c0, n0, d[row[1] * G_], sum[row[1] * G_]);
        add_group(total[1] + 8, s11, c1, n1, d[row[1] * G_], sum[row[1] * G_]);
        add_group(total[2], s20, c0, n0, d[row[2] * G_], sum[row[2] * G_]);
        add_group(total[2] + 8, s21, c1, n1, d[row[2] * G_], sum[row[2] * G_]);
        add_group(total[3], s30, c0, n0, d[row[3] * G_], sum[row[3] * G_]);
        add_group(total[3] + 8, s31, c1, n1, d[row[3] * G_], sum[row[3] * G_]);
    }
    for (int r = 0; r < rows; r++)
        memcpy(job->y + (size_t)(m + r) * job->N + (size_t)block * 16, total[r], sizeof total[r]);
}

/* An item is a block of ROW_BLOCK rows times a span of up to 8 output blocks. */
static void multiply_item(const Job *job, int item) {
    const int blocks = job->N / 16;
    const int spans = (blocks + 7) / 8;
    const int first_row = (item / spans) * ROW_BLOCK;
    const int last_row = first_row + ROW_BLOCK < job->M ? first_row + ROW_BLOCK : job->M;
    const int first_block = (item % spans) * 8;
    const int last_block = first_block + 8 < blocks ? first_block + 8 : blocks;
    for (int block = first_block; block < last_block; block++)
        for (int m = first_row; m < last_row; m += ROWS)
            tile(job, m, last_row - m < ROWS ? last_row - m : ROWS, block);
}

/* y [M, N] = x [M, K] times the packed weight; 0 on success, 1 when memory ran out, 2 for shapes
 * it does not handle (N not a multiple of 16, K not a multiple of 32). */
int assistant_gemm4(const uint8_t *codes, const float *scale, const float *minimum, const float *x,
                    float *y, int M, int N, int K, int threads) {
    if (M <= 0 || N <= 0 || K <= 0 || N % 16 || K % 32) return 2;
    Job job = {0};
    job.codes = codes, job.scale = scale, job.minimum = minimum, job.x = x, job.y = y;
    job.M = M, job.N = N, job.K = K, job.G = K / 32;
    job.q = malloc((size_t)M * K);
    job.d = malloc(sizeof(float) * (size_t)M * job.G);
    job.s = malloc(sizeof(float) * (size_t)M * job.G);
    int status = 1;
    if (job.q && job.d && job.s) {
        const int spans = (N / 16 + 7) / 8;
        const int items = (M + ROW_BLOCK - 1) / ROW_BLOCK * spans;
        /* OpenMP: torch's own thread pool (the process holds one libgomp), no new threads */
#pragma omp parallel num_threads(threads)
        {
#pragma omp for schedule(static)
            for (int m = 0; m < M; m++) round_row(&job, m);
#pragma omp for schedule(dynamic, 1)
            for (int item = 0; item < items; item++) multiply_item(&job, item);
        }
        status = 0;
    }
    free(job.q), free(job.d), free(job.s);
    return status;
}

#else

int assistant_gemm4_supported(void) { return 0; }

int assistant_gemm4(const uint8_t *codes, const float *scale, const float *minimum, const float *x,
                    float *y, int M, int N, int K, int threads) {
    (void)codes, (void)scale, (void)minimum, (void)x, (void)y, (void)M, (void)N, (void)K;
    (void)threads;
    return 2;
}

#endif
