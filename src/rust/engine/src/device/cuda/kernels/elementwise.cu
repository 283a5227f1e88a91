// Elementwise kernels: one grid-stride loop each, launched with 256-thread blocks.

extern "C" __global__ void rk_fill(float* y, float v, u64 n) {
  GRID_STRIDE(i, n) y[i] = v;
}

// y = a * x + b (scale is b = 0).
extern "C" __global__ void rk_affine(const float* x, float* y, float a, float b, u64 n) {
  GRID_STRIDE(i, n) y[i] = a * x[i] + b;
}

extern "C" __global__ void rk_add(const float* a, const float* b, float* y, u64 n) {
  GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

extern "C" __global__ void rk_mul(const float* a, const float* b, float* y, u64 n) {
  GRID_STRIDE(i, n) y[i] = a[i] * b[i];
}

// Gradient accumulation: acc += g.
extern "C" __global__ void rk_add_assign(float* acc, const float* g, u64 n) {
  GRID_STRIDE(i, n) acc[i] += g[i];
}

// y = act(x + bias) for x (rows, cols) and a bias of cols values (or none).
extern "C" __global__ void rk_bias_activation(const float* x, const float* bias, float* y,
                                              u64 rows, u64 cols, int act) {
  GRID_STRIDE(i, rows * cols) {
    float v = x[i] + (bias ? bias[i % cols] : 0.0f);
    y[i] = rk_act(act, v);
  }
}

// dx = g * act'(x) from the input x and the output y.
extern "C" __global__ void rk_activation_backward(const float* x, const float* y,
                                                  const float* g, float* dx, u64 n, int act) {
  GRID_STRIDE(i, n) dx[i] = g[i] * rk_act_grad(act, x ? x[i] : 0.0f, y[i]);
}

// dst row r = src row idx[r] for rows of row_len values. The row numbers come as floats
// (the engine's buffers are float): exact below 2^24 rows, which the caller checks.
extern "C" __global__ void rk_gather_rows(const float* src, const float* idx, float* dst,
                                          u64 rows, u64 row_len) {
  GRID_STRIDE(i, rows * row_len) {
    u64 r = i / row_len, k = i % row_len;
    dst[i] = src[(u64)idx[r] * row_len + k];
  }
}

// dst = src[offset .. offset + n].
extern "C" __global__ void rk_copy_range(const float* src, float* dst, u64 offset, u64 n) {
  GRID_STRIDE(i, n) dst[i] = src[offset + i];
}

// acc = op(acc, x) for tensors of one shape: op 0 add, 1 subtract, 2 multiply, 3 maximum,
// 4 minimum (ties keep acc; a NaN in x wins, as on the CPU).
extern "C" __global__ void rk_combine(float* acc, const float* x, u64 n, int op) {
  GRID_STRIDE(i, n) {
    float a = acc[i], v = x[i];
    switch (op) {
      case 0: a = a + v; break;
      case 1: a = a - v; break;
      case 2: a = a * v; break;
      case 3: a = (v > a || v != v) ? v : a; break;
      default: a = (v < a || v != v) ? v : a; break;
    }
    acc[i] = a;
  }
}
