/* The two memory-bound passes of squeeze-and-excitation's backward, channels_last float32.

   SE scales each channel of x (N, HW, C) by a gate g (N, C) computed from x's channel means:
   y = x * g. Its backward needs dg = sum over pixels of dy * x, then, once the gate's small
   layers have turned dg into a gradient for the means (dmean, N x C), the input gradient
   dx = dy * g + dmean / HW. Autograd does this in five full-size kernels (two products, a sum,
   the mean's broadcast and the addition of the two paths); here it is two passes. Images are
   independent, so threads split them and the sums need no cross-thread reduction. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* grad_gate[n, c] = sum over pixels of dy[n, p, c] * x[n, p, c]. */
void channel_scale_gate_grad(const float *x, const float *dy, float *grad_gate, int64_t N, int64_t HW,
                             int64_t C, int threads) {
#pragma omp parallel num_threads(threads)
    {
        double *sum = malloc(C * sizeof(double));
        float *block = malloc(C * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            memset(sum, 0, C * sizeof(double));
            /* float over 32 pixels, double across them: full vector width, rounding at float level */
            for (int64_t first = 0; first < HW; first += 32) {
                const int64_t last = first + 32 < HW ? first + 32 : HW;
                memset(block, 0, C * sizeof(float));
                for (int64_t p = first; p < last; p++) {
                    const float *in = x + (n * HW + p) * C, *grad = dy + (n * HW + p) * C;
#pragma omp simd
                    for (int64_t c = 0; c < C; c++) block[c] += grad[c] * in[c];
                }
                for (int64_t c = 0; c < C; c++) sum[c] += block[c];
            }
            for (int64_t c = 0; c < C; c++) grad_gate[n * C + c] = (float)sum[c];
        }
        free(sum);
        free(block);
    }
}

/* dx[n, p, c] = dy[n, p, c] * gate[n, c] + grad_mean[n, c] / HW. */
void channel_scale_input_grad(const float *dy, const float *gate, const float *grad_mean, float *dx,
                              int64_t N, int64_t HW, int64_t C, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *g = gate + n * C, *gm = grad_mean + n * C;
        for (int64_t p = 0; p < HW; p++) {
            const float *grad = dy + (n * HW + p) * C;
            float *out = dx + (n * HW + p) * C;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) out[c] = grad[c] * g[c] + gm[c] / (float)HW;
        }
    }
}
