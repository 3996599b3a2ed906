// CUDA implementations of the fused kernels. Same per-element math as the CPU
// path (common/elementwise.h); deterministic, no atomics; launched on the
// caller's stream, no synchronisation, no allocation (graph-capture safe).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/chacha20.h"
#include "common/philox.h"
#include "ops.h"

namespace ric {
namespace {

constexpr int kThreads = 256;

void check_launch(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("ric_ext CUDA kernel ") + what + ": " + cudaGetErrorString(err));
}

// Grid for `work` independent items with a grid-stride loop; capped so huge
// inputs reuse threads instead of exceeding the grid limit.
unsigned grid_for(int64_t work) {
  int64_t blocks = (work + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535LL * 32) blocks = 65535LL * 32;
  return unsigned(blocks);
}

__device__ __forceinline__ void load_key_dev(const uint8_t* key, uint32_t k[8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) k[i] = load_le32(key + 4 * i);
}

// The 16 keystream words of block `counter` of one image (its 12-byte nonce): what every keyed
// kernel draws, one block per thread.
__device__ __forceinline__ void keyed_words16(const uint32_t k[8], const uint8_t* nonce, uint32_t counter,
                                              uint32_t w[16]) {
  uint32_t nn[3];
#pragma unroll
  for (int i = 0; i < 3; ++i) nn[i] = load_le32(nonce + 4 * i);
  chacha20_block(k, counter, nn, w);
}

// The same block as 16 keyed uniforms: what keyed_uniform and keyed_pad draw.
__device__ __forceinline__ void keyed_units16(const uint32_t k[8], const uint8_t* nonce, uint32_t counter,
                                              float u[16]) {
  uint32_t w[16];
  keyed_words16(k, nonce, counter, w);
#pragma unroll
  for (int i = 0; i < 16; ++i) u[i] = word_to_unit(w[i]);
}

__global__ void keystream_bytes_kernel(const uint8_t* __restrict__ key, const uint8_t* __restrict__ nonces,
                                       uint8_t* __restrict__ out, int64_t batch, int64_t nbytes, uint32_t counter) {
  uint32_t k[8];
  load_key_dev(key, k);
  const int64_t blocks = (nbytes + 63) / 64;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < batch * blocks;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = t / blocks, j = t % blocks;
    uint32_t w[16];
    keyed_words16(k, nonces + 12 * b, counter + uint32_t(j), w);
    uint8_t* dst = out + b * nbytes + 64 * j;
    const int64_t len = min(int64_t(64), nbytes - 64 * j);
    for (int64_t i = 0; i < len; ++i) dst[i] = uint8_t(w[i >> 2] >> (8 * (i & 3)));
  }
}

// One thread per 64-byte keystream block = 16 output floats. With an aligned
// row (n % 16 == 0 and a 16-byte aligned base) the stores are four float4s.
__global__ void keyed_uniform_kernel(const uint8_t* __restrict__ key, const uint8_t* __restrict__ nonces,
                                     float* __restrict__ out, int64_t batch, int64_t n, uint32_t counter,
                                     bool tanh_space, bool vec) {
  uint32_t k[8];
  load_key_dev(key, k);
  const int64_t blocks = (n + 15) / 16;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < batch * blocks;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = t / blocks, j = t % blocks;
    float f[16];
    keyed_units16(k, nonces + 12 * b, counter + uint32_t(j), f);
#pragma unroll
    for (int i = 0; i < 16; ++i) f[i] = tanh_space ? unit_to_tanh_space(f[i]) : f[i];
    float* dst = out + b * n + 16 * j;
    if (vec) {
      float4* d4 = reinterpret_cast<float4*>(dst);
#pragma unroll
      for (int q = 0; q < 4; ++q) d4[q] = make_float4(f[4 * q], f[4 * q + 1], f[4 * q + 2], f[4 * q + 3]);
    } else {
      const int64_t len = min(int64_t(16), n - 16 * j);
      for (int64_t i = 0; i < len; ++i) dst[i] = f[i];
    }
  }
}

