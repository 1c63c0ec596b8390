/* One decoding step of a plain Llama in one call: the token's embedding through every decoder
 * layer to the output head's logits, with the 4-bit products of gemv4.h, AVX2 and FMA.
 *
 * Built on first use by assistant/native.py (with -fopenmp) and called through ctypes by
 * assistant/llm/step.py. On a CPU without AVX-512 a step of the torch engine spent two thirds of
 * its time between the products: ~80 small torch operations per layer (norms, rotary positions,
 * views, the cache write, attention, residuals), each a few microseconds of dispatch for a few
 * hundred numbers. Here they are plain loops over the same float32 numbers, in the same order of
 * operations as assistant/llm/llama.py (which stays the reference: tests compare the two).
 *
 * Per layer, `weights` holds LAYER_POINTERS addresses (see the enum): the two norms' float32
 * weights and, for each of q, k, v, o, gate, up and down, the packed codes, scales and minimums
 * of gemv4.h. After the layers: the final norm's weight and the head's three. `caches` holds per
 * layer the keys' and values' buffers ([kv_heads][capacity][dim] float32) and the capacity; the
 * step writes position `position` and reads 0..position.
 *
 * Threads: OpenMP (in-process, torch's own libgomp pool): the products split their outputs (q, k
 * and v in one parallel region, gate and up in one), the attention its heads; one thread runs
 * everything in the caller's thread.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    NORM_IN = 0,
    Q = 1,
    K = 4,
    V = 7,
    O = 10,
    NORM_POST = 13,
    GATE = 14,
    UP = 17,
    DOWN = 20,
    LAYER_POINTERS = 23,
};
/* shape[] */
enum { LAYERS, HIDDEN, INTERMEDIATE, HEADS, KV_HEADS, DIM, VOCAB, EIGHT_BIT, THREADS, SHAPES };

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include "round8.h"
#include "gemv4.h"

int assistant_step_supported(void) { return 1; }
int assistant_step_layer_pointers(void) { return LAYER_POINTERS; }

/* An input vector made ready for products: its group sums, and its 8-bit form when asked. */
typedef struct {
    const float *x;
    int8_t *q;
    float *d, *sums;
    int groups;
} Input;

static void prepare(Input *input, const float *x, int size, int eight_bit) {
    input->x = x;
    input->groups = size / 32;
    if (eight_bit) {
        for (int g = 0; g < input->groups; g++)
            input->d[g] = assistant_round_group8(x + g * 32, input->q + g * 32, NULL,
                                                 &input->sums[g]);
    } else {
        gemv4_group_sums(x, input->sums, input->groups);
    }
}

/* The products of up to three weights with the same input (q, k and v; gate and up), in one
 * parallel region: their outputs, taken as one range, split over the threads. Weight i's three
 * addresses are at p[i], its `out[i]` outputs go to y[i]. */
static void products(const int64_t *const *p, float *const *y, const int *out, int count,
                     const Input *input, int eight_bit, int threads) {
    int total = 0;
    for (int i = 0; i < count; i++) total += out[i];
    const int parts = (threads > 1 && total >= 64) ? threads : 1;
#pragma omp parallel for num_threads(parts) schedule(static) if (parts > 1)
    for (int part = 0; part < parts; part++) {
        const int begin = (int)((int64_t)total * part / parts);
        const int end = (int)((int64_t)total * (part + 1) / parts);
        int first = 0; /* the range's first output of weight i */
        for (int i = 0; i < count; first += out[i], i++) {
            const int from = begin > first ? begin - first : 0;
            const int to = end - first < out[i] ? end - first : out[i];
            if (from >= to) continue;
            const uint8_t *codes = (const uint8_t *)(intptr_t)p[i][0];
            const float *scale = (const float *)(intptr_t)p[i][1];
            const float *minimum = (const float *)(intptr_t)p[i][2];
            if (eight_bit)
                gemv4_rows_q8(codes, scale, minimum, input->q, input->d, input->sums, y[i], from,
                              to, input->groups);
            else
                gemv4_rows(codes, scale, minimum, input->x, input->sums, y[i], from, to,
                           input->groups);
        }
    }
}

/* y = one weight (its three addresses at p) times the input. */
static void product(const int64_t *p, const Input *input, float *y, int out, int eight_bit,
                    int threads) {
    products(&p, &y, &out, 1, input, eight_bit, threads);
}

