// Optimizer updates, the formulas of the CPU path (optim.rs), which are Keras 3's.
// `decay` is learning_rate * weight_decay (AdamW), 0 otherwise.

extern "C" __global__ void rk_sgd(float* w, const float* g, float* m, u64 n, float lr,
                                  float momentum, int nesterov, float decay) {
  GRID_STRIDE(i, n) {
    float wi = w[i] - decay * w[i];
    if (m) {
      float mi = momentum * m[i] - lr * g[i];
      m[i] = mi;
      wi += nesterov ? momentum * mi - lr * g[i] : mi;
    } else {
      wi -= lr * g[i];
    }
    w[i] = wi;
  }
}

// RMSprop; `mom` (momentum > 0) and `avg` (centered) may be null. Keras puts epsilon
// inside the square root.
extern "C" __global__ void rk_rmsprop(float* w, const float* g, float* v, float* mom, float* avg,
                                      u64 n, float lr, float rho, float momentum, float eps,
                                      float decay) {
  GRID_STRIDE(i, n) {
    float gi = g[i];
    float wi = w[i] - decay * w[i];
    float vi = rho * v[i] + (1.0f - rho) * gi * gi;
    v[i] = vi;
    float den = vi;
    if (avg) {
      float a = rho * avg[i] + (1.0f - rho) * gi;
      avg[i] = a;
      den -= a * a;
    }
    float inc = lr * gi / sqrtf(den + eps);
    if (mom) {
      float mi = momentum * mom[i] + inc;
      mom[i] = mi;
      wi -= mi;
    } else {
      wi -= inc;
    }
    w[i] = wi;
  }
}

// Adam with the bias correction folded into alpha (as Keras does); `vhat` for amsgrad.
extern "C" __global__ void rk_adam(float* w, const float* g, float* m, float* v, float* vhat,
                                   u64 n, float b1, float b2, float eps, float alpha,
                                   float decay) {
  GRID_STRIDE(i, n) {
    float gi = g[i];
    float wi = w[i] - decay * w[i];
    float mi = m[i] + (gi - m[i]) * (1.0f - b1);
    float vi = v[i] + (gi * gi - v[i]) * (1.0f - b2);
    m[i] = mi;
    v[i] = vi;
    if (vhat) {
      vi = fmaxf(vhat[i], vi);
      vhat[i] = vi;
    }
    w[i] = wi - mi * alpha / (sqrtf(vi) + eps);
  }
}