// The keyed pad: one thread per 64-byte keystream block = 16 elements, like keyed_uniform.
__global__ void keyed_pad_kernel(const uint8_t* __restrict__ key, const uint8_t* __restrict__ nonces,
                                 const float* __restrict__ in, float* __restrict__ out, int64_t batch, int64_t n,
                                 float a, float cut, bool inverse) {
  uint32_t k[8];
  load_key_dev(key, k);
  const int64_t blocks = (n + 15) / 16;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < batch * blocks;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = t / blocks, j = t % blocks;
    float u[16];
    keyed_units16(k, nonces + 12 * b, uint32_t(j), u);
    const int64_t base = b * n + 16 * j, len = min(int64_t(16), n - 16 * j);
    for (int64_t i = 0; i < len; ++i)
      out[base + i] = inverse ? unpad_val(in[base + i], u[i], a, cut) : pad_val(in[base + i], u[i], a);
  }
}

// The keyed digit pad: one thread per 64-byte keystream block = 16 digits, like keyed_pad.
__global__ void keyed_digit_pad_kernel(const uint8_t* __restrict__ key, const uint8_t* __restrict__ nonces,
                                       const uint8_t* __restrict__ in, uint8_t* __restrict__ out, int64_t batch,
                                       int64_t n, uint32_t base, bool inverse) {
  uint32_t k[8];
  load_key_dev(key, k);
  const int64_t blocks = (n + 15) / 16;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < batch * blocks;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = t / blocks, j = t % blocks;
    uint32_t w[16];
    keyed_words16(k, nonces + 12 * b, uint32_t(j), w);
    const int64_t base_i = b * n + 16 * j, len = min(int64_t(16), n - 16 * j);
    for (int64_t i = 0; i < len; ++i) {
      const uint32_t kd = word_to_digit(w[i], base);
      out[base_i + i] = inverse ? digit_unpad_val(in[base_i + i], kd, base) : digit_pad_val(in[base_i + i], kd, base);
    }
  }
}

// Loads/stores of 4 consecutive elements; the float specialisation uses one
// 16-byte transaction when the caller proved alignment.
template <typename T>
struct Vec4 {
  __device__ static void load(const T* p, bool vec, T v[4]) {
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = p[k];
  }
  __device__ static void store(T* p, bool vec, const T v[4]) {
#pragma unroll
    for (int k = 0; k < 4; ++k) p[k] = v[k];
  }
};
template <>
struct Vec4<float> {
  __device__ static void load(const float* p, bool vec, float v[4]) {
    if (vec) {
      const float4 q = *reinterpret_cast<const float4*>(p);
      v[0] = q.x;
      v[1] = q.y;
      v[2] = q.z;
      v[3] = q.w;
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) v[k] = p[k];
    }
  }
  __device__ static void store(float* p, bool vec, const float v[4]) {
    if (vec)
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else {
#pragma unroll
      for (int k = 0; k < 4; ++k) p[k] = v[k];
    }
  }
};

// Each thread owns one group of 4 elements: one Philox call gives its 4
// dither values, so no dither tensor exists anywhere.
template <typename T>
__global__ void mask_kernel(const T* __restrict__ e, const T* __restrict__ z, T* __restrict__ out, int64_t n,
                            MaskConst<T> k, int mode, const int64_t* __restrict__ seed, bool vec) {
  const uint64_t s0 = mode == kQuantTrain ? uint64_t(seed[0]) : 0;
  const uint64_t s1 = mode == kQuantTrain ? uint64_t(seed[1]) : 0;
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups; g += int64_t(gridDim.x) * blockDim.x) {
    float u[4] = {0.f, 0.f, 0.f, 0.f};
    if (mode == kQuantTrain) dither4(uint64_t(g), s0, s1, u);
    const int64_t i0 = 4 * g;
    if (i0 + 4 <= n) {
      T ev[4], zv[4], o[4];
      Vec4<T>::load(e + i0, vec, ev);
      Vec4<T>::load(z + i0, vec, zv);
#pragma unroll
      for (int q = 0; q < 4; ++q) o[q] = mask_out(mask_pre(ev[q], zv[q], k, mode, T(u[q])), mode);
      Vec4<T>::store(out + i0, vec, o);
    } else {
      for (int64_t i = i0; i < n; ++i) out[i] = mask_out(mask_pre(e[i], z[i], k, mode, T(u[i - i0])), mode);
    }
  }
}

