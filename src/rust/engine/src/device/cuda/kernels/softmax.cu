// Row-wise softmax and log-softmax, shifted by the row maximum as the CPU kernels are.
// A thread per row: the rows of a classifier's output are short (10 to 1000 classes),
// and independent threads keep every kernel free of warp-level cooperation.

extern "C" __global__ void rk_softmax_rows(const float* x, float* y, u64 rows, u64 cols) {
  GRID_STRIDE(row, rows) {
    const float* xr = x + row * cols;
    float* yr = y + row * cols;
    float m = RK_NEG_INF;
    for (u64 j = 0; j < cols; ++j) m = fmaxf(m, xr[j]);
    float s = 0.0f;
    for (u64 j = 0; j < cols; ++j) {
      float e = expf(xr[j] - m);
      yr[j] = e;
      s += e;
    }
    float inv = 1.0f / s;
    for (u64 j = 0; j < cols; ++j) yr[j] *= inv;
  }
}

// dx = y * (g - sum(g * y)) per row.
extern "C" __global__ void rk_softmax_rows_backward(const float* y, const float* g, float* dx,
                                                    u64 rows, u64 cols) {
  GRID_STRIDE(row, rows) {
    u64 o = row * cols;
    float dot = 0.0f;
    for (u64 j = 0; j < cols; ++j) dot += g[o + j] * y[o + j];
    for (u64 j = 0; j < cols; ++j) dx[o + j] = y[o + j] * (g[o + j] - dot);
  }
}

extern "C" __global__ void rk_log_softmax_rows(const float* x, float* y, u64 rows, u64 cols) {
  GRID_STRIDE(row, rows) {
    const float* xr = x + row * cols;
    float m = RK_NEG_INF;
    for (u64 j = 0; j < cols; ++j) m = fmaxf(m, xr[j]);
    float s = 0.0f;
    for (u64 j = 0; j < cols; ++j) s += expf(xr[j] - m);
    float lse = m + logf(s);
    for (u64 j = 0; j < cols; ++j) y[row * cols + j] = xr[j] - lse;
  }
}

// dx = g - softmax(x) * sum(g) per row, from y = log_softmax(x).
extern "C" __global__ void rk_log_softmax_rows_backward(const float* y, const float* g,
                                                        float* dx, u64 rows, u64 cols) {
  GRID_STRIDE(row, rows) {
    u64 o = row * cols;
    float s = 0.0f;
    for (u64 j = 0; j < cols; ++j) s += g[o + j];
    for (u64 j = 0; j < cols; ++j) dx[o + j] = g[o + j] - expf(y[o + j]) * s;
  }
}
