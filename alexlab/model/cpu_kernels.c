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

/* d^-beta: for the paper's beta = 0.75 as r * sqrt(r) with r = 1 / sqrt(d), which vectorises, instead of a general
   pow; not as 1 / sqrt(d * sqrt(d)), whose d^1.5 overflows float32 for activations above about 1e15 (NaN where
   nn.LocalResponseNorm is finite) */
#define POWER(T, SQRT, POW, d, beta) \
    ((beta) == (T)0.75 ? ((T)1 / SQRT(d)) * SQRT((T)1 / SQRT(d)) : POW((d), -(beta)))

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

/* The stem's convolution: few input channels (a grey or colour image), a small square kernel, stride 1, zero padding,
   as nn.Conv2d computes it. oneDNN's kernels are built for many channels; with one input channel they ran at a
   tenth of the machine's rate (the quickstart's conv1: 29 M multiply-adds a batch, forward, in 17 ms). Here each
   sample's input is copied once into a zero-padded plane `wide` = width + 2 pad across, and every output row is
   computed that wide too, so that a tap's contribution to a whole plane is one contiguous loop,
   out[p] += w * padded[p + ky * wide + kx] (the extra columns are dropped at the end). The weight gradient keeps a
   partial sum per position for each tap, added up in a fixed order at the end: vectorised without reassociation
   and the same bits for any thread count (the threads split the forward by samples, the gradient by output
   channels). The input's own gradient is not computed: the stem's input (the image) never needs one, and the layer
   leaves an input that does to nn.Conv2d. */
static inline int64_t padded_size(int64_t in_channels, int64_t height, int64_t width, int64_t pad) {
    return in_channels * (height + 2 * pad + 1) * (width + 2 * pad); /* a spare row: the last taps read past the end */
}

