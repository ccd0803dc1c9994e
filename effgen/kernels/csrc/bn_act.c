/* Training-mode batch norm fused with its activation, on channels_last float32 tensors.

   A channels_last (N, C, H, W) tensor is a row-major (M, C) matrix with M = N * H * W, so every
   loop below walks rows and vectorises over the C channels of a row.

   Unfused, PyTorch runs batch norm and the activation as separate kernels and each one reads and
   writes the whole activation: 5 passes over memory forward and 8 backward. Here the forward pass
   is 3 (statistics; normalise and activate) and the backward 5 (two sums; the gradient), and the
   normalised pre-activation is never stored: it is recomputed from the input when needed. At
   these sizes (a few MB per tensor) the work is memory-bound, so fewer passes is faster.

   Sums are taken in another order than PyTorch's (float within blocks of rows, double across
   them), which moves the results only at float rounding level. Threads come from the OpenMP runtime PyTorch already loaded; with a
   given thread count the results repeat bit for bit.

   act: 0 = SiLU (Swish), 1 = ReLU, 2 = LeakyReLU with slope `slope`. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ACT_SILU 0
#define ACT_RELU 1
#define ACT_LEAKY 2

/* exp(x) for float, written so that the compiler can vectorise it (libm's expf is an opaque call).
   2^k * exp(r) with |r| <= ln2 / 2 and a degree-6 polynomial: under 2 ulp on the clamped range. */
static inline __attribute__((always_inline)) float exp_vec(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round(x / ln2) by the 1.5 * 2^23 trick: rintf is a libm call the vectoriser may not inline. */
    const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - k * 0.693145751953125f) - k * 1.428606765330187e-06f;
    float p = 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {.i = ((int32_t)k + 127) << 23};  /* 2^k */
    return p * scale.f;
}

/* `act` is a literal at every call site, so each caller's loop is compiled for one activation. */
static inline __attribute__((always_inline)) float activate(float z, const int act, const float slope) {
    if (act == ACT_SILU) return z / (1.0f + exp_vec(-z));
    if (act == ACT_RELU) return z > 0.0f ? z : 0.0f;
    return z > 0.0f ? z : z * slope;
}

/* d activation / dz at z. */
static inline __attribute__((always_inline)) float activation_slope(float z, const int act, const float slope) {
    if (act == ACT_SILU) {
        const float s = 1.0f / (1.0f + exp_vec(-z));
        return s * (1.0f + z * (1.0f - s));
    }
    if (act == ACT_RELU) return z > 0.0f ? 1.0f : 0.0f;
    return z > 0.0f ? 1.0f : slope;
}

/* The inner loops over one row's channels, each for a literal activation A. */
#define NORMALISE_ROW(A)                                                                  \
    _Pragma("omp simd") for (int64_t c = 0; c < C; c++)                                    \
        out[c] = activate(in[c] * scale[c] + shift[c], A, slope)
/* SiLU's slope costs an exp and a division: the first backward pass keeps dz in dx for the
   second, which is cheaper than computing it twice. ReLU's slope is a comparison: recomputed. */
#define SUM_ROW(A)                                                                        \
    _Pragma("omp simd") for (int64_t c = 0; c < C; c++) {                                  \
        const float dz = grad[c] * activation_slope(in[c] * scale[c] + shift[c], A, slope); \
        if (A == ACT_SILU) out[c] = dz;                                                    \
        s[c] += dz;                                                                        \
        sx[c] += dz * ((in[c] - mean[c]) * invstd[c]);                                     \
    }
#define GRADIENT_ROW(A)                                                                   \
    _Pragma("omp simd") for (int64_t c = 0; c < C; c++) {                                  \
        const float xhat = (in[c] - mean[c]) * invstd[c];                                  \
        const float dz = A == ACT_SILU ? out[c]                                            \
                                       : grad[c] * activation_slope(in[c] * scale[c] + shift[c], A, slope); \
        out[c] = scale[c] * (dz - mean_term[c] - xhat * xhat_term[c]);                     \
    }

/* Sums run in float over a block of rows, then in double across blocks: float keeps the loop at
   full vector width, double keeps 50,000-row sums exact to float rounding. */