template <typename T>
__global__ void mask_u8_kernel(const T* __restrict__ e, const T* __restrict__ z, uint8_t* __restrict__ out, int64_t n,
                               MaskConst<T> k, bool vec) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i0 = 4 * g;
    if (i0 + 4 <= n) {
      T ev[4], zv[4];
      Vec4<T>::load(e + i0, vec, ev);
      Vec4<T>::load(z + i0, vec, zv);
      uint8_t o[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) o[q] = mask_out_u8(mask_pre(ev[q], zv[q], k, kQuantEval, T(0)));
      if (vec)
        *reinterpret_cast<uchar4*>(out + i0) = make_uchar4(o[0], o[1], o[2], o[3]);
      else
        for (int q = 0; q < 4; ++q) out[i0 + q] = o[q];
    } else {
      for (int64_t i = i0; i < n; ++i) out[i] = mask_out_u8(mask_pre(e[i], z[i], k, kQuantEval, T(0)));
    }
  }
}

template <typename T>
__global__ void mask_backward_kernel(const T* __restrict__ grad, const T* __restrict__ e, const T* __restrict__ z,
                                     T* __restrict__ ge, T* __restrict__ gz, int64_t n, MaskConst<T> k, int mode,
                                     const int64_t* __restrict__ seed) {
  const uint64_t s0 = mode == kQuantTrain ? uint64_t(seed[0]) : 0;
  const uint64_t s1 = mode == kQuantTrain ? uint64_t(seed[1]) : 0;
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups; g += int64_t(gridDim.x) * blockDim.x) {
    float u[4] = {0.f, 0.f, 0.f, 0.f};
    if (mode == kQuantTrain) dither4(uint64_t(g), s0, s1, u);
    const int64_t end = min(4 * g + 4, n);
    for (int64_t i = 4 * g; i < end; ++i) {
      const bool pass = mask_passes(mask_pre(e[i], z[i], k, mode, T(u[i - 4 * g])), mode);
      ge[i] = pass ? mul_rn(grad[i], k.a) : T(0);
      gz[i] = pass ? mul_rn(grad[i], k.b) : T(0);
    }
  }
}

template <typename T>
__global__ void unmask_kernel(const T* __restrict__ c, const T* __restrict__ z, T* __restrict__ out, int64_t n, T b,
                              T inv, bool vec) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i0 = 4 * g;
    if (i0 + 4 <= n) {
      T cv[4], zv[4], o[4];
      Vec4<T>::load(c + i0, vec, cv);
      Vec4<T>::load(z + i0, vec, zv);
#pragma unroll
      for (int q = 0; q < 4; ++q) o[q] = unmask_val(cv[q], zv[q], b, inv);
      Vec4<T>::store(out + i0, vec, o);
    } else {
      for (int64_t i = i0; i < n; ++i) out[i] = unmask_val(c[i], z[i], b, inv);
    }
  }
}

template <typename T>
__global__ void unmask_u8_kernel(const uint8_t* __restrict__ c, const T* __restrict__ z, T* __restrict__ out, int64_t n,
                                 T b, T inv, bool vec) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i0 = 4 * g;
    if (i0 + 4 <= n) {
      uint8_t cb[4];
      if (vec) {
        const uchar4 q = *reinterpret_cast<const uchar4*>(c + i0);
        cb[0] = q.x;
        cb[1] = q.y;
        cb[2] = q.z;
        cb[3] = q.w;
      } else {
        for (int q = 0; q < 4; ++q) cb[q] = c[i0 + q];
      }
      T zv[4], o[4];
      Vec4<T>::load(z + i0, vec, zv);
#pragma unroll
      for (int q = 0; q < 4; ++q) o[q] = unmask_val(byte_to_unit<T>(cb[q]), zv[q], b, inv);
      Vec4<T>::store(out + i0, vec, o);
    } else {
      for (int64_t i = i0; i < n; ++i) out[i] = unmask_val(byte_to_unit<T>(c[i]), z[i], b, inv);
    }
  }
}

