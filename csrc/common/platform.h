// Macros and correctly-rounded arithmetic shared by the CPU and CUDA kernels.
//
// Every fused kernel must agree bit-for-bit with its PyTorch reference where
// the op is exact, so each multiply/add/divide is rounded on its own: device
// code uses the __*_rn intrinsics (which nvcc never contracts into FMA), host
// code is compiled with -ffp-contract=off.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RIC_HD __host__ __device__ __forceinline__
#else
#define RIC_HD inline
#endif
// Unrolling hint for the device pass only (host compilers warn on it).
#if defined(__CUDA_ARCH__)
#define RIC_UNROLL _Pragma("unroll")
#else
#define RIC_UNROLL
#endif

namespace ric {

// Quantiser modes of the mask op (the numbers cross the Python boundary).
enum QuantMode : int { kQuantNone = 0, kQuantTrain = 1, kQuantEval = 2 };

RIC_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
RIC_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
RIC_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
RIC_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
RIC_HD float sub_rn(float a, float b) { return add_rn(a, -b); }
RIC_HD double sub_rn(double a, double b) { return add_rn(a, -b); }
RIC_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
RIC_HD double div_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
// Round half to even, as torch.round. On the host, adding and subtracting
// 1.5 * 2^(mantissa bits) rounds to an integer in the current (nearest-even)
// mode with plain arithmetic that vectorises, unlike a call to nearbyint;
// values that large are integers already and pass through unchanged.
RIC_HD float round_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  const float magic = 12582912.0f;  // 1.5 * 2^23
  const float ax = x < 0.0f ? -x : x;
  return ax < 4194304.0f ? (x + magic) - magic : x;  // |x| < 2^22
#endif
}
RIC_HD double round_even(double x) {
#if defined(__CUDA_ARCH__)
  return rint(x);
#else
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  const double ax = x < 0.0 ? -x : x;
  return ax < 2251799813685248.0 ? (x + magic) - magic : x;  // |x| < 2^51
#endif
}
RIC_HD float sqrt_rn(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}
RIC_HD double sqrt_rn(double x) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}
#if !defined(__CUDA_ARCH__)
// Branch-free float tanh for host loops (glibc's tanhf is a scalar call that
// blocks vectorisation). Cephes' tanhf: an odd polynomial below 0.625 and
// 1 - 2/(exp(2|x|) + 1) above, with Cephes' expf (degree-6 polynomial after
// reduction by ln 2). Measured max error against double tanh: see
// tests/test_adam.py::test_host_tanh_accuracy.
inline float host_expf(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = round_even(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r2 + r + 1.0f;
  // y * 2^n through the exponent bits (n in [-126, 127] after the clamp).
  union {
    uint32_t u;
    float f;
  } scale;
  scale.u = uint32_t(int32_t(n) + 127) << 23;
  return y * scale.f;
}
inline float host_tanhf(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float z2 = x * x;
  float p = -5.70498872745e-3f;
  p = p * z2 + 2.06390887954e-2f;
  p = p * z2 - 5.37397155531e-2f;
  p = p * z2 + 1.33314422036e-1f;
  p = p * z2 - 3.33332819422e-1f;
  const float small = p * z2 * x + x;
  const float e = host_expf(2.0f * (ax > 9.0f ? 9.0f : ax));
  float big = 1.0f - 2.0f / (e + 1.0f);
  big = x < 0.0f ? -big : big;
  return ax < 0.625f ? small : big;
}
#endif
RIC_HD float tanh_(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  return x != x ? x : host_tanhf(x);
#endif
}
RIC_HD double tanh_(double x) { return tanh(x); }
RIC_HD float atanh_(float x) { return atanhf(x); }
RIC_HD double atanh_(double x) { return atanh(x); }

}  // namespace ric
