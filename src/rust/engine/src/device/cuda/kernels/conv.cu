// Convolutions as im2col + cuBLAS GEMM (the fallback where cuDNN is absent), NHWC input
// and a (kh, kw, c, f) kernel as in the engine. A column row is one output pixel
// (sample, oy, ox), a column one tap (ky, kx, channel): the kernel's own layout, so the
// product with the kernel seen as (kh * kw * c, f) is the convolution.

__device__ __forceinline__ long long rk_in_coord(u64 o, u64 stride, u64 k, u64 dil, u64 pad) {
  return (long long)(o * stride + k * dil) - (long long)pad;
}

extern "C" __global__ void rk_im2col(const float* x, float* cols, u64 n, u64 h, u64 w, u64 c,
                                     u64 kh, u64 kw, u64 sh, u64 sw, u64 dh, u64 dw,
                                     u64 pad_top, u64 pad_left, u64 oh, u64 ow) {
  u64 k = kh * kw * c;
  GRID_STRIDE(i, n * oh * ow * k) {
    u64 q = i % k, p = i / k;
    u64 ch = q % c, kx = (q / c) % kw, ky = q / (c * kw);
    u64 ox = p % ow, oy = (p / ow) % oh, s = p / (ow * oh);
    long long iy = rk_in_coord(oy, sh, ky, dh, pad_top);
    long long ix = rk_in_coord(ox, sw, kx, dw, pad_left);
    bool inside = iy >= 0 && iy < (long long)h && ix >= 0 && ix < (long long)w;
    cols[i] = inside ? x[((s * h + (u64)iy) * w + (u64)ix) * c + ch] : 0.0f;
  }
}

// The adjoint of rk_im2col: each input element gathers the column entries that copied
// it (a thread per input element, so no atomics).
extern "C" __global__ void rk_col2im(const float* cols, float* dx, u64 n, u64 h, u64 w, u64 c,
                                     u64 kh, u64 kw, u64 sh, u64 sw, u64 dh, u64 dw,
                                     u64 pad_top, u64 pad_left, u64 oh, u64 ow) {
  u64 k = kh * kw * c;
  GRID_STRIDE(i, n * h * w * c) {
    u64 ch = i % c, ix = (i / c) % w, iy = (i / (c * w)) % h, s = i / (c * w * h);
    float acc = 0.0f;
    for (u64 ky = 0; ky < kh; ++ky) {
      long long ty = (long long)(iy + pad_top) - (long long)(ky * dh);
      if (ty < 0 || ty % (long long)sh != 0) continue;
      u64 oy = (u64)ty / sh;
      if (oy >= oh) continue;
      for (u64 kx = 0; kx < kw; ++kx) {
        long long tx = (long long)(ix + pad_left) - (long long)(kx * dw);
        if (tx < 0 || tx % (long long)sw != 0) continue;
        u64 ox = (u64)tx / sw;
        if (ox >= ow) continue;
        acc += cols[((s * oh + oy) * ow + ox) * k + (ky * kw + kx) * c + ch];
      }
    }
    dx[i] = acc;
  }
}
