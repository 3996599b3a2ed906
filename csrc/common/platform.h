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
// Round half to even, as torch.round.
RIC_HD float round_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::nearbyint(x);
#endif
}
RIC_HD double round_even(double x) {
#if defined(__CUDA_ARCH__)
  return rint(x);
#else
  return std::nearbyint(x);
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
RIC_HD float tanh_(float x) { return tanhf(x); }
RIC_HD double tanh_(double x) { return tanh(x); }
RIC_HD float atanh_(float x) { return atanhf(x); }
RIC_HD double atanh_(double x) { return atanh(x); }

}  // namespace ric
