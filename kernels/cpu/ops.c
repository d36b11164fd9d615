/* ops.c - element-wise kernels of the forward pass: RMS normalization,
 * softmax and the SwiGLU gate. Plain float code that the compiler
 * vectorizes; reductions accumulate in double, as ggml does.
 */
#include "kern.h"

#include <math.h>

/* x (n,), w (n,) -> out (n,): out = x / sqrt(mean(x^2) + eps) * w.
 * out may alias x. */
void kern_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps)
{
    if (n == 0)
        return;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

/* x (n,) in place: x = exp(x - max) / sum. */
void kern_softmax(float *x, size_t n)
{
    if (n == 0)
        return;
    float max = x[0];
    for (size_t i = 1; i < n; i++)
        max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float e = expf(x[i] - max);
        x[i] = e;
        sum += (double)e;
    }
    const float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

/* gate (n,), up (n,): gate = gate * sigmoid(gate) * up. */
void kern_swiglu(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
