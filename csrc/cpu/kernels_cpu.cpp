// CPU implementations of the fused kernels: one pass over memory each,
// OpenMP across large inputs, per-element math from common/elementwise.h.
#include <algorithm>
#include <cstring>

#include "common/chacha20.h"
#include "common/philox.h"
#include "kernels.h"

namespace ric {
namespace {

// Below this many elements the OpenMP fork costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 15;

void load_key(const uint8_t* key, uint32_t k[8]) {
  for (int i = 0; i < 8; ++i) k[i] = load_le32(key + 4 * i);
}
void load_nonce(const uint8_t* nonce, uint32_t n[3]) {
  for (int i = 0; i < 3; ++i) n[i] = load_le32(nonce + 4 * i);
}

}  // namespace

void keystream_bytes_cpu(const uint8_t* key, const uint8_t* nonces, uint8_t* out, int64_t batch,
                         int64_t nbytes, uint32_t counter) {
  uint32_t k[8];
  load_key(key, k);
  const int64_t blocks = (nbytes + 63) / 64;
#pragma omp parallel for collapse(2) schedule(static) if (batch * nbytes > kParallelGrain)
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < blocks; ++j) {
      uint32_t n[3], w[16];
      load_nonce(nonces + 12 * b, n);
      chacha20_block(k, counter + uint32_t(j), n, w);
      uint8_t bytes[64];
      for (int i = 0; i < 16; ++i)
        for (int s = 0; s < 4; ++s) bytes[4 * i + s] = uint8_t(w[i] >> (8 * s));
      const int64_t len = std::min<int64_t>(64, nbytes - 64 * j);
      std::memcpy(out + b * nbytes + 64 * j, bytes, size_t(len));
    }
  }
}

void keyed_uniform_cpu(const uint8_t* key, const uint8_t* nonces, float* out, int64_t batch, int64_t n,
                       uint32_t counter, bool tanh_space) {
  uint32_t k[8];
  load_key(key, k);
  const int64_t blocks = (n + 15) / 16;
#pragma omp parallel for collapse(2) schedule(static) if (batch * n > kParallelGrain)
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < blocks; ++j) {
      uint32_t nn[3], w[16];
      load_nonce(nonces + 12 * b, nn);
      chacha20_block(k, counter + uint32_t(j), nn, w);
      float* dst = out + b * n + 16 * j;
      const int64_t len = std::min<int64_t>(16, n - 16 * j);
      for (int64_t i = 0; i < len; ++i) {
        const float u = word_to_unit(w[i]);
        dst[i] = tanh_space ? unit_to_tanh_space(u) : u;
      }
    }
  }
}

template <typename T>
void mask_cpu(const T* e, const T* z, T* out, int64_t n, MaskConst<T> k, int mode, const int64_t* seed) {
  const int64_t groups = (n + 3) / 4;
  const uint64_t s0 = seed ? uint64_t(seed[0]) : 0, s1 = seed ? uint64_t(seed[1]) : 0;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t g = 0; g < groups; ++g) {
    float u[4] = {0.f, 0.f, 0.f, 0.f};
    if (mode == kQuantTrain) dither4(uint64_t(g), s0, s1, u);
    const int64_t end = std::min<int64_t>(4 * g + 4, n);
    for (int64_t i = 4 * g; i < end; ++i) out[i] = mask_out(mask_pre(e[i], z[i], k, mode, T(u[i - 4 * g])), mode);
  }
}

template <typename T>
void mask_u8_cpu(const T* e, const T* z, uint8_t* out, int64_t n, MaskConst<T> k) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = mask_out_u8(mask_pre(e[i], z[i], k, kQuantEval, T(0)));
}

