/* Causal attention over a whole prompt, in bfloat16 dot products with float32 sums (AVX512-BF16).
 *
 * Built on first use by assistant/native.py (`cc -O3 -march=native -shared`) and called through
 * ctypes; when the CPU or the compiler lacks AVX512-BF16, `assistant_attention_supported` returns
 * 0 and the model keeps torch's attention.
 *
 * Layout: q is [L, H, D] (position-major, as the model's projections produce it), k and v are
 * [KV, T, D], out is [L, H, D]; all float32 and contiguous. Query i sits at position T - L + i
 * and sees keys 0..T-L+i. Query heads h*G..h*G+G-1 share key/value head h (grouped-query).
 *
 * For each key/value head and block of 32 positions (32*G query rows) one worker computes the
 * rows' scores against every key the block can see, an exact softmax per row (base-2: the query
 * is pre-scaled by log2(e)), then the probabilities times the values. Keys are packed in pairs
 * so that one _mm512_dpbf16_ps multiplies 16 keys (scores) or 16 output dimensions (values) by
 * two consecutive elements. Unlike torch's CPU flash kernel, blocks above the diagonal are
 * skipped exactly and the products run on bfloat16 (about twice float32's rate here).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>

#define BLOCK_POSITIONS 32
#define ROW_TILE 4
#define KEY_TILE 4

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>

int assistant_attention_supported(void) { return 1; }

static inline uint16_t to_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    bits += 0x7FFFu + ((bits >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(bits >> 16);
}

static inline __m512 exp2_ps(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-126.0f));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5403530e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

typedef struct {
    const float *q, *k, *v;
    float *out;
    int L, T, H, KV, D, G;
    int blocks, items;
    float scale;       /* softmax scale times log2(e) */
    int padded_keys;   /* T rounded up to 16 */
    int padded_rows;   /* per key/value head: blocks * 32 * G */
    uint16_t *qb;      /* [KV][padded_rows][D]: scaled queries, rows ordered (position, group) */
    uint16_t *kp;      /* [KV][padded_keys/16][D/2][16][2]: keys in pairs of dimensions */
    uint16_t *vp;      /* [KV][padded_keys/2][D][2]: values in pairs of keys */
    int next;          /* work counter, taken atomically */
    int failed;
} Job;

/* Packing, item (head, part): part 0 the queries, 1 the keys, 2 the values. */
static void pack(Job *job, int item) {
    const int D = job->D, G = job->G, L = job->L, T = job->T, h = item / 3;
    if (item % 3 == 0) {
        uint16_t *qb = job->qb + (size_t)h * job->padded_rows * D;
        memset(qb, 0, (size_t)job->padded_rows * D * sizeof *qb);
        for (int i = 0; i < L; i++)
            for (int g = 0; g < G; g++) {
                const float *src = job->q + ((size_t)i * job->H + h * G + g) * D;
                uint16_t *dst = qb + ((size_t)i * G + g) * D;
                for (int d = 0; d < D; d++) dst[d] = to_bf16(src[d] * job->scale);
            }
    } else if (item % 3 == 1) {
        const float *k = job->k + (size_t)h * T * D;
        uint16_t *kp = job->kp + (size_t)h * job->padded_keys * D;
        memset(kp, 0, (size_t)job->padded_keys * D * sizeof *kp);
        for (int j = 0; j < T; j++) {
            uint16_t *block = kp + (size_t)(j / 16) * 16 * D;
            for (int d = 0; d < D; d++)
                block[((d / 2) * 16 + j % 16) * 2 + d % 2] = to_bf16(k[(size_t)j * D + d]);
        }
    } else {
        const float *v = job->v + (size_t)h * T * D;
        uint16_t *vp = job->vp + (size_t)h * job->padded_keys * D;
        memset(vp, 0, (size_t)job->padded_keys * D * sizeof *vp);
        for (int j = 0; j < T; j++)
            for (int d = 0; d < D; d++)
                vp[((size_t)(j / 2) * D + d) * 2 + j % 2] = to_bf16(v[(size_t)j * D + d]);
    }
}

