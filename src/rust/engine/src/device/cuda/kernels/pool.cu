// 2-D max and average pooling on NHWC tensors, as the CPU kernels compute them: a
// window's cells in the padding are left out (Keras's 'same' pooling), the average
// divides by the cells inside, and a max's gradient goes to the window's first maximum
// in row-major order. Backward kernels gather (a thread per input element).

// The input rows (or columns) [lo, hi) under window i, padding left out.
__device__ __forceinline__ void rk_window(u64 i, u64 stride, u64 size, u64 pad, u64 limit,
                                          u64* lo, u64* hi) {
  long long start = (long long)(i * stride) - (long long)pad;
  long long end = start + (long long)size;
  *lo = start < 0 ? 0 : (u64)start;
  *hi = end < 0 ? 0 : ((u64)end < limit ? (u64)end : limit);
}

// The windows [first, last] along one axis that contain input coordinate x.
__device__ __forceinline__ void rk_windows_over(u64 x, u64 stride, u64 size, u64 pad, u64 count,
                                                long long* first, long long* last) {
  long long t = (long long)(x + pad);
  long long lo = t - (long long)size + 1;
  *first = lo <= 0 ? 0 : (lo + (long long)stride - 1) / (long long)stride;
  long long hi = t / (long long)stride;
  *last = hi < (long long)count - 1 ? hi : (long long)count - 1;
}

extern "C" __global__ void rk_max_pool(const float* x, float* y, u64 n, u64 h, u64 w, u64 c,
                                       u64 ph, u64 pw, u64 sh, u64 sw, u64 pad_top,
                                       u64 pad_left, u64 oh, u64 ow) {
  GRID_STRIDE(o, n * oh * ow * c) {
    u64 ch = o % c, j = (o / c) % ow, i = (o / (c * ow)) % oh, s = o / (c * ow * oh);
    u64 r0, r1, q0, q1;
    rk_window(i, sh, ph, pad_top, h, &r0, &r1);
    rk_window(j, sw, pw, pad_left, w, &q0, &q1);
    float m = RK_NEG_INF;
    for (u64 r = r0; r < r1; ++r)
      for (u64 q = q0; q < q1; ++q) m = fmaxf(m, x[((s * h + r) * w + q) * c + ch]);
    y[o] = m;
  }
}

extern "C" __global__ void rk_max_pool_backward(const float* x, const float* y, const float* gy,
                                                float* dx, u64 n, u64 h, u64 w, u64 c, u64 ph,
                                                u64 pw, u64 sh, u64 sw, u64 pad_top,
                                                u64 pad_left, u64 oh, u64 ow) {
  GRID_STRIDE(e, n * h * w * c) {
    u64 ch = e % c, col = (e / c) % w, row = (e / (c * w)) % h, s = e / (c * w * h);
    long long i0, i1, j0, j1;
    rk_windows_over(row, sh, ph, pad_top, oh, &i0, &i1);
    rk_windows_over(col, sw, pw, pad_left, ow, &j0, &j1);
    float acc = 0.0f;
    for (long long i = i0; i <= i1; ++i) {
      for (long long j = j0; j <= j1; ++j) {
        u64 o = ((s * oh + (u64)i) * ow + (u64)j) * c + ch;
        u64 r0, r1, q0, q1;
        rk_window((u64)i, sh, ph, pad_top, h, &r0, &r1);
        rk_window((u64)j, sw, pw, pad_left, w, &q0, &q1);
        // Whether this cell is the window's first maximum.
        bool first = false, found = false;
        for (u64 r = r0; r < r1 && !found; ++r) {
          for (u64 q = q0; q < q1 && !found; ++q) {
            if (x[((s * h + r) * w + q) * c + ch] == y[o]) {
              found = true;
              first = r == row && q == col;
            }
          }
        }
        if (first) acc += gy[o];
      }
    }
    dx[e] = acc;
  }
}

extern "C" __global__ void rk_avg_pool(const float* x, float* y, u64 n, u64 h, u64 w, u64 c,
                                       u64 ph, u64 pw, u64 sh, u64 sw, u64 pad_top,
                                       u64 pad_left, u64 oh, u64 ow) {
  GRID_STRIDE(o, n * oh * ow * c) {
    u64 ch = o % c, j = (o / c) % ow, i = (o / (c * ow)) % oh, s = o / (c * ow * oh);
    u64 r0, r1, q0, q1;
    rk_window(i, sh, ph, pad_top, h, &r0, &r1);
    rk_window(j, sw, pw, pad_left, w, &q0, &q1);
    float sum = 0.0f;
    for (u64 r = r0; r < r1; ++r)
      for (u64 q = q0; q < q1; ++q) sum += x[((s * h + r) * w + q) * c + ch];
    y[o] = sum / (float)((r1 - r0) * (q1 - q0));
  }
}

extern "C" __global__ void rk_avg_pool_backward(const float* gy, float* dx, u64 n, u64 h, u64 w,
                                                u64 c, u64 ph, u64 pw, u64 sh, u64 sw,
                                                u64 pad_top, u64 pad_left, u64 oh, u64 ow) {
  GRID_STRIDE(e, n * h * w * c) {
    u64 ch = e % c, col = (e / c) % w, row = (e / (c * w)) % h, s = e / (c * w * h);
    long long i0, i1, j0, j1;
    rk_windows_over(row, sh, ph, pad_top, oh, &i0, &i1);
    rk_windows_over(col, sw, pw, pad_left, ow, &j0, &j1);
    float acc = 0.0f;
    for (long long i = i0; i <= i1; ++i) {
      for (long long j = j0; j <= j1; ++j) {
        u64 r0, r1, q0, q1;
        rk_window((u64)i, sh, ph, pad_top, h, &r0, &r1);
        rk_window((u64)j, sw, pw, pad_left, w, &q0, &q1);
        acc += gy[((s * oh + (u64)i) * ow + (u64)j) * c + ch] / (float)((r1 - r0) * (q1 - q0));
      }
    }
    dx[e] = acc;
  }
}