#define STEM(T, SUFFIX)                                                                                              \
    static void pad_sample_##SUFFIX(const T *x, int64_t in_channels, int64_t height, int64_t width, int64_t pad,    \
                                    T *padded) {                                                                     \
        int64_t wide = width + 2 * pad, rows = height + 2 * pad + 1;                                                 \
        memset(padded, 0, in_channels * rows * wide * sizeof(T));                                                   \
        for (int64_t ci = 0; ci < in_channels; ci++)                                                                 \
            for (int64_t y = 0; y < height; y++)                                                                     \
                memcpy(padded + (ci * rows + y + pad) * wide + pad, x + (ci * height + y) * width, width * sizeof(T)); \
    }                                                                                                                \
                                                                                                                     \
    /* one output plane `wide` across: the bias, then each tap in (channel, row, column) order, summed in a register  \
       for a run of positions; inlined with the channels and kernel as constants for the common stems, so that the   \
       taps unroll and the positions vectorise */                                                                    \
    static inline __attribute__((always_inline)) void stem_plane_##SUFFIX(                                           \
        const T *restrict padded, const T *restrict taps, T start, T *restrict acc, int64_t in_channels,             \
        int64_t kernel, int64_t rows, int64_t wide, int64_t span) {                                                  \
        for (int64_t p = 0; p < span; p++) {                                                                         \
            T a = start;                                                                                             \
            for (int64_t ci = 0; ci < in_channels; ci++)                                                             \
                for (int64_t ky = 0; ky < kernel; ky++)                                                              \
                    for (int64_t kx = 0; kx < kernel; kx++)                                                          \
                        a += taps[(ci * kernel + ky) * kernel + kx] * padded[(ci * rows + ky) * wide + kx + p];      \
            acc[p] = a;                                                                                              \
        }                                                                                                            \
    }                                                                                                                \
                                                                                                                     \
    int stem_forward_##SUFFIX(const T *x, T *out, const T *weight, const T *bias, int64_t samples,                  \
                              int64_t in_channels, int64_t height, int64_t width, int64_t out_channels,              \
                              int64_t kernel, int64_t pad, int64_t out_height, int64_t out_width) {                  \
        int64_t wide = width + 2 * pad, rows = height + 2 * pad + 1, span = out_height * wide;                       \
        int64_t taps = in_channels * kernel * kernel;                                                                \
        T *padded = malloc((padded_size(in_channels, height, width, pad) + span) * sizeof(T));                       \
        if (!padded) return 1;                                                                                       \
        T *acc = padded + padded_size(in_channels, height, width, pad);                                              \
        for (int64_t s = 0; s < samples; s++) {                                                                      \
            pad_sample_##SUFFIX(x + s * in_channels * height * width, in_channels, height, width, pad, padded);      \
            for (int64_t c = 0; c < out_channels; c++) {                                                             \
                const T *mine = weight + c * taps;                                                                   \
                T start = bias ? bias[c] : (T)0;                                                                     \
                if (in_channels == 1 && kernel == 3)                                                                 \
                    stem_plane_##SUFFIX(padded, mine, start, acc, 1, 3, rows, wide, span);                           \
                else if (in_channels == 3 && kernel == 3)                                                            \
                    stem_plane_##SUFFIX(padded, mine, start, acc, 3, 3, rows, wide, span);                           \
                else if (in_channels == 1 && kernel == 5)                                                            \
                    stem_plane_##SUFFIX(padded, mine, start, acc, 1, 5, rows, wide, span);                           \
                else                                                                                                 \
                    stem_plane_##SUFFIX(padded, mine, start, acc, in_channels, kernel, rows, wide, span);            \
                T *plane = out + (s * out_channels + c) * out_height * out_width;                                    \
                for (int64_t oy = 0; oy < out_height; oy++)                                                          \
                    memcpy(plane + oy * out_width, acc + oy * wide, out_width * sizeof(T));                          \
            }                                                                                                        \
        }                                                                                                            \
        free(padded);                                                                                                \
        return 0;                                                                                                    \
    }                                                                                                                \
                                                                                                                     \
    /* grad_weight [c_end - c_begin, in_channels, kernel, kernel] and grad_bias (may be NULL) of output channels      \
       c_begin..c_end */                                                                                             \
    int stem_weight_grad_##SUFFIX(const T *x, const T *grad, T *grad_weight, T *grad_bias, int64_t samples,         \
                                  int64_t in_channels, int64_t height, int64_t width, int64_t out_channels,          \
                                  int64_t kernel, int64_t pad, int64_t out_height, int64_t out_width,                \
                                  int64_t c_begin, int64_t c_end) {                                                  \
        int64_t wide = width + 2 * pad, rows = height + 2 * pad + 1, span = out_height * wide;                       \
        int64_t taps = in_channels * kernel * kernel, channels = c_end - c_begin;                                    \
        int64_t padded_each = padded_size(in_channels, height, width, pad);                                          \
        /* the padded input, this sample's gradient rows `wide` across (zero beyond out_width), and per channel      \
           and tap (the bias last) a partial sum for each position */                                                \
        T *padded = malloc((padded_each + span + channels * (taps + 1) * span) * sizeof(T));                         \
        if (!padded) return 1;                                                                                       \
        T *restrict g_wide = padded + padded_each, *partial = g_wide + span;                                         \
        memset(g_wide, 0, span * sizeof(T));                                                                         \
        memset(partial, 0, channels * (taps + 1) * span * sizeof(T));                                                \
        for (int64_t s = 0; s < samples; s++) {                                                                      \
            pad_sample_##SUFFIX(x + s * in_channels * height * width, in_channels, height, width, pad, padded);      \
            for (int64_t c = c_begin; c < c_end; c++) {                                                              \
                const T *plane = grad + (s * out_channels + c) * out_height * out_width;                             \
                for (int64_t oy = 0; oy < out_height; oy++)                                                          \
                    memcpy(g_wide + oy * wide, plane + oy * out_width, out_width * sizeof(T));                       \
                T *mine = partial + (c - c_begin) * (taps + 1) * span;                                               \
                for (int64_t t = 0; t < taps; t++) {                                                                 \
                    int64_t ci = t / (kernel * kernel), ky = t / kernel % kernel, kx = t % kernel;                   \
                    const T *restrict from = padded + (ci * rows + ky) * wide + kx;                                  \
                    T *restrict sum = mine + t * span;                                                               \
                    for (int64_t p = 0; p < span; p++) sum[p] += g_wide[p] * from[p];                                \
                }                                                                                                    \
                T *restrict bias_sum = mine + taps * span;                                                           \
                for (int64_t p = 0; p < span; p++) bias_sum[p] += g_wide[p];                                         \
            }                                                                                                        \
        }                                                                                                            \
        for (int64_t c = c_begin; c < c_end; c++)                                                                    \
            for (int64_t t = 0; t <= taps; t++) {                                                                    \
                const T *sum = partial + ((c - c_begin) * (taps + 1) + t) * span;                                    \
                T total = 0;                                                                                         \
                for (int64_t p = 0; p < span; p++) total += sum[p];                                                  \
                if (t < taps) grad_weight[(c - c_begin) * taps + t] = total;                                         \
                else if (grad_bias) grad_bias[c - c_begin] = total;                                                  \
            }                                                                                                        \
        free(padded);                                                                                                \
        return 0;                                                                                                    \
    }

STEM(float, float32)
STEM(double, float64)