template <typename T>
__global__ void cw_margin_kernel(const T* __restrict__ logits, const int64_t* __restrict__ labels, T* __restrict__ out,
                                 int64_t rows, int64_t K, T kappa, bool targeted) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows; r += int64_t(gridDim.x) * blockDim.x)
    out[r] = cw_margin_row(logits + r * K, K, labels[r], kappa, targeted);
}

template <typename T>
__global__ void cw_margin_backward_kernel(const T* __restrict__ grad, const T* __restrict__ logits,
                                          const int64_t* __restrict__ labels, T* __restrict__ out, int64_t rows,
                                          int64_t K, T kappa, bool targeted) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows; r += int64_t(gridDim.x) * blockDim.x)
    cw_margin_backward_row(grad[r], logits + r * K, K, labels[r], kappa, targeted, out + r * K);
}

template <typename T>
__global__ void adam_tanh_kernel(T* __restrict__ w, T* __restrict__ m, T* __restrict__ v, const T* __restrict__ grad,
                                 const uint8_t* __restrict__ active, T* __restrict__ adv, int64_t rows, int64_t n,
                                 AdamConst c, bool grad_wrt_adv) {
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < rows * n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    T wi = w[idx];
    if (active[idx / n]) {
      T mi = m[idx], vi = v[idx], g = grad[idx];
      if (grad_wrt_adv) g = mul_rn(g, tanh_to_unit_grad(wi));
      adam_update(wi, mi, vi, g, c);
      w[idx] = wi;
      m[idx] = mi;
      v[idx] = vi;
    }
    adv[idx] = tanh_to_unit(wi);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
bool aligned4(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 3u) == 0; }

}  // namespace

int cuda_current_device() {
  int d = 0;
  cudaError_t err = cudaGetDevice(&d);
  if (err != cudaSuccess) throw std::runtime_error(std::string("ric_ext: cudaGetDevice: ") + cudaGetErrorString(err));
  return d;
}
void cuda_set_device(int device) {
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) throw std::runtime_error(std::string("ric_ext: cudaSetDevice: ") + cudaGetErrorString(err));
}

#define RIC_STREAM(s) static_cast<cudaStream_t>(s)

void keystream_bytes_cuda(const uint8_t* key, const uint8_t* nonces, uint8_t* out, int64_t batch, int64_t nbytes,
                          uint32_t counter, void* stream) {
  const int64_t work = batch * ((nbytes + 63) / 64);
  if (work == 0) return;
  keystream_bytes_kernel<<<grid_for(work), kThreads, 0, RIC_STREAM(stream)>>>(key, nonces, out, batch, nbytes, counter);
  check_launch("keystream_bytes");
}

void keyed_uniform_cuda(const uint8_t* key, const uint8_t* nonces, float* out, int64_t batch, int64_t n,
                        uint32_t counter, bool tanh_space, void* stream) {
  const int64_t work = batch * ((n + 15) / 16);
  if (work == 0) return;
  const bool vec = n % 16 == 0 && aligned16(out);
  keyed_uniform_kernel<<<grid_for(work), kThreads, 0, RIC_STREAM(stream)>>>(key, nonces, out, batch, n, counter,
                                                                            tanh_space, vec);
  check_launch("keyed_uniform");
}

void keyed_pad_cuda(const uint8_t* key, const uint8_t* nonces, const float* in, float* out, int64_t batch, int64_t n,
                    double a, bool inverse, void* stream) {
  const int64_t work = batch * ((n + 15) / 16);
  if (work == 0) return;
  keyed_pad_kernel<<<grid_for(work), kThreads, 0, RIC_STREAM(stream)>>>(key, nonces, in, out, batch, n, float(a),
                                                                        float(a + (1.0 - a) / 2), inverse);
  check_launch("keyed_pad");
}

void keyed_digit_pad_cuda(const uint8_t* key, const uint8_t* nonces, const uint8_t* in, uint8_t* out, int64_t batch,
                          int64_t n, int64_t base, bool inverse, void* stream) {
  const int64_t work = batch * ((n + 15) / 16);
  if (work == 0) return;
  keyed_digit_pad_kernel<<<grid_for(work), kThreads, 0, RIC_STREAM(stream)>>>(key, nonces, in, out, batch, n,
                                                                              uint32_t(base), inverse);
  check_launch("keyed_digit_pad");
}