#define BLOCK_ROWS 32

/* Threads sum into their own slot of `slots` (threads x n); adding the slots in thread order
   afterwards keeps a run bit-for-bit repeatable at a given thread count. */
static void add_slots(const double *slots, int threads, int64_t n, double *out) {
    memset(out, 0, n * sizeof(double));
    for (int t = 0; t < threads; t++)
        for (int64_t i = 0; i < n; i++) out[i] += slots[t * n + i];
}

/* The share of `count` items (rows or blocks of rows) thread t of T takes: the contiguous one
   `omp for schedule(static)` would give it. */
static inline void thread_share(int64_t count, int t, int T, int64_t *first, int64_t *last) {
    const int64_t size = count / T, extra = count % T;
    *first = t * size + (t < extra ? t : extra);
    *last = *first + size + (t < extra);
}

/* Channels summed together: a block of rows is walked once per slice of SLICE channels, so that a
   slice's running sums stay in vector registers instead of going through memory on every row. */
#define SLICE 64

/* Blocks [first_block, last_block) of x (M, C) summed into s (sums) and q (sums of squares).
   Inlined with a literal C, so that the slice loops unroll. Per channel the order of the additions
   is a plain row-by-row walk, whatever the slicing. */
static inline __attribute__((always_inline)) void moments_of_blocks(
        const float *x, int64_t first_block, int64_t last_block, int64_t M, const int64_t C, double *s, double *q) {
    for (int64_t block = first_block; block < last_block; block++) {
        const int64_t first = block * BLOCK_ROWS, last = first + BLOCK_ROWS < M ? first + BLOCK_ROWS : M;
        for (int64_t c0 = 0; c0 < C; c0 += SLICE) {
            const int64_t width = C - c0 < SLICE ? C - c0 : SLICE;
            float bs[SLICE] = {0}, bq[SLICE] = {0};
            for (int64_t m = first; m < last; m++) {
                const float *row = x + m * C + c0;
#pragma omp simd
                for (int64_t c = 0; c < width; c++) {
                    bs[c] += row[c];
                    bq[c] += row[c] * row[c];
                }
            }
            for (int64_t c = 0; c < width; c++) {
                s[c0 + c] += bs[c];
                q[c0 + c] += bq[c];
            }
        }
    }
}

/* Per-channel sums of x (M, C) and of its squares: moments[0:C] and moments[C:2C]. */
static void channel_moments(const float *x, int64_t M, int64_t C, double *moments, int threads) {
    double *slots = calloc((size_t)threads * 2 * C, sizeof(double));
    const int64_t blocks = (M + BLOCK_ROWS - 1) / BLOCK_ROWS;
#pragma omp parallel num_threads(threads)
    {
        double *s = slots + (int64_t)omp_get_thread_num() * 2 * C, *q = s + C;
        int64_t first, last;
        thread_share(blocks, omp_get_thread_num(), omp_get_num_threads(), &first, &last);
        /* The switch is inside the parallel region: OpenMP outlines the region before inlining, so
           a literal C only reaches the loops from here. The model's widths are the literal cases. */
        switch (C) {
        case 16: moments_of_blocks(x, first, last, M, 16, s, q); break;
        case 32: moments_of_blocks(x, first, last, M, 32, s, q); break;
        case 64: moments_of_blocks(x, first, last, M, 64, s, q); break;
        case 128: moments_of_blocks(x, first, last, M, 128, s, q); break;
        case 256: moments_of_blocks(x, first, last, M, 256, s, q); break;
        default: moments_of_blocks(x, first, last, M, C, s, q);
        }
    }
    add_slots(slots, threads, 2 * C, moments);
    free(slots);
}

