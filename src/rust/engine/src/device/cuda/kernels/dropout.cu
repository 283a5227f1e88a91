// Dropout masks from a counter-based generator: element i of call (seed, offset) gets the
// same uniform number wherever it runs, so a step is repeatable and needs no RNG state on
// the device. The mixing is SplitMix64's finaliser.

__device__ __forceinline__ float rk_uniform(u64 seed, u64 i) {
  u64 z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f);  // 24 random bits in [0, 1)
}

// mask[i] = 1 / (1 - rate) where kept, 0 where dropped; y = x * mask.
extern "C" __global__ void rk_dropout(const float* x, float* y, float* mask, float rate,
                                      u64 seed, u64 n) {
  // rate 1 drops everything (Keras gives zeros), without a 1 / 0 scale.
  float keep = rate < 1.0f ? 1.0f / (1.0f - rate) : 0.0f;
  GRID_STRIDE(i, n) {
    float m = rk_uniform(seed, i) >= rate ? keep : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}