template <typename T>
void mask_cuda(const T* e, const T* z, T* out, int64_t n, double lam, int mode, const int64_t* seed, void* stream) {
  if (n == 0) return;
  const MaskConst<T> k = mask_const<T>(lam);
  const bool vec = aligned16(e) && aligned16(z) && aligned16(out);
  mask_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0, RIC_STREAM(stream)>>>(e, z, out, n, k, mode, seed, vec);
  check_launch("mask");
}

template <typename T>
void mask_u8_cuda(const T* e, const T* z, uint8_t* out, int64_t n, double lam, void* stream) {
  if (n == 0) return;
  const MaskConst<T> k = mask_const<T>(lam);
  const bool vec = aligned16(e) && aligned16(z) && aligned4(out);
  mask_u8_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0, RIC_STREAM(stream)>>>(e, z, out, n, k, vec);
  check_launch("mask_u8");
}

template <typename T>
void mask_backward_cuda(const T* grad, const T* e, const T* z, T* ge, T* gz, int64_t n, double lam, int mode,
                        const int64_t* seed, void* stream) {
  if (n == 0) return;
  const MaskConst<T> k = mask_const<T>(lam);
  mask_backward_kernel<T>
      <<<grid_for((n + 3) / 4), kThreads, 0, RIC_STREAM(stream)>>>(grad, e, z, ge, gz, n, k, mode, seed);
  check_launch("mask_backward");
}

template <typename T>
void unmask_cuda(const T* c, const T* z, T* out, int64_t n, double lam, void* stream) {
  if (n == 0) return;
  const T b = T(lam), inv = T(1.0 / (1.0 - lam));
  const bool vec = aligned16(c) && aligned16(z) && aligned16(out);
  unmask_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0, RIC_STREAM(stream)>>>(c, z, out, n, b, inv, vec);
  check_launch("unmask");
}

template <typename T>
void unmask_u8_cuda(const uint8_t* c, const T* z, T* out, int64_t n, double lam, void* stream) {
  if (n == 0) return;
  const T b = T(lam), inv = T(1.0 / (1.0 - lam));
  const bool vec = aligned4(c) && aligned16(z) && aligned16(out);
  unmask_u8_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0, RIC_STREAM(stream)>>>(c, z, out, n, b, inv, vec);
  check_launch("unmask_u8");
}

template <typename T>
void cw_margin_cuda(const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K, double kappa,
                    bool targeted, void* stream) {
  if (rows == 0) return;
  cw_margin_kernel<T>
      <<<grid_for(rows), kThreads, 0, RIC_STREAM(stream)>>>(logits, labels, out, rows, K, T(kappa), targeted);
  check_launch("cw_margin");
}

template <typename T>
void cw_margin_backward_cuda(const T* grad, const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K,
                             double kappa, bool targeted, void* stream) {
  if (rows == 0) return;
  cw_margin_backward_kernel<T>
      <<<grid_for(rows), kThreads, 0, RIC_STREAM(stream)>>>(grad, logits, labels, out, rows, K, T(kappa), targeted);
  check_launch("cw_margin_backward");
}

template <typename T>
void adam_tanh_cuda(T* w, T* m, T* v, const T* grad, const uint8_t* active, T* adv, int64_t rows, int64_t n, double lr,
                    double beta1, double beta2, double eps, int64_t step, bool grad_wrt_adv, void* stream) {
  const AdamConst c = adam_const(lr, beta1, beta2, eps, step);  // validates step even for empty inputs
  if (rows * n == 0) return;
  adam_tanh_kernel<T>
      <<<grid_for(rows * n), kThreads, 0, RIC_STREAM(stream)>>>(w, m, v, grad, active, adv, rows, n, c, grad_wrt_adv);
  check_launch("adam_tanh");
}

RIC_OPS_T(RIC_INSTANTIATE_CUDA_T, float)
RIC_OPS_T(RIC_INSTANTIATE_CUDA_T, double)

}  // namespace ric
