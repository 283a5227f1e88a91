// Shared by every kernel file: index types, grid-stride loops, activations, warp sums.
// NVRTC compiles these sources at run time (no CUDA headers needed), so only built-ins
// and the device math library are used.

typedef unsigned long long u64;

// -inf without math.h (NVRTC compiles without the CUDA headers).
#define RK_NEG_INF __int_as_float(0xff800000)

#define GRID_STRIDE(i, n) \
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (u64)blockDim.x * gridDim.x)

// Activation codes: the order of the engine's `Activation` enum (ops/activation.rs).
#define ACT_LINEAR 0
#define ACT_RELU 1
#define ACT_RELU6 2
#define ACT_LEAKY_RELU 3
#define ACT_ELU 4
#define ACT_SELU 5
#define ACT_GELU 6
#define ACT_SIGMOID 7
#define ACT_HARD_SIGMOID 8
#define ACT_TANH 9
#define ACT_SOFTPLUS 10
#define ACT_SOFTSIGN 11
#define ACT_SILU 12
#define ACT_EXPONENTIAL 13

#define SELU_ALPHA 1.6732632f
#define SELU_SCALE 1.050701f
#define LEAKY_SLOPE 0.2f

__device__ __forceinline__ float rk_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

__device__ __forceinline__ float rk_act(int act, float x) {
  switch (act) {
    case ACT_RELU: return fmaxf(x, 0.0f);
    case ACT_RELU6: return fminf(fmaxf(x, 0.0f), 6.0f);
    case ACT_LEAKY_RELU: return x > 0.0f ? x : LEAKY_SLOPE * x;
    case ACT_ELU: return x > 0.0f ? x : expm1f(x);
    case ACT_SELU: return SELU_SCALE * (x > 0.0f ? x : SELU_ALPHA * expm1f(x));
    case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678f));
    case ACT_SIGMOID: return rk_sigmoid(x);
    case ACT_HARD_SIGMOID: return fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case ACT_TANH: return tanhf(x);
    case ACT_SOFTPLUS: return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
    case ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
    case ACT_SILU: return x * rk_sigmoid(x);
    case ACT_EXPONENTIAL: return expf(x);
    default: return x;
  }
}

// dy/dx from the input x and the output y, as the CPU kernels compute it.
__device__ __forceinline__ float rk_act_grad(int act, float x, float y) {
  switch (act) {
    case ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
    case ACT_RELU6: return (y > 0.0f && y < 6.0f) ? 1.0f : 0.0f;
    case ACT_LEAKY_RELU: return y > 0.0f ? 1.0f : LEAKY_SLOPE;
    case ACT_ELU: return y > 0.0f ? 1.0f : y + 1.0f;
    case ACT_SELU: return y > 0.0f ? SELU_SCALE : y + SELU_SCALE * SELU_ALPHA;
    case ACT_GELU: {
      float cdf = 0.5f * (1.0f + erff(x * 0.70710678f));
      float pdf = expf(-0.5f * x * x) * 0.3989423f;
      return cdf + x * pdf;
    }
    case ACT_SIGMOID: return y * (1.0f - y);
    case ACT_HARD_SIGMOID: return (x > -3.0f && x < 3.0f) ? (1.0f / 6.0f) : 0.0f;
    case ACT_TANH: return 1.0f - y * y;
    case ACT_SOFTPLUS: return rk_sigmoid(x);
    case ACT_SOFTSIGN: {
      float d = 1.0f + fabsf(x);
      return 1.0f / (d * d);
    }
    case ACT_SILU: {
      float s = rk_sigmoid(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case ACT_EXPONENTIAL: return y;
    default: return 1.0f;
  }
}