/* y = act(gamma * (x - mean) * invstd + beta); writes the batch mean, 1/std and unbiased variance. */
void bn_act_forward(const float *x, float *y, int64_t M, int64_t C, const float *gamma, const float *beta,
                    float eps, int act, float slope, float *mean_out, float *invstd_out,
                    float *var_unbiased_out, int threads) {
    double *sum = malloc(2 * C * sizeof(double)), *sum_sq = sum + C;
    float *scale = malloc(2 * C * sizeof(float)), *shift = scale + C;
    channel_moments(x, M, C, sum, threads);
    for (int64_t c = 0; c < C; c++) {
        const double mean = sum[c] / M;
        double var = sum_sq[c] / M - mean * mean;
        if (var < 0.0) var = 0.0;
        const float invstd = (float)(1.0 / sqrt(var + eps));
        mean_out[c] = (float)mean;
        invstd_out[c] = invstd;
        var_unbiased_out[c] = M > 1 ? (float)(var * M / (M - 1)) : (float)var;
        scale[c] = gamma[c] * invstd;
        shift[c] = beta[c] - (float)mean * scale[c];
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float *in = x + m * C;
        float *out = y + m * C;
        switch (act) {  /* per row, so that each inner loop is compiled for one activation */
        case ACT_SILU: NORMALISE_ROW(ACT_SILU); break;
        case ACT_RELU: NORMALISE_ROW(ACT_RELU); break;
        default: NORMALISE_ROW(ACT_LEAKY);
        }
    }
    free(sum);
    free(scale);
}

/* Gradients of the forward above, given dy; dx may not alias x or dy. */
void bn_act_backward(const float *x, const float *dy, float *dx, int64_t M, int64_t C, const float *gamma,
                     const float *beta, const float *mean, const float *invstd, int act, float slope,
                     float *dgamma, float *dbeta, int threads) {
    double *sum_dz = malloc(2 * C * sizeof(double)), *sum_dz_xhat = sum_dz + C;
    double *slots = calloc((size_t)threads * 2 * C, sizeof(double));
    float *scale = malloc(4 * C * sizeof(float)), *shift = scale + C, *mean_term = shift + C,
          *xhat_term = mean_term + C;
    for (int64_t c = 0; c < C; c++) {
        scale[c] = gamma[c] * invstd[c];
        shift[c] = beta[c] - mean[c] * scale[c];
    }
#pragma omp parallel num_threads(threads)
    {
        double *total = slots + (int64_t)omp_get_thread_num() * 2 * C, *total_x = total + C;
        float *s = malloc(2 * C * sizeof(float)), *sx = s + C;
#pragma omp for schedule(static)
        for (int64_t first = 0; first < M; first += BLOCK_ROWS) {
            const int64_t last = first + BLOCK_ROWS < M ? first + BLOCK_ROWS : M;
            memset(s, 0, 2 * C * sizeof(float));
            for (int64_t m = first; m < last; m++) {
                const float *in = x + m * C, *grad = dy + m * C;
                float *out = dx + m * C;
                switch (act) {
                case ACT_SILU: SUM_ROW(ACT_SILU); break;
                case ACT_RELU: SUM_ROW(ACT_RELU); break;
                default: SUM_ROW(ACT_LEAKY);
                }
            }
            for (int64_t c = 0; c < C; c++) {
                total[c] += s[c];
                total_x[c] += sx[c];
            }
        }
        free(s);
    }
    add_slots(slots, threads, 2 * C, sum_dz);
    free(slots);
    for (int64_t c = 0; c < C; c++) {
        dbeta[c] = (float)sum_dz[c];
        dgamma[c] = (float)sum_dz_xhat[c];
        mean_term[c] = (float)(sum_dz[c] / M);
        xhat_term[c] = (float)(sum_dz_xhat[c] / M);
    }
    /* Each thread walks its share of the rows backwards: the rows the first pass touched last are
       the ones still in cache (x, dy and dz together outgrow the L3 cache at the widest layers). */
#pragma omp parallel num_threads(threads)
    {
        int64_t first, last;
        thread_share(M, omp_get_thread_num(), omp_get_num_threads(), &first, &last);
        for (int64_t m = last - 1; m >= first; m--) {
            const float *in = x + m * C, *grad = dy + m * C;
            float *out = dx + m * C;
            switch (act) {
            case ACT_SILU: GRADIENT_ROW(ACT_SILU); break;
            case ACT_RELU: GRADIENT_ROW(ACT_RELU); break;
            default: GRADIENT_ROW(ACT_LEAKY);
            }
        }
    }
    free(sum_dz);
    free(scale);
}
