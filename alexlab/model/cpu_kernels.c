/* alexlab's CPU kernels (loaded by alexlab.model.cpu_kernels): local response normalisation and max-pooling.

   LRN across channels in one pass forward and one backward.
   maps [samples, channels, hw] (one tower's channels of a sample, contiguous), window of `size` channels
   c - front .. c + back around channel c (front = size / 2, back = (size - 1) / 2, those that exist: the zero
   padding of nn.LocalResponseNorm):

     d_c = k + scale * sum over the window of a_j^2        (scale = alpha / size)
     b_c = a_c * d_c^-beta
     da_i = g_i d_i^-beta - 2 beta scale * a_i * sum over the c whose window holds i of g_c a_c d_c^-beta / d_c

   The forward reads the maps once and writes the output once; the backward reads the maps and the output's gradient
   once and writes the input's gradient once: d and d^-beta are recomputed from the maps (a few multiply-adds per
   element, which cost less than writing them in the forward and reading them back). Each sample's window sums run
   over rows of `hw` elements that stay in the cache, so the only traffic to memory is those reads and writes.
   Every element is computed by the same arithmetic whichever samples a call is given, so splitting a batch
   among threads gives the same bits as one call (deterministic). Built with -O3 -march=native -ffast-math
   -fno-associative-math -mrecip (alexlab.model.cpu_kernels.FLAGS): the loops over `hw` vectorised for this CPU,
   square roots and divisions by the CPU's reciprocal estimates refined by a Newton step (within a few units in
   the last place, as the tests against nn.LocalResponseNorm check), the window sums still added in the order
   written. The division and square roots were most of the kernel's time. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* sum[p] = sum over rows lo..hi (lo <= hi) of TERM(row[p]), added in row order; four rows a pass, so that the sum
   goes through the cache a quarter as often */
#define WINDOW_SUM(T, NAME, TERM)                                                                                    \
    static void NAME(const T *restrict rows, int64_t lo, int64_t hi, int64_t hw, T *restrict sum) {                 \
        const T *restrict first = rows + lo * hw;                                                                    \
        for (int64_t p = 0; p < hw; p++) sum[p] = TERM(first[p]);                                                    \
        int64_t j = lo + 1;                                                                                          \
        for (; j + 3 <= hi; j += 4) {                                                                                \
            const T *restrict r0 = rows + j * hw, *restrict r1 = r0 + hw, *restrict r2 = r1 + hw, *restrict r3 = r2 + hw; \
            for (int64_t p = 0; p < hw; p++)                                                                         \
                sum[p] = sum[p] + TERM(r0[p]) + TERM(r1[p]) + TERM(r2[p]) + TERM(r3[p]);                             \
        }                                                                                                            \
        for (; j <= hi; j++) {                                                                                       \
            const T *restrict row = rows + j * hw;                                                                   \
            for (int64_t p = 0; p < hw; p++) sum[p] += TERM(row[p]);                                                 \
        }                                                                                                            \
    }

#define SQUARE(v) ((v) * (v))
#define PLAIN(v) (v)

/* d^-beta: for the paper's beta = 0.75 as 1 / sqrt(d * sqrt(d)), which vectorises, instead of a general pow */
#define POWER(T, SQRT, POW, d, beta) ((beta) == (T)0.75 ? (T)1 / SQRT((d) * SQRT(d)) : POW((d), -(beta)))

