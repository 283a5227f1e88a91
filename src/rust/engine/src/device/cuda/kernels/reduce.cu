// Reductions without float atomics or warp cooperation, so that sums do not depend on
// scheduling and every kernel is a set of independent threads.

// out[c] = sum over rows of g[r, c]: a thread per column walks the rows, so a warp reads
// 32 neighbouring columns of a row at once.
extern "C" __global__ void rk_col_sum(const float* g, float* out, u64 rows, u64 cols) {
  GRID_STRIDE(c, cols) {
    float s = 0.0f;
    for (u64 r = 0; r < rows; ++r) s += g[r * cols + c];
    out[c] = s;
  }
}

// partial[t] = sum of x[t], x[t + parts], x[t + 2 parts], ... for t < parts: the caller
// sums the `parts` partials (on the host, where a loss or a metric goes anyway).
extern "C" __global__ void rk_sum_partial(const float* x, float* partial, u64 n, u64 parts) {
  GRID_STRIDE(t, parts) {
    float s = 0.0f;
    for (u64 i = t; i < n; i += parts) s += x[i];
    partial[t] = s;
  }
}
