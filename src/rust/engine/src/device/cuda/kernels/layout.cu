// Moving values between layouts: blocks of a concatenation and zero padding of images.

// For o < outer and k < len: dst[o * dst_stride + dst_offset + k] =
// src[o * src_stride + src_offset + k]. One input of a concatenation along an axis
// (outer = the product of the axes before it), or one part cut back out of it.
extern "C" __global__ void rk_copy_block(const float* src, float* dst, u64 outer, u64 len,
                                         u64 src_stride, u64 src_offset, u64 dst_stride,
                                         u64 dst_offset) {
  GRID_STRIDE(i, outer * len) {
    u64 o = i / len, k = i % len;
    dst[o * dst_stride + dst_offset + k] = src[o * src_stride + src_offset + k];
  }
}

// y (n, h + top + bottom, w + left + right, c) = x placed at (top, left), zeros around:
// a thread per output value.
extern "C" __global__ void rk_zero_pad2d(const float* x, float* y, u64 n, u64 h, u64 w, u64 c,
                                         u64 top, u64 left, u64 oh, u64 ow) {
  GRID_STRIDE(i, n * oh * ow * c) {
    u64 ch = i % c, q = (i / c) % ow, r = (i / (c * ow)) % oh, s = i / (c * ow * oh);
    bool inside = r >= top && r < top + h && q >= left && q < left + w;
    y[i] = inside ? x[((s * h + (r - top)) * w + (q - left)) * c + ch] : 0.0f;
  }
}

// The inverse: x (n, h, w, c) = the middle of y at (top, left).
extern "C" __global__ void rk_crop2d(const float* y, float* x, u64 n, u64 h, u64 w, u64 c,
                                     u64 top, u64 left, u64 oh, u64 ow) {
  GRID_STRIDE(i, n * h * w * c) {
    u64 ch = i % c, q = (i / c) % w, r = (i / (c * w)) % h, s = i / (c * w * h);
    x[i] = y[((s * oh + r + top) * ow + q + left) * c + ch];
  }
}