/* scores[r][j] for ROW_TILE rows and `tiles` (1..KEY_TILE) blocks of 16 keys */
static inline __attribute__((always_inline)) void score_tile(
    const uint16_t *qrows, const uint16_t *kblocks, float *scores, int D, int stride, int tiles) {
    __m512 acc[ROW_TILE][KEY_TILE];
    for (int r = 0; r < ROW_TILE; r++)
        for (int c = 0; c < tiles; c++) acc[r][c] = _mm512_setzero_ps();
    for (int dp = 0; dp < D / 2; dp++) {
        __m512bh keys[KEY_TILE];
        for (int c = 0; c < tiles; c++)
            keys[c] = (__m512bh)_mm512_loadu_si512(kblocks + ((size_t)c * 16 * D) + dp * 32);
        for (int r = 0; r < ROW_TILE; r++) {
            int32_t pair;
            memcpy(&pair, qrows + (size_t)r * D + dp * 2, sizeof pair);
            __m512bh query = (__m512bh)_mm512_set1_epi32(pair);
            for (int c = 0; c < tiles; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], query, keys[c]);
        }
    }
    for (int r = 0; r < ROW_TILE; r++)
        for (int c = 0; c < tiles; c++) _mm512_storeu_ps(scores + (size_t)r * stride + c * 16, acc[r][c]);
}

/* out rows += probabilities (ROW_TILE rows, bf16 pairs) x values, D/16 chunks of 16 dims */
static inline __attribute__((always_inline)) void value_tile(
    const uint16_t *prows, const uint16_t *vp, int pairs, int stride, __m512 acc[ROW_TILE][8], int chunks) {
    for (int r = 0; r < ROW_TILE; r++)
        for (int c = 0; c < chunks; c++) acc[r][c] = _mm512_setzero_ps();
    for (int jp = 0; jp < pairs; jp++) {
        __m512bh values[8];
        for (int c = 0; c < chunks; c++)
            values[c] = (__m512bh)_mm512_loadu_si512(vp + ((size_t)jp * chunks * 16 + c * 16) * 2);
        for (int r = 0; r < ROW_TILE; r++) {
            int32_t pair;
            memcpy(&pair, prows + (size_t)r * stride + jp * 2, sizeof pair);
            __m512bh probability = (__m512bh)_mm512_set1_epi32(pair);
            for (int c = 0; c < chunks; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], probability, values[c]);
        }
    }
}

static void run_item(Job *job, int item, float *scores, uint16_t *probs, float *inverse) {
    const int D = job->D, G = job->G, offset = job->T - job->L;
    const int block = job->blocks - 1 - item / job->KV; /* the longest blocks first */
    const int h = item % job->KV;
    const int first = block * BLOCK_POSITIONS;
    const int count = job->L - first < BLOCK_POSITIONS ? job->L - first : BLOCK_POSITIONS;
    const int rows = ((count * G + ROW_TILE - 1) / ROW_TILE) * ROW_TILE;
    const int visible = offset + first + count;         /* keys the last row sees */
    const int key_blocks = (visible + 15) / 16;
    const int stride = key_blocks * 16;
    const uint16_t *qb = job->qb + ((size_t)h * job->padded_rows + (size_t)first * G) * D;
    const uint16_t *kp = job->kp + (size_t)h * job->padded_keys * D;
    const uint16_t *vp = job->vp + (size_t)h * job->padded_keys * D;

    for (int r = 0; r < rows; r += ROW_TILE) {
        int c = 0;
        for (; c + KEY_TILE <= key_blocks; c += KEY_TILE)
            score_tile(qb + (size_t)r * D, kp + (size_t)c * 16 * D, scores + (size_t)r * stride + c * 16, D, stride, KEY_TILE);
        for (; c < key_blocks; c++)
            score_tile(qb + (size_t)r * D, kp + (size_t)c * 16 * D, scores + (size_t)r * stride + c * 16, D, stride, 1);
    }
    for (int r = 0; r < rows; r++) {
        float *row = scores + (size_t)r * stride;
        uint16_t *prow = probs + (size_t)r * stride;
        const int seen = r < count * G ? offset + first + r / G + 1 : 1;
        __m512 top = _mm512_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 16 <= seen; j += 16) top = _mm512_max_ps(top, _mm512_loadu_ps(row + j));
        __mmask16 tail = (__mmask16)((1u << (seen - j)) - 1u);
        top = _mm512_mask_max_ps(top, tail, top, _mm512_maskz_loadu_ps(tail, row + j));
        const __m512 highest = _mm512_set1_ps(_mm512_reduce_max_ps(top));
        __m512 total = _mm512_setzero_ps();
        for (j = 0; j < stride; j += 16) {
            __mmask16 live = j + 16 <= seen ? (__mmask16)0xFFFF
                             : j >= seen   ? (__mmask16)0
                                           : (__mmask16)((1u << (seen - j)) - 1u);
            __m512 e = _mm512_maskz_mov_ps(live, exp2_ps(_mm512_sub_ps(_mm512_loadu_ps(row + j), highest)));
            total = _mm512_add_ps(total, e);
            _mm256_storeu_si256((__m256i *)(prow + j), (__m256i)_mm512_cvtneps_pbh(e));
        }
        inverse[r] = 1.0f / _mm512_reduce_add_ps(total);
    }
    const int chunks = D / 16;
    for (int r = 0; r < count * G; r += ROW_TILE) {
        __m512 acc[ROW_TILE][8];
        const int last = r + ROW_TILE - 1 < count * G ? r + ROW_TILE - 1 : count * G - 1;
        const int seen = offset + first + last / G + 1;
        const int pairs = (seen + 1) / 2;
        /* a literal 4 (64 dimensions, the common case) lets the compiler unroll and keep the
         * accumulators in registers */
        if (chunks == 4) value_tile(probs + (size_t)r * stride, vp, pairs, stride, acc, 4);
        else value_tile(probs + (size_t)r * stride, vp, pairs, stride, acc, chunks);
        for (int t = 0; t < ROW_TILE && r + t < count * G; t++) {
            const int i = first + (r + t) / G, g = (r + t) % G;
            float *dst = job->out + ((size_t)i * job->H + h * G + g) * D;
            const __m512 factor = _mm512_set1_ps(inverse[r + t]);
            for (int c = 0; c < chunks; c++) _mm512_storeu_ps(dst + c * 16, _mm512_mul_ps(acc[t][c], factor));
        }
    }
}

