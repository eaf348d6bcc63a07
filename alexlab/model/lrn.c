/* Local response normalisation across channels in one pass forward and one backward, for alexlab.model.lrn_kernel.

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
   -fno-associative-math -mrecip (alexlab.model.lrn_kernel.FLAGS): the loops over `hw` vectorised for this CPU,
   square roots and divisions by the CPU's reciprocal estimates refined by a Newton step (within a few units in
   the last place, as the tests against nn.LocalResponseNorm check), the window sums still added in the order
   written. The division and square roots were most of the kernel's time. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

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
