// Batch normalization over the channels of an (rows, c) view. Per-channel sums are
// split over chunks of rows (a thread per chunk and channel, so neighbouring threads read
// neighbouring channels), then the chunks' partial sums are folded in double precision,
// as the CPU sums: deterministic, and parallel however few channels there are.

// partial[b * c + ch] = the sum over chunk b of x, or of (x - mean)^2 when mean is given.
extern "C" __global__ void rk_channel_partials(const float* x, const float* mean, float* partial,
                                              u64 rows, u64 c, u64 chunk) {
  u64 chunks = (rows + chunk - 1) / chunk;
  GRID_STRIDE(i, chunks * c) {
    u64 ch = i % c, b = i / c;
    u64 r1 = (b + 1) * chunk < rows ? (b + 1) * chunk : rows;
    float s = 0.0f;
    for (u64 r = b * chunk; r < r1; ++r) {
      float v = x[r * c + ch];
      if (mean) {
        float d = v - mean[ch];
        s += d * d;
      } else {
        s += v;
      }
    }
    partial[i] = s;
  }
}

// The same for the gradient sums: sum g and sum g * (x - mean) * inv_std per chunk.
extern "C" __global__ void rk_grad_partials(const float* x, const float* g, const float* mean,
                                           const float* inv_std, float* partial_g,
                                           float* partial_gx, u64 rows, u64 c, u64 chunk) {
  u64 chunks = (rows + chunk - 1) / chunk;
  GRID_STRIDE(i, chunks * c) {
    u64 ch = i % c, b = i / c;
    u64 r1 = (b + 1) * chunk < rows ? (b + 1) * chunk : rows;
    float a = 0.0f, bx = 0.0f;
    for (u64 r = b * chunk; r < r1; ++r) {
      float gv = g[r * c + ch];
      a += gv;
      bx += gv * (x[r * c + ch] - mean[ch]) * inv_std[ch];
    }
    partial_g[i] = a;
    partial_gx[i] = bx;
  }
}

// out[ch] = scale * the sum over chunks of partial[b * c + ch], added up in double.
extern "C" __global__ void rk_fold_partials(const float* partial, float* out, u64 chunks, u64 c,
                                           float scale) {
  GRID_STRIDE(ch, c) {
    double s = 0.0;
    for (u64 b = 0; b < chunks; ++b) s += (double)partial[b * c + ch];
    out[ch] = (float)(s * (double)scale);
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