#define KERNELS(T, SUFFIX, SQRT, POW)                                                                                \
    WINDOW_SUM(T, squares_##SUFFIX, SQUARE)                                                                          \
    WINDOW_SUM(T, plain_##SUFFIX, PLAIN)                                                                             \
                                                                                                                     \
    int lrn_forward_##SUFFIX(const T *a, T *out, int64_t samples, int64_t channels, int64_t hw, int64_t size,       \
                             T scale, T beta, T k) {                                                                 \
        int64_t front = size / 2, back = (size - 1) / 2;                                                             \
        T *sum = malloc(hw * sizeof(T));                                                                             \
        if (!sum) return 1;                                                                                          \
        for (int64_t s = 0; s < samples; s++) {                                                                      \
            const T *x = a + s * channels * hw;                                                                      \
            T *y = out + s * channels * hw;                                                                          \
            for (int64_t c = 0; c < channels; c++) {                                                                 \
                squares_##SUFFIX(x, MAX(0, c - front), MIN(channels - 1, c + back), hw, sum);                        \
                const T *restrict xc = x + c * hw;                                                                   \
                T *restrict yc = y + c * hw;                                                                         \
                for (int64_t p = 0; p < hw; p++) {                                                                   \
                    T d = k + scale * sum[p];                                                                        \
                    yc[p] = xc[p] * POWER(T, SQRT, POW, d, beta);                                                    \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
        free(sum);                                                                                                   \
        return 0;                                                                                                    \
    }                                                                                                                \
                                                                                                                     \
    int lrn_backward_##SUFFIX(const T *a, const T *grad, T *grad_in, int64_t samples, int64_t channels,             \
                              int64_t hw, int64_t size, T scale, T beta, T k) {                                      \
        int64_t front = size / 2, back = (size - 1) / 2;                                                             \
        T *sum = malloc((1 + channels) * hw * sizeof(T));                                                            \
        if (!sum) return 1;                                                                                          \
        T *ratio = sum + hw; /* one sample's g_c a_c d_c^-beta / d_c */                                              \
        T coefficient = -2 * beta * scale;                                                                           \
        for (int64_t s = 0; s < samples; s++) {                                                                      \
            const T *x = a + s * channels * hw, *g = grad + s * channels * hw;                                       \
            T *gi = grad_in + s * channels * hw;                                                                     \
            for (int64_t c = 0; c < channels; c++) {                                                                 \
                squares_##SUFFIX(x, MAX(0, c - front), MIN(channels - 1, c + back), hw, sum);                        \
                const T *restrict xc = x + c * hw, *restrict gc = g + c * hw;                                        \
                T *restrict gic = gi + c * hw, *restrict rc = ratio + c * hw;                                        \
                for (int64_t p = 0; p < hw; p++) {                                                                   \
                    T d = k + scale * sum[p];                                                                        \
                    T first = gc[p] * POWER(T, SQRT, POW, d, beta);                                                  \
                    gic[p] = first;                                                                                  \
                    rc[p] = first * xc[p] / d;                                                                       \
                }                                                                                                    \
            }                                                                                                        \
            /* channel i is in the windows of c = i - back .. i + front: the mirrored window */                      \
            for (int64_t i = 0; i < channels; i++) {                                                                 \
                plain_##SUFFIX(ratio, MAX(0, i - back), MIN(channels - 1, i + front), hw, sum);                      \
                const T *restrict xi = x + i * hw;                                                                   \
                T *restrict gii = gi + i * hw;                                                                       \
                for (int64_t p = 0; p < hw; p++) gii[p] += coefficient * xi[p] * sum[p];                             \
            }                                                                                                        \
        }                                                                                                            \
        free(sum);                                                                                                   \
        return 0;                                                                                                    \
    }

KERNELS(float, float32, sqrtf, powf)
KERNELS(double, float64, sqrt, pow)

/* Max-pooling of planes [planes, height, width] (N * C of NCHW) by a window x window square every `stride` pixels, no
   padding, as nn.MaxPool2d computes it: each output the first maximum of its window in row-major order, a NaN
   winning over numbers (the last NaN of the window); `where` keeps its place in the window (ky * window + kx, a byte),
   which the backward adds the output's gradient to. PyTorch's NCHW kernel spends tens of nanoseconds an output on
   index arithmetic and branches; here a window is nine loads, maxima and compares in the cache. NaN is tested on the
   bits, which -ffast-math's finite-math assumption cannot remove. */
static inline int nan_float32(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7fffffffu) > 0x7f800000u;
}
static inline int nan_float64(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7fffffffffffffffull) > 0x7ff0000000000000ull;
}

/* One output's window: its maximum (a max instruction, no branch), then its place: the first in row-major order
   that equals it, or the last NaN where the window holds one (then the output is that NaN). Inlined with the
   window and stride as constants for the common ones, so the compiler unrolls the window: three times faster. */
#define POOLING(T, SUFFIX)                                                                                           \
    static inline __attribute__((always_inline)) void pool_rows_##SUFFIX(                                            \
        const T *x, T *out, uint8_t *where, int64_t planes, int64_t height, int64_t width, int64_t out_height,       \
        int64_t out_width, int64_t window, int64_t stride) {                                                         \
        for (int64_t plane = 0; plane < planes; plane++) {                                                           \
            const T *xp = x + plane * height * width;                                                                \
            T *op = out + plane * out_height * out_width;                                                            \
            uint8_t *wp = where + plane * out_height * out_width;                                                    \
            for (int64_t oy = 0; oy < out_height; oy++)                                                              \
                for (int64_t ox = 0; ox < out_width; ox++) {                                                         \
                    const T *corner = xp + oy * stride * width + ox * stride;                                        \
                    T best = corner[0];                                                                              \
                    int nan_at = -1, at = 0;                                                                         \
                    for (int64_t ky = 0; ky < window; ky++)                                                          \
                        for (int64_t kx = 0; kx < window; kx++) {                                                   \
                            T v = corner[ky * width + kx];                                                           \
                            best = v > best ? v : best;                                                              \
                            nan_at = nan_##SUFFIX(v) ? (int)(ky * window + kx) : nan_at;                             \
                        }                                                                                            \
                    for (int64_t k = window * window - 1; k >= 0; k--)                                               \
                        at = corner[(k / window) * width + k % window] == best ? (int)k : at;                        \
                    if (nan_at >= 0) {                                                                               \
                        at = nan_at;                                                                                 \
                        best = corner[(at / window) * width + at % window];                                          \
                    }                                                                                                \
                    op[oy * out_width + ox] = best;                                                                  \
                    wp[oy * out_width + ox] = (uint8_t)at;                                                           \
                }                                                                                                    \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    int max_pool_forward_##SUFFIX(const T *x, T *out, uint8_t *where, int64_t planes, int64_t height, int64_t width, \
                                  int64_t out_height, int64_t out_width, int64_t window, int64_t stride) {           \
        if (window == 3 && stride == 2) /* overlapping pooling (the paper's) */                                      \
            pool_rows_##SUFFIX(x, out, where, planes, height, width, out_height, out_width, 3, 2);                   \
        else if (window == 2 && stride == 2) /* pooling=plain */                                                     \
            pool_rows_##SUFFIX(x, out, where, planes, height, width, out_height, out_width, 2, 2);                   \
        else                                                                                                         \
            pool_rows_##SUFFIX(x, out, where, planes, height, width, out_height, out_width, window, stride);         \
        return 0;                                                                                                    \
    }                                                                                                                \
                                                                                                                     \
    int max_pool_backward_##SUFFIX(const T *grad, const uint8_t *where, T *grad_in, int64_t planes, int64_t height,  \
                                   int64_t width, int64_t out_height, int64_t out_width, int64_t window,             \
                                   int64_t stride) {                                                                 \
        for (int64_t plane = 0; plane < planes; plane++) {                                                           \
            const T *gp = grad + plane * out_height * out_width;                                                     \
            const uint8_t *wp = where + plane * out_height * out_width;                                              \
            T *ip = grad_in + plane * height * width;                                                                \
            memset(ip, 0, height * width * sizeof(T));                                                               \
            for (int64_t oy = 0; oy < out_height; oy++)                                                              \
                for (int64_t ox = 0; ox < out_width; ox++) {                                                         \
                    int at = wp[oy * out_width + ox];                                                                \
                    ip[(oy * stride + at / window) * width + ox * stride + at % window] += gp[oy * out_width + ox];  \
                }                                                                                                    \
        }                                                                                                            \
        return 0;                                                                                                    \
    }

POOLING(float, float32)
POOLING(double, float64)
