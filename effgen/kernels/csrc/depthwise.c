/* Backward pass of a 3x3 depthwise convolution (padding 1, stride 1 or 2), channels_last float32.

   The forward pass stays PyTorch's (oneDNN is fast at it); its backward is several times slower
   than the forward on the CPU. Here one image at a time is walked in NHWC order, so each pixel's C
   channels are contiguous and every inner loop vectorises over channels:

     grad_x[ih, iw, c] = sum over taps (kh, kw) reaching it of grad_y[oh, ow, c] * w[kh, kw, c]
     grad_w[kh, kw, c] = sum over images and output pixels of grad_y[oh, ow, c] * x[ih, iw, c]

   with ih = oh * stride + kh - 1. An image's input (at most 28 x 28 x 256 floats here) stays in
   cache while its taps are gathered. grad_w is summed in float over one image, then across images
   and threads in double. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Sixteen floats as one value: GCC and Clang map it onto the vector registers -march=native offers
   (one AVX-512 register, two AVX ones, four NEON ones). Unaligned loads go through memcpy. */
typedef float vec16 __attribute__((vector_size(64)));
#define LANES 16

static inline __attribute__((always_inline)) vec16 load16(const float *p) {
    vec16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One image's nine tap sums of grad_w for channels [c0, c0 + 16), kept in nine registers across the
   image instead of going through memory at every output pixel: the same products added in the same
   order as the row loop below. It pays where a pixel has few channels (measured: 64 and 128 faster,
   256 slower, than the row loop), so the caller uses it up to 128. */
static inline __attribute__((always_inline)) void image_taps_lanes(
        const float *xn, const float *gn, int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t C,
        int64_t c0, const int64_t stride, float *image_sum) {
    vec16 sum[9] = {{0}};
    for (int64_t oh = 0; oh < OH; oh++) {
        for (int64_t ow = 0; ow < OW; ow++) {
            const vec16 g = load16(gn + (oh * OW + ow) * C + c0);
            for (int64_t kh = 0; kh < 3; kh++) {
                const int64_t ih = oh * stride + kh - 1;
                if (ih < 0 || ih >= H) continue;
                for (int64_t kw = 0; kw < 3; kw++) {
                    const int64_t iw = ow * stride + kw - 1;
                    if (iw < 0 || iw >= W) continue;
                    sum[kh * 3 + kw] += g * load16(xn + (ih * W + iw) * C + c0);
                }
            }
        }
    }
    for (int k = 0; k < 9; k++) memcpy(image_sum + k * C + c0, &sum[k], sizeof sum[k]);
}

/* x (N, H, W, C), grad_y (N, OH, OW, C), w_taps (3, 3, C): the weight laid out tap-major.
   Inlined with a literal stride (below), so that its divisions are shifts. */
static inline __attribute__((always_inline)) void backward(
        const float *x, const float *grad_y, const float *w_taps, float *grad_x, float *grad_w_taps,
        int64_t N, int64_t H, int64_t W, int64_t C, const int64_t stride, int threads) {
    const int64_t OH = (H + 2 - 3) / stride + 1, OW = (W + 2 - 3) / stride + 1;
    /* Each thread sums into its own slot; the slots are added in thread order afterwards, so a
       run repeats bit for bit at a given thread count. */
    double *slots = calloc((size_t)threads * 9 * C, sizeof(double));
#pragma omp parallel num_threads(threads)
    {
        float *image_sum = malloc(9 * C * sizeof(float));
        double *thread_sum = slots + (int64_t)omp_get_thread_num() * 9 * C;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            const float *xn = x + n * H * W * C, *gn = grad_y + n * OH * OW * C;
            float *dxn = grad_x + n * H * W * C;
            /* grad_x: gather, for every input pixel, the output pixels whose window covers it. */
            for (int64_t ih = 0; ih < H; ih++) {
                for (int64_t iw = 0; iw < W; iw++) {
                    float *out = dxn + (ih * W + iw) * C;
                    memset(out, 0, C * sizeof(float));
                    for (int64_t kh = 0; kh < 3; kh++) {
                        const int64_t th = ih + 1 - kh;  /* = oh * stride */
                        if (th < 0 || th % stride || th / stride >= OH) continue;
                        for (int64_t kw = 0; kw < 3; kw++) {
                            const int64_t tw = iw + 1 - kw;
                            if (tw < 0 || tw % stride || tw / stride >= OW) continue;
                            const float *g = gn + ((th / stride) * OW + tw / stride) * C;
                            const float *w = w_taps + (kh * 3 + kw) * C;
#pragma omp simd
                            for (int64_t c = 0; c < C; c++) out[c] += g[c] * w[c];
                        }
                    }
                }
            }
            /* grad_w: every output pixel times the inputs under its window. */
            if (C % LANES == 0 && C <= 128) {
                for (int64_t c0 = 0; c0 < C; c0 += LANES)
                    image_taps_lanes(xn, gn, H, W, OH, OW, C, c0, stride, image_sum);
            } else {
                memset(image_sum, 0, 9 * C * sizeof(float));
                for (int64_t oh = 0; oh < OH; oh++) {
                    for (int64_t ow = 0; ow < OW; ow++) {
                        const float *g = gn + (oh * OW + ow) * C;
                        for (int64_t kh = 0; kh < 3; kh++) {
                            const int64_t ih = oh * stride + kh - 1;
                            if (ih < 0 || ih >= H) continue;
                            for (int64_t kw = 0; kw < 3; kw++) {
                                const int64_t iw = ow * stride + kw - 1;
                                if (iw < 0 || iw >= W) continue;
                                const float *in = xn + (ih * W + iw) * C;
                                float *acc = image_sum + (kh * 3 + kw) * C;
#pragma omp simd
                                for (int64_t c = 0; c < C; c++) acc[c] += g[c] * in[c];
                            }
                        }
                    }
                }
            }
            for (int64_t i = 0; i < 9 * C; i++) thread_sum[i] += image_sum[i];
        }
        free(image_sum);
    }
    for (int64_t i = 0; i < 9 * C; i++) {
        double total = 0.0;
        for (int t = 0; t < threads; t++) total += slots[t * 9 * C + i];
        grad_w_taps[i] = (float)total;
    }
    free(slots);
}

void depthwise3x3_backward(const float *x, const float *grad_y, const float *w_taps, float *grad_x,
                           float *grad_w_taps, int64_t N, int64_t H, int64_t W, int64_t C, int64_t stride,
                           int threads) {
    if (stride == 1)
        backward(x, grad_y, w_taps, grad_x, grad_w_taps, N, H, W, C, 1, threads);
    else
        backward(x, grad_y, w_taps, grad_x, grad_w_taps, N, H, W, C, 2, threads);
}