static void *pack_worker(void *argument) {
    Job *job = argument;
    for (;;) {
        int item = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (item >= job->KV * 3) return NULL;
        pack(job, item);
    }
}

static void *attend_worker(void *argument) {
    Job *job = argument;
    const int stride = job->padded_keys;
    const size_t rows = (size_t)BLOCK_POSITIONS * job->G + ROW_TILE;
    float *scores = aligned_alloc(64, (rows * stride * sizeof(float) + 63) / 64 * 64);
    uint16_t *probs = aligned_alloc(64, (rows * stride * sizeof(uint16_t) + 63) / 64 * 64);
    float *inverse = malloc(rows * sizeof(float));
    if (scores && probs && inverse)
        for (;;) {
            int item = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
            if (item >= job->items) break;
            run_item(job, item, scores, probs, inverse);
        }
    else
        __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED);
    free(scores), free(probs), free(inverse);
    return NULL;
}

static int in_parallel(void *(*work)(void *), Job *job, int threads) {
    pthread_t helpers[64];
    int started = 0;
    job->next = 0;
    for (; started < threads - 1 && started < 64; started++)
        if (pthread_create(&helpers[started], NULL, work, job)) break;
    work(job);
    for (int t = 0; t < started; t++) pthread_join(helpers[t], NULL);
    return job->failed;
}

/* 0 on success; 1 when memory ran out, 2 for shapes it does not handle (D not 32..128 by 32,
 * H not a multiple of KV, L > T). */
int assistant_causal_attention(const float *q, const float *k, const float *v, float *out, int L,
                               int T, int H, int KV, int D, float scale, int threads) {
    if (D % 32 || D > 128 || D <= 0 || KV <= 0 || H % KV || L > T || L <= 0) return 2;
    Job job = {0};
    job.q = q, job.k = k, job.v = v, job.out = out;
    job.L = L, job.T = T, job.H = H, job.KV = KV, job.D = D, job.G = H / KV;
    job.blocks = (L + BLOCK_POSITIONS - 1) / BLOCK_POSITIONS;
    job.items = job.blocks * KV;
    job.scale = scale * 1.4426950408889634f;
    job.padded_keys = (T + 15) / 16 * 16;
    job.padded_rows = job.blocks * BLOCK_POSITIONS * job.G + ROW_TILE;
    job.qb = aligned_alloc(64, ((size_t)KV * job.padded_rows * D * 2 + 63) / 64 * 64);
    job.kp = aligned_alloc(64, ((size_t)KV * job.padded_keys * D * 2 + 63) / 64 * 64);
    job.vp = aligned_alloc(64, ((size_t)KV * job.padded_keys * D * 2 + 63) / 64 * 64);
    int status = 1;
    if (job.qb && job.kp && job.vp) {
        in_parallel(pack_worker, &job, threads);
        status = in_parallel(attend_worker, &job, threads);
    }
    free(job.qb), free(job.kp), free(job.vp);
    return status;
}

#else

int assistant_attention_supported(void) { return 0; }

int assistant_causal_attention(const float *q, const float *k, const float *v, float *out, int L,
                               int T, int H, int KV, int D, float scale, int threads) {
    (void)q, (void)k, (void)v, (void)out, (void)L, (void)T, (void)H, (void)KV, (void)D;
    (void)scale, (void)threads;
    return 2;
}

#endif
