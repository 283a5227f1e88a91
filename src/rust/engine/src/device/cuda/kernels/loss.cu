// Cross-entropy losses and the accuracy metric, a thread per row. Labels are one-hot rows
// (sparse = 0) or one class index per row stored as a float (sparse = 1). Each row writes
// its own loss; the mean is taken from those (`rk_sum_partial`).

#define EPS 1e-7f

__device__ __forceinline__ float rk_label(const float* labels, int sparse, u64 row, u64 cols,
                                          u64 j) {
  if (sparse) return (u64)labels[row] == j ? 1.0f : 0.0f;
  return labels[row * cols + j];
}

// From logits: probs = softmax(z), row_loss = sum_j y_j (lse - z_j), and
// dz = scale * (probs * sum_j y_j - y) (the gradient of the mean loss when scale = 1/n).
// probs and dz may be null.
extern "C" __global__ void rk_softmax_xent(const float* z, const float* labels, int sparse,
                                           float* probs, float* row_loss, float* dz,
                                           float scale, u64 rows, u64 cols) {
  GRID_STRIDE(row, rows) {
    const float* zr = z + row * cols;
    float m = RK_NEG_INF;
    for (u64 j = 0; j < cols; ++j) m = fmaxf(m, zr[j]);
    float s = 0.0f;
    for (u64 j = 0; j < cols; ++j) s += expf(zr[j] - m);
    float lse = m + logf(s);
    float loss = 0.0f, ysum = 0.0f;
    for (u64 j = 0; j < cols; ++j) {
      float y = rk_label(labels, sparse, row, cols, j);
      // Classes without weight add nothing (not 0 * inf where a logit is -inf).
      if (y == 0.0f) continue;
      loss += y * (lse - zr[j]);
      ysum += y;
    }
    for (u64 j = 0; j < cols; ++j) {
      float p = expf(zr[j] - lse);
      if (probs) probs[row * cols + j] = p;
      if (dz) dz[row * cols + j] = scale * (p * ysum - rk_label(labels, sparse, row, cols, j));
    }
    row_loss[row] = loss;
  }
}

// Keras's cross-entropy on probabilities: renormalise the row, clip to [EPS, 1 - EPS],
// then -sum_j y_j log q_j. With dp, also the gradient times scale (zero where clipped).
extern "C" __global__ void rk_categorical_xent(const float* p, const float* labels, int sparse,
                                               float* row_loss, float* dp, float scale,
                                               u64 rows, u64 cols) {
  GRID_STRIDE(row, rows) {
    const float* pr = p + row * cols;
    float total = 0.0f;
    for (u64 j = 0; j < cols; ++j) total += pr[j];
    float loss = 0.0f, dot = 0.0f;
    for (u64 j = 0; j < cols; ++j) {
      float y = rk_label(labels, sparse, row, cols, j);
      if (y == 0.0f) continue;
      float q = pr[j] / total;
      loss -= y * logf(fminf(fmaxf(q, EPS), 1.0f - EPS));
      float dq = (q > EPS && q < 1.0f - EPS) ? -y / q : 0.0f;
      dot += dq * pr[j] / total;
    }
    if (dp) {
      for (u64 j = 0; j < cols; ++j) {
        float y = rk_label(labels, sparse, row, cols, j);
        float q = pr[j] / total;
        float dq = (q > EPS && q < 1.0f - EPS) ? -y / q : 0.0f;
        dp[row * cols + j] = scale * (dq - dot) / total;
      }
    }
    row_loss[row] = loss;
  }
}

// hit[row] = 1 where the largest prediction (the first one on ties) is the labelled class
// (for one-hot labels, the first largest label).
extern "C" __global__ void rk_accuracy_rows(const float* p, const float* labels, int sparse,
                                            float* hit, u64 rows, u64 cols) {
  GRID_STRIDE(row, rows) {
    u64 arg = 0, arg_y = 0;
    for (u64 j = 1; j < cols; ++j) {
      if (p[row * cols + j] > p[row * cols + arg]) arg = j;
      if (!sparse && labels[row * cols + j] > labels[row * cols + arg_y]) arg_y = j;
    }
    // Sparse labels compare as floats, as the CPU metric does (a label 2.5 is no hit).
    bool same = sparse ? (float)arg == labels[row] : arg == arg_y;
    hit[row] = same ? 1.0f : 0.0f;
  }
}

// Elementwise losses against targets y, each value with its derivative times scale (1 / the
// number of values, for the mean): kind 0 binary cross-entropy on probabilities (clipped
// as Keras does, no gradient where clipped), 1 binary cross-entropy on logits, 2 squared
// error, 3 absolute error.
extern "C" __global__ void rk_pointwise_loss(const float* p, const float* y, float* value,
                                             float* grad, u64 n, int kind, float scale) {
  GRID_STRIDE(i, n) {
    float pv = p[i], yv = y[i], v, d;
    if (kind == 0) {
      float c = fminf(fmaxf(pv, EPS), 1.0f - EPS);
      v = -(yv * logf(c) + (1.0f - yv) * logf(1.0f - c));
      d = (pv > EPS && pv < 1.0f - EPS) ? -yv / c + (1.0f - yv) / (1.0f - c) : 0.0f;
    } else if (kind == 1) {
      v = fmaxf(pv, 0.0f) - pv * yv + log1pf(expf(-fabsf(pv)));
      d = 1.0f / (1.0f + expf(-pv)) - yv;
    } else if (kind == 2) {
      float e = pv - yv;
      v = e * e;
      d = 2.0f * e;
    } else {
      float e = pv - yv;
      v = fabsf(e);
      d = e > 0.0f ? 1.0f : (e < 0.0f ? -1.0f : 0.0f);
    }
    value[i] = v;
    grad[i] = d * scale;
  }
}