/* out = weight * x / sqrt(mean(x^2) + eps), as llama.py's RMSNorm (in float32). */
static void rms_norm(const float *x, const float *weight, float *out, int size, float eps) {
    float squares = 0.0f;
    for (int i = 0; i < size; i++) squares += x[i] * x[i];
    const float inverse = 1.0f / sqrtf(squares / (float)size + eps);
    for (int i = 0; i < size; i++) out[i] = weight[i] * (x[i] * inverse);
}

/* Rotary positions on `heads` heads of `dim` (llama.py's `_rotate`: halves, not pairs). */
static void rotate(float *x, int heads, int dim, const float *cosine, const float *sine) {
    const int half = dim / 2;
    for (int h = 0; h < heads; h++) {
        float *head = x + (size_t)h * dim;
        for (int i = 0; i < half; i++) {
            const float first = head[i], second = head[i + half];
            head[i] = first * cosine[i] - second * sine[i];
            head[i + half] = second * cosine[i] + first * sine[i];
        }
    }
}

static inline float dot(const float *a, const float *b, int size) {
    __m256 total = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= size; i += 8)
        total = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), total);
    float sum = gemv4_horizontal_sum(total);
    for (; i < size; i++) sum += a[i] * b[i];
    return sum;
}

/* out += weight * x */
static inline void add_scaled(float *out, const float *x, float weight, int size) {
    const __m256 w = _mm256_set1_ps(weight);
    int i = 0;
    for (; i + 8 <= size; i += 8)
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i),
                                                  _mm256_loadu_ps(out + i)));
    for (; i < size; i++) out[i] += weight * x[i];
}

/* One query per head against positions 0..last of its key/value head (grouped heads share
 * one), softmax in float32: out[h] = sum_t p[h, t] values[t]. `scores`: heads * (last + 1). */
static void attend(const float *query, const float *keys, const float *values, int64_t capacity,
                   float *out, float *scores, int heads, int kv_heads, int dim, int last,
                   int threads) {
    const int group = heads / kv_heads, length = last + 1;
    const float scaling = 1.0f / sqrtf((float)dim);
    const int parts = (threads > 1 && length >= 32) ? threads : 1;
#pragma omp parallel for num_threads(parts) schedule(static) if (parts > 1)
    for (int h = 0; h < heads; h++) {
        const float *q = query + (size_t)h * dim;
        const float *k = keys + (size_t)(h / group) * capacity * dim;
        const float *v = values + (size_t)(h / group) * capacity * dim;
        float *s = scores + (size_t)h * length, *o = out + (size_t)h * dim;
        float largest = -INFINITY;
        for (int t = 0; t < length; t++) {
            s[t] = dot(q, k + (size_t)t * dim, dim) * scaling;
            if (s[t] > largest) largest = s[t];
        }
        float total = 0.0f;
        for (int t = 0; t < length; t++) {
            s[t] = expf(s[t] - largest);
            total += s[t];
        }
        memset(o, 0, sizeof(float) * (size_t)dim);
        for (int t = 0; t < length; t++) add_scaled(o, v + (size_t)t * dim, s[t], dim);
        const float inverse = 1.0f / total;
        for (int i = 0; i < dim; i++) o[i] *= inverse;
    }
}

/* The step of token `token` at position `position`: logits[vocab]. `inverse_frequency[dim / 2]`:
 * the rotary inverse frequencies (llama.py's). Returns 0; 1 when scratch memory cannot be had;
 * 2 on shapes the kernel does not take. */
