// Per-element math of the fused ops, written once for CPU and CUDA. The order
// of operations mirrors the PyTorch references in ric_ext/ops/_torch_impl.py
// exactly; change both together.
#pragma once
#include <cmath>
#include <stdexcept>

#include "common/platform.h"

namespace ric {

// Constants of the mask op, rounded once on the host to the op's dtype, as
// PyTorch rounds a Python-float scalar: a = 1 - lam, b = lam.
template <typename T>
struct MaskConst {
  T a, b;
};
template <typename T>
inline MaskConst<T> mask_const(double lam) {
  return MaskConst<T>{T(1.0 - lam), T(lam)};
}

// Pre-clamp value of the quantiser: x = a*e + b*z, then v = 255x + u (train)
// or rint(255x) (eval). For kQuantNone the mix x itself.
template <typename T>
RIC_HD T mask_pre(T e, T z, MaskConst<T> k, int mode, T u) {
  T x = add_rn(mul_rn(e, k.a), mul_rn(z, k.b));
  if (mode == kQuantNone) return x;
  T v = mul_rn(x, T(255));
  return mode == kQuantTrain ? add_rn(v, u) : round_even(v);
}

// Clamp to [0, 255] (NaN propagates, as torch.clamp).
template <typename T>
RIC_HD T clamp255(T v) {
  return v < T(0) ? T(0) : (v > T(255) ? T(255) : v);
}

template <typename T>
RIC_HD T mask_out(T pre, int mode) {
  return mode == kQuantNone ? pre : div_rn(clamp255(pre), T(255));
}

// uint8 ciphertext of an eval-mode pre-clamp value; NaN maps to 0.
template <typename T>
RIC_HD uint8_t mask_out_u8(T pre) {
  T q = clamp255(pre);
  return q == q ? uint8_t(q) : uint8_t(0);
}

// Straight-through quantiser: the gradient passes where the clamp is inactive
// (0 <= v <= 255, as torch.clamp's backward) and is zero elsewhere.
template <typename T>
RIC_HD bool mask_passes(T pre, int mode) {
  return mode == kQuantNone || (pre >= T(0) && pre <= T(255));
}

// Unmask: r = (c - b*z) * inv, inv = 1/(1 - lam) rounded once on the host.
template <typename T>
RIC_HD T unmask_val(T c, T z, T b, T inv) {
  return mul_rn(sub_rn(c, mul_rn(z, b)), inv);
}

// Byte of an 8-bit ciphertext -> the float it stands for, q/255 (correctly rounded).
template <typename T>
RIC_HD T byte_to_unit(uint8_t q) {
  return div_rn(T(q), T(255));
}

// Carlini-Wagner margin of one row of logits. Targeted (attack towards y):
//   g = max(max_{j != y} Z_j - Z_y, -kappa); untargeted: g = max(Z_y - max_{j != y} Z_j, -kappa).
// `jmax` is the smallest index j != y attaining the maximum (deterministic tie
// rule). Returns the unclamped margin; label out of range gives NaN.
template <typename T>
RIC_HD T cw_row(const T* z, int64_t K, int64_t y, bool targeted, int64_t& jmax) {
  jmax = -1;
  if (y < 0 || y >= K) return T(NAN);
  T best = T(0);
  for (int64_t j = 0; j < K; ++j) {
    if (j == y) continue;
    T v = z[j];
    if (jmax < 0 || v > best || (v != v && best == best)) {
      best = v;
      jmax = j;
    }
  }
  return targeted ? sub_rn(best, z[y]) : sub_rn(z[y], best);
}

// One row of the margin and of its gradient (shared by the CPU loop and the
// CUDA kernel, one row per thread).
template <typename T>
RIC_HD T cw_margin_row(const T* z, int64_t K, int64_t y, T kappa, bool targeted) {
  int64_t j;
  const T g = cw_row(z, K, y, targeted, j);
  return g < -kappa ? -kappa : g;
}

template <typename T>
RIC_HD void cw_margin_backward_row(T grad, const T* z, int64_t K, int64_t y, T kappa, bool targeted, T* out) {
  int64_t j;
  const T g = cw_row(z, K, y, targeted, j);
  for (int64_t i = 0; i < K; ++i) out[i] = T(0);
  if (j >= 0 && g >= -kappa) {
    const T s = targeted ? grad : -grad;
    out[j] = s;
    out[y] = -s;
  }
}

// The keyed pad of the "pad" scheme. Forward: s = (a*x + k) mod 1 for x in [0, 1], a < 1,
// k in [0, 1) (v - 1 is exact for v in [1, 2)). Inverse, from r = s + error with
// |error| < (1 - a)/2: d = (r - k) mod 1, unwrapped to (-(1-a)/2, a + (1-a)/2] through
// `cut` = a + (1-a)/2 (rounded once on the host), then x = clamp(d / a, 0, 1).
RIC_HD float pad_val(float x, float k, float a) {
  const float v = add_rn(mul_rn(x, a), k);
  return v >= 1.f ? sub_rn(v, 1.f) : v;
}

RIC_HD float unpad_val(float r, float k, float a, float cut) {
  float d = sub_rn(r, k);
  if (d < 0.f)
    d = add_rn(d, 1.f);
  else if (d >= 1.f)
    d = sub_rn(d, 1.f);
  if (d > cut) d = sub_rn(d, 1.f);
  const float x = div_rn(d, a);
  return x < 0.f ? 0.f : (x > 1.f ? 1.f : x);
}

// The keyed digit pad of the "digits" scheme (docs/scheme.md#digits), integer only. A keystream
// word becomes a digit in [0, base) by multiply-shift (floor(w * base / 2^32): each digit's
// probability is off uniform by less than base / 2^32). Forward: (d + k) mod base for a digit
// d; inverse: ((c mod base) - k) mod base for any byte c, i.e. the low digit of a ciphertext
// byte c = base * q + m, unpadded.
RIC_HD uint32_t word_to_digit(uint32_t w, uint32_t base) { return uint32_t((uint64_t(w) * base) >> 32); }
RIC_HD uint8_t digit_pad_val(uint8_t d, uint32_t k, uint32_t base) { return uint8_t((d % base + k) % base); }
RIC_HD uint8_t digit_unpad_val(uint8_t c, uint32_t k, uint32_t base) { return uint8_t((c % base + base - k) % base); }

// Constants of one Adam step, computed on the host in double exactly as
// torch.optim.Adam (single-tensor path) computes its Python scalars.
struct AdamConst {
  double w1;  // lerp weight 1 - beta1
  double beta2, one_minus_beta2;
  double neg_step_size;  // -lr / (1 - beta1^t)
  double bc2_sqrt;       // sqrt(1 - beta2^t)
  double eps;
};

// Host side: the constants of Adam step `step` (>= 1; the launchers of adam_tanh throw otherwise).
inline AdamConst adam_const(double lr, double beta1, double beta2, double eps, int64_t step) {
  if (step < 1) throw std::invalid_argument("ric_ext._C.adam_tanh: step must be >= 1");
  AdamConst c;
  c.w1 = 1.0 - beta1;
  c.beta2 = beta2;
  c.one_minus_beta2 = 1.0 - beta2;
  c.neg_step_size = -(lr / (1.0 - std::pow(beta1, double(step))));
  c.bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, double(step)));
  c.eps = eps;
  return c;
}