template <typename T>
void mask_backward_cpu(const T* grad, const T* e, const T* z, T* ge, T* gz, int64_t n, MaskConst<T> k,
                       int mode, const int64_t* seed) {
  const int64_t groups = (n + 3) / 4;
  const uint64_t s0 = seed ? uint64_t(seed[0]) : 0, s1 = seed ? uint64_t(seed[1]) : 0;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t g = 0; g < groups; ++g) {
    float u[4] = {0.f, 0.f, 0.f, 0.f};
    if (mode == kQuantTrain) dither4(uint64_t(g), s0, s1, u);
    const int64_t end = std::min<int64_t>(4 * g + 4, n);
    for (int64_t i = 4 * g; i < end; ++i) {
      const bool pass = mask_passes(mask_pre(e[i], z[i], k, mode, T(u[i - 4 * g])), mode);
      ge[i] = pass ? mul_rn(grad[i], k.a) : T(0);
      gz[i] = pass ? mul_rn(grad[i], k.b) : T(0);
    }
  }
}

template <typename T>
void unmask_cpu(const T* c, const T* z, T* out, int64_t n, T b, T inv) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = unmask_val(c[i], z[i], b, inv);
}

template <typename T>
void unmask_u8_cpu(const uint8_t* c, const T* z, T* out, int64_t n, T b, T inv) {
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = unmask_val(byte_to_unit<T>(c[i]), z[i], b, inv);
}

template <typename T>
void cw_margin_cpu(const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K, T kappa,
                   bool targeted) {
#pragma omp parallel for schedule(static) if (rows * K > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t j;
    const T g = cw_row(logits + r * K, K, labels[r], targeted, j);
    out[r] = g < -kappa ? -kappa : g;
  }
}

template <typename T>
void cw_margin_backward_cpu(const T* grad, const T* logits, const int64_t* labels, T* out, int64_t rows,
                            int64_t K, T kappa, bool targeted) {
#pragma omp parallel for schedule(static) if (rows * K > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t j;
    const int64_t y = labels[r];
    const T g = cw_row(logits + r * K, K, y, targeted, j);
    T* o = out + r * K;
    for (int64_t i = 0; i < K; ++i) o[i] = T(0);
    if (j >= 0 && g >= -kappa) {
      const T s = targeted ? grad[r] : -grad[r];
      o[j] = s;
      o[y] = -s;
    }
  }
}

template <typename T>
void adam_tanh_cpu(T* w, T* m, T* v, const T* grad, const uint8_t* active, T* adv, int64_t rows, int64_t n,
                   AdamConst c, bool grad_wrt_adv) {
#pragma omp parallel for collapse(2) schedule(static) if (rows * n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t idx = r * n + i;
      if (active[r]) {
        T g = grad[idx];
        if (grad_wrt_adv) g = mul_rn(g, tanh_to_unit_grad(w[idx]));
        adam_update(w[idx], m[idx], v[idx], g, c);
      }
      adv[idx] = tanh_to_unit(w[idx]);
    }
  }
}

#define RIC_INSTANTIATE(T)                                                                           \
  template void mask_cpu<T>(const T*, const T*, T*, int64_t, MaskConst<T>, int, const int64_t*);     \
  template void mask_u8_cpu<T>(const T*, const T*, uint8_t*, int64_t, MaskConst<T>);                 \
  template void mask_backward_cpu<T>(const T*, const T*, const T*, T*, T*, int64_t, MaskConst<T>, int, \
                                     const int64_t*);                                               \
  template void unmask_cpu<T>(const T*, const T*, T*, int64_t, T, T);                                \
  template void unmask_u8_cpu<T>(const uint8_t*, const T*, T*, int64_t, T, T);                       \
  template void cw_margin_cpu<T>(const T*, const int64_t*, T*, int64_t, int64_t, T, bool);           \
  template void cw_margin_backward_cpu<T>(const T*, const T*, const int64_t*, T*, int64_t, int64_t, T, \
                                          bool);                                                    \
  template void adam_tanh_cpu<T>(T*, T*, T*, const T*, const uint8_t*, T*, int64_t, int64_t, AdamConst, bool);
RIC_INSTANTIATE(float)
RIC_INSTANTIATE(double)
#undef RIC_INSTANTIATE

}  // namespace ric