int assistant_step(const int64_t *weights, const int64_t *caches, const float *embedding,
                   const float *inverse_frequency, float *logits, const int32_t *shape, float eps,
                   int64_t token, int position) {
    const int layers = shape[LAYERS], hidden = shape[HIDDEN], intermediate = shape[INTERMEDIATE];
    const int heads = shape[HEADS], kv_heads = shape[KV_HEADS], dim = shape[DIM];
    const int vocab = shape[VOCAB], eight_bit = shape[EIGHT_BIT];
    const int threads = shape[THREADS] > 0 ? shape[THREADS] : 1;
    if (hidden % 32 || intermediate % 32 || (heads * dim) % 32 || dim % 2 || kv_heads <= 0 ||
        heads % kv_heads || token < 0 || token >= vocab || position < 0)
        return 2;
    const int widest = intermediate > heads * dim ? intermediate : heads * dim;
    const int wide = widest > hidden ? widest : hidden;
    const size_t floats = (size_t)hidden * 3 + (size_t)heads * dim * 2 + (size_t)kv_heads * dim * 2 +
                          (size_t)intermediate * 2 + (size_t)heads * (position + 1) + dim +
                          (size_t)wide / 32 * 2;
    float *memory = malloc(sizeof(float) * floats);
    int8_t *rounded = malloc((size_t)wide);
    if (!memory || !rounded) {
        free(memory), free(rounded);
        return 1;
    }
    float *x = memory, *normed = x + hidden, *projected = normed + hidden;
    float *query = projected + hidden, *attended = query + (size_t)heads * dim;
    float *key = attended + (size_t)heads * dim, *value = key + (size_t)kv_heads * dim;
    float *gate = value + (size_t)kv_heads * dim, *up = gate + intermediate;
    float *scores = up + intermediate, *cosine = scores + (size_t)heads * (position + 1);
    float *sine = cosine + dim / 2;
    Input input = {.q = rounded, .d = sine + dim / 2};
    input.sums = input.d + wide / 32;

    for (int i = 0; i < dim / 2; i++) {
        const float angle = (float)position * inverse_frequency[i];
        cosine[i] = cosf(angle), sine[i] = sinf(angle);
    }
    memcpy(x, embedding + (size_t)token * hidden, sizeof(float) * (size_t)hidden);
    for (int layer = 0; layer < layers; layer++) {
        const int64_t *p = weights + (size_t)layer * LAYER_POINTERS;
        const int64_t *cache = caches + (size_t)layer * 3;
        float *keys = (float *)(intptr_t)cache[0], *values = (float *)(intptr_t)cache[1];
        const int64_t capacity = cache[2];
        if (position >= capacity) {
            free(memory), free(rounded);
            return 2;
        }
        rms_norm(x, (const float *)(intptr_t)p[NORM_IN], normed, hidden, eps);
        prepare(&input, normed, hidden, eight_bit);
        const int64_t *qkv[3] = {p + Q, p + K, p + V};
        float *qkv_out[3] = {query, key, value};
        const int qkv_sizes[3] = {heads * dim, kv_heads * dim, kv_heads * dim};
        products(qkv, qkv_out, qkv_sizes, 3, &input, eight_bit, threads);
        rotate(query, heads, dim, cosine, sine);
        rotate(key, kv_heads, dim, cosine, sine);
        for (int h = 0; h < kv_heads; h++) {
            const size_t at = ((size_t)h * capacity + position) * dim;
            memcpy(keys + at, key + (size_t)h * dim, sizeof(float) * (size_t)dim);
            memcpy(values + at, value + (size_t)h * dim, sizeof(float) * (size_t)dim);
        }
        attend(query, keys, values, capacity, attended, scores, heads, kv_heads, dim, position,
               threads);
        prepare(&input, attended, heads * dim, eight_bit);
        product(p + O, &input, projected, hidden, eight_bit, threads);
        for (int i = 0; i < hidden; i++) x[i] += projected[i];
        rms_norm(x, (const float *)(intptr_t)p[NORM_POST], normed, hidden, eps);
        prepare(&input, normed, hidden, eight_bit);
        const int64_t *gate_up[2] = {p + GATE, p + UP};
        float *gate_up_out[2] = {gate, up};
        const int gate_up_sizes[2] = {intermediate, intermediate};
        products(gate_up, gate_up_out, gate_up_sizes, 2, &input, eight_bit, threads);
        for (int i = 0; i < intermediate; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
        prepare(&input, gate, intermediate, eight_bit);
        product(p + DOWN, &input, projected, hidden, eight_bit, threads);
        for (int i = 0; i < hidden; i++) x[i] += projected[i];
    }
    const int64_t *last = weights + (size_t)layers * LAYER_POINTERS;
    rms_norm(x, (const float *)(intptr_t)last[0], normed, hidden, eps);
    prepare(&input, normed, hidden, eight_bit);
    product(last + 1, &input, logits, vocab, eight_bit, threads);
    free(memory), free(rounded);
    return 0;
}

#else

int assistant_step_supported(void) { return 0; }
int assistant_step_layer_pointers(void) { return LAYER_POINTERS; }

int assistant_step(const int64_t *weights, const int64_t *caches, const float *embedding,
                   const float *inverse_frequency, float *logits, const int32_t *shape, float eps,
                   int64_t token, int position) {
    (void)weights, (void)caches, (void)embedding, (void)inverse_frequency, (void)logits;
    (void)shape, (void)eps, (void)token, (void)position;
    return 2;
}

#endif