// One Adam step on (w, m, v) from gradient gw with respect to w, mirroring
//   m.lerp_(g, 1-beta1); v.mul_(beta2).addcmul_(g, g, value=1-beta2)
//   denom = v.sqrt() / bc2_sqrt + eps;  w.addcdiv_(m, denom, value=-step_size)
template <typename T>
RIC_HD void adam_update(T& w, T& m, T& v, T g, const AdamConst& c) {
  const T w1 = T(c.w1);
  if (c.w1 < 0.5)
    m = add_rn(m, mul_rn(w1, sub_rn(g, m)));
  else
    m = sub_rn(g, mul_rn(sub_rn(g, m), T(1.0 - c.w1)));
  v = add_rn(mul_rn(v, T(c.beta2)), mul_rn(mul_rn(T(c.one_minus_beta2), g), g));
  T denom = add_rn(div_rn(sqrt_rn(v), T(c.bc2_sqrt)), T(c.eps));
  w = add_rn(w, div_rn(mul_rn(T(c.neg_step_size), m), denom));
}

// tanh-space image: adv = (tanh(w) + 1) / 2.
template <typename T>
RIC_HD T tanh_to_unit(T w) {
  return mul_rn(add_rn(tanh_(w), T(1)), T(0.5));
}

// d adv / d w = (1 - tanh(w)^2) / 2.
template <typename T>
RIC_HD T tanh_to_unit_grad(T w) {
  T t = tanh_(w);
  return mul_rn(sub_rn(T(1), mul_rn(t, t)), T(0.5));
}

}  // namespace ric
