// Batch normalization over the channels of an (rows, c) view, as the CPU computes it:
// per-channel sums in double precision. A thread per channel walks the rows (plain and
// exact; a split over rows would suit large images better).

extern "C" __global__ void rk_moments(const float* x, float* mean, float* var, u64 rows, u64 c) {
  GRID_STRIDE(ch, c) {
    double s = 0.0;
    for (u64 r = 0; r < rows; ++r) s += (double)x[r * c + ch];
    double n = rows > 0 ? (double)rows : 1.0;
    double m = s / n;
    double q = 0.0;
    for (u64 r = 0; r < rows; ++r) {
      double d = (double)x[r * c + ch] - m;
      q += d * d;
    }
    mean[ch] = (float)m;
    var[ch] = (float)(q / n);
  }
}

// y = x * scale + shift, per channel.
extern "C" __global__ void rk_scale_shift(const float* x, const float* scale, const float* shift,
                                          float* y, u64 rows, u64 c) {
  GRID_STRIDE(i, rows * c) {
    u64 ch = i % c;
    y[i] = x[i] * scale[ch] + shift[ch];
  }
}

// Per channel: sum(g) and sum(g * (x - mean) * inv_std).
extern "C" __global__ void rk_norm_grad_sums(const float* x, const float* g, const float* mean,
                                             const float* inv_std, float* sum_g,
                                             float* sum_gx, u64 rows, u64 c) {
  GRID_STRIDE(ch, c) {
    double a = 0.0, b = 0.0;
    for (u64 r = 0; r < rows; ++r) {
      float gv = g[r * c + ch];
      a += (double)gv;
      b += (double)(gv * (x[r * c + ch] - mean[ch]) * inv_std[ch]);
    }
    sum_g[ch] = (float)a;
    sum_gx[ch] = (float)b;
  }
}

// The input gradient of training-mode batch normalization.
extern "C" __global__ void rk_batch_norm_input_grad(const float* x, const float* g,
                                                    const float* mean, const float* inv_std,
                                                    const float* gamma, const float* sum_g,
                                                    const float* sum_gx, float* dx, u64 rows,
                                                    u64 c) {
  float n = rows > 0 ? (float)rows : 1.0f;
  GRID_STRIDE(i, rows * c) {
    u64 ch = i % c;
    float xhat = (x[i] - mean[ch]) * inv_std[ch];
    float k = gamma[ch] * inv_std[ch] / n;
    dx[i] = k * (n * g[i] - sum_g[ch] - xhat * sum_gx[ch]);
  }
}
