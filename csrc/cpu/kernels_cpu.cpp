// CPU implementations of the fused kernels: one pass over memory each,
// OpenMP across large inputs, per-element math from common/elementwise.h.
//
// This file is compiled twice (see CMakeLists.txt): once for the baseline ISA
// and, on x86-64, once with AVX2 into another namespace; cpu/dispatch.cpp
// picks one at run time. RIC_CPU_ISA names the namespace.
#include <algorithm>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "common/chacha20.h"
#include "ops.h"

namespace ric {
namespace RIC_CPU_ISA {
namespace {

// Below this many elements the OpenMP fork costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 15;

void load_key(const uint8_t* key, uint32_t k[8]) {
  for (int i = 0; i < 8; ++i) k[i] = load_le32(key + 4 * i);
}
void load_nonce(const uint8_t* nonce, uint32_t n[3]) {
  for (int i = 0; i < 3; ++i) n[i] = load_le32(nonce + 4 * i);
}

// The generators below run kLanes independent blocks in lock-step with GCC/
// Clang vector extensions: plain SSE2 on the baseline build, one AVX2
// register per word in the AVX2 build. Each lane computes exactly what
// chacha20_block / dither4 (the code the CUDA kernels inline) compute.
constexpr int kLanes = 8;
typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef uint64_t u64x8 __attribute__((vector_size(64)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
typedef float f32x8 __attribute__((vector_size(32)));

inline u32x8 rotl(u32x8 x, int n) { return (x << n) | (x >> (32 - n)); }

void chacha20_lanes(const uint32_t key[8], uint32_t counter0, const uint32_t nonce[3], uint32_t out[16][kLanes]) {
  u32x8 x[16], s[16];
  const uint32_t consts[4] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u};
  for (int i = 0; i < 4; ++i) x[i] = u32x8{} + consts[i];
  for (int i = 0; i < 8; ++i) x[4 + i] = u32x8{} + key[i];
  x[12] = u32x8{0, 1, 2, 3, 4, 5, 6, 7} + counter0;
  for (int i = 0; i < 3; ++i) x[13 + i] = u32x8{} + nonce[i];
  for (int i = 0; i < 16; ++i) s[i] = x[i];
#define RIC_QR_LANES(a, b, c, d) \
  x[a] += x[b];                  \
  x[d] = rotl(x[d] ^ x[a], 16);  \
  x[c] += x[d];                  \
  x[b] = rotl(x[b] ^ x[c], 12);  \
  x[a] += x[b];                  \
  x[d] = rotl(x[d] ^ x[a], 8);   \
  x[c] += x[d];                  \
  x[b] = rotl(x[b] ^ x[c], 7);
  for (int r = 0; r < 10; ++r) {
    // clang-format off
    RIC_QR_LANES(0, 4, 8, 12) RIC_QR_LANES(1, 5, 9, 13) RIC_QR_LANES(2, 6, 10, 14) RIC_QR_LANES(3, 7, 11, 15)
    RIC_QR_LANES(0, 5, 10, 15) RIC_QR_LANES(1, 6, 11, 12) RIC_QR_LANES(2, 7, 8, 13) RIC_QR_LANES(3, 4, 9, 14)
    // clang-format on
  }
#undef RIC_QR_LANES
  for (int i = 0; i < 16; ++i) std::memcpy(out[i], &(x[i] += s[i]), sizeof(u32x8));
}

// Philox rounds on 8 lanes: c* hold word * of the counters of 8 groups.
#if defined(__AVX2__)
// AVX2 has a 32x32->64 multiply for the even lanes only (vpmuludq); the odd
// lanes are shifted down, multiplied, and the halves are interleaved back.
inline void mulhilo_lanes(uint32_t m, u32x8 c, u32x8& hi, u32x8& lo) {
  const __m256i vc = reinterpret_cast<__m256i&>(c), vm = _mm256_set1_epi32(int(m));
  const __m256i pe = _mm256_mul_epu32(vc, vm);                         // lanes 0,2,4,6
  const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(vc, 32), vm);  // lanes 1,3,5,7
  const __m256i lo_mask = _mm256_set1_epi64x(0xFFFFFFFFLL);
  const __m256i h = _mm256_or_si256(_mm256_srli_epi64(pe, 32), _mm256_andnot_si256(lo_mask, po));
  const __m256i l = _mm256_or_si256(_mm256_and_si256(pe, lo_mask), _mm256_slli_epi64(po, 32));
  hi = reinterpret_cast<const u32x8&>(h);
  lo = reinterpret_cast<const u32x8&>(l);
}
#else
inline void mulhilo_lanes(uint32_t m, u32x8 c, u32x8& hi, u32x8& lo) {
  const u64x8 p = __builtin_convertvector(c, u64x8) * uint64_t(m);
  hi = __builtin_convertvector(p >> 32, u32x8);
  lo = __builtin_convertvector(p, u32x8);
}
#endif

// Dither of groups g0 .. g0 + kLanes - 1: u[4 * l + k] = word k of group g0 + l.
void dither_lanes(uint64_t g0, uint64_t seed, uint64_t offset, float u[4 * kLanes]) {
  const u64x8 g = u64x8{0, 1, 2, 3, 4, 5, 6, 7} + g0;
  u32x8 c0 = __builtin_convertvector(g, u32x8), c1 = __builtin_convertvector(g >> 32, u32x8);
  u32x8 c2 = u32x8{} + uint32_t(offset), c3 = u32x8{} + uint32_t(offset >> 32);
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    u32x8 hi0, lo0, hi1, lo1;
    mulhilo_lanes(0xD2511F53u, c0, hi0, lo0);
    mulhilo_lanes(0xCD9E8D57u, c2, hi1, lo1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  // (w >> 8) < 2^24 converts exactly through int32.
  const f32x8 scale = f32x8{} + 5.9604644775390625e-08f;
  const f32x8 f0 = __builtin_convertvector((i32x8)(c0 >> 8), f32x8) * scale - 0.5f;
  const f32x8 f1 = __builtin_convertvector((i32x8)(c1 >> 8), f32x8) * scale - 0.5f;
  const f32x8 f2 = __builtin_convertvector((i32x8)(c2 >> 8), f32x8) * scale - 0.5f;
  const f32x8 f3 = __builtin_convertvector((i32x8)(c3 >> 8), f32x8) * scale - 0.5f;
  for (int l = 0; l < kLanes; ++l) {
    u[4 * l + 0] = f0[l];
    u[4 * l + 1] = f1[l];
    u[4 * l + 2] = f2[l];
    u[4 * l + 3] = f3[l];
  }
}

// Calls f(i, u_i) for every element i < n, u_i its dither value (0 unless
// mode == kQuantTrain): the loop shared by mask and mask_backward, which must
// draw the same dither. OpenMP over chunks of 4 * kLanes elements.
template <typename F>
void for_each_dithered(int64_t n, int mode, const int64_t* seed, F&& f) {
  const int64_t chunk = 4 * kLanes;
  const int64_t chunks = (n + chunk - 1) / chunk;
  const uint64_t s0 = seed ? uint64_t(seed[0]) : 0, s1 = seed ? uint64_t(seed[1]) : 0;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t j = 0; j < chunks; ++j) {
    float u[4 * kLanes] = {};
    if (mode == kQuantTrain) dither_lanes(uint64_t(j * kLanes), s0, s1, u);
    const int64_t i0 = chunk * j, len = std::min<int64_t>(chunk, n - i0);
    for (int64_t i = 0; i < len; ++i) f(i0 + i, u[i]);
  }
}

}  // namespace

void keystream_bytes(const uint8_t* key, const uint8_t* nonces, uint8_t* out, int64_t batch, int64_t nbytes,
                     uint32_t counter) {
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

namespace {
// Calls f(offset, w, len) for each chunk of the keystream words of every image: w[0..len) are
// keystream words offset.. of image b (offset = b * n + position). One chunk = kLanes
// consecutive 64-byte blocks = 16 * kLanes words. Shared by every keyed op.
template <typename F>
void for_each_keyed_words(const uint8_t* key, const uint8_t* nonces, int64_t batch, int64_t n, uint32_t counter,
                          F&& f) {
  uint32_t k[8];
  load_key(key, k);
  const int64_t chunk = 16 * kLanes;
  const int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for collapse(2) schedule(static) if (batch * n > kParallelGrain)
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < chunks; ++j) {
      uint32_t nn[3], w[16][kLanes];
      load_nonce(nonces + 12 * b, nn);
      chacha20_lanes(k, counter + uint32_t(j * kLanes), nn, w);
      uint32_t words[16 * kLanes];
      for (int l = 0; l < kLanes; ++l)
        for (int i = 0; i < 16; ++i) words[16 * l + i] = w[i][l];
      f(b * n + chunk * j, words, std::min<int64_t>(chunk, n - chunk * j));
    }
  }
}

// The same chunks as keyed uniforms: u[i] = word_to_unit(w[i]). Shared by keyed_uniform and keyed_pad.
template <typename F>
void for_each_keyed_chunk(const uint8_t* key, const uint8_t* nonces, int64_t batch, int64_t n, uint32_t counter,
                          F&& f) {
  for_each_keyed_words(key, nonces, batch, n, counter, [&](int64_t off, const uint32_t* w, int64_t len) {
    float u[16 * kLanes];
    for (int64_t i = 0; i < len; ++i) u[i] = word_to_unit(w[i]);
    f(off, u, len);
  });
}
}  // namespace

void keyed_uniform(const uint8_t* key, const uint8_t* nonces, float* out, int64_t batch, int64_t n, uint32_t counter,
                   bool tanh_space) {
  for_each_keyed_chunk(key, nonces, batch, n, counter, [&](int64_t off, const float* u, int64_t len) {
    if (tanh_space)
      for (int64_t i = 0; i < len; ++i) out[off + i] = unit_to_tanh_space(u[i]);
    else
      std::memcpy(out + off, u, size_t(len) * sizeof(float));
  });
}

void keyed_pad(const uint8_t* key, const uint8_t* nonces, const float* in, float* out, int64_t batch, int64_t n,
               double a, bool inverse) {
  const float af = float(a), cut = float(a + (1.0 - a) / 2);
  for_each_keyed_chunk(key, nonces, batch, n, 0, [&](int64_t off, const float* u, int64_t len) {
    if (inverse)
      for (int64_t i = 0; i < len; ++i) out[off + i] = unpad_val(in[off + i], u[i], af, cut);
    else
      for (int64_t i = 0; i < len; ++i) out[off + i] = pad_val(in[off + i], u[i], af);
  });
}

void keyed_digit_pad(const uint8_t* key, const uint8_t* nonces, const uint8_t* in, uint8_t* out, int64_t batch,
                     int64_t n, int64_t base, bool inverse) {
  const uint32_t L = uint32_t(base);
  for_each_keyed_words(key, nonces, batch, n, 0, [&](int64_t off, const uint32_t* w, int64_t len) {
    if (inverse)
      for (int64_t i = 0; i < len; ++i) out[off + i] = digit_unpad_val(in[off + i], word_to_digit(w[i], L), L);
    else
      for (int64_t i = 0; i < len; ++i) out[off + i] = digit_pad_val(in[off + i], word_to_digit(w[i], L), L);
  });
}

template <typename T>
void mask(const T* e, const T* z, T* out, int64_t n, double lam, int mode, const int64_t* seed) {
  const MaskConst<T> k = mask_const<T>(lam);
  for_each_dithered(n, mode, seed,
                    [&](int64_t i, float u) { out[i] = mask_out(mask_pre(e[i], z[i], k, mode, T(u)), mode); });
}

template <typename T>
void mask_u8(const T* e, const T* z, uint8_t* out, int64_t n, double lam) {
  const MaskConst<T> k = mask_const<T>(lam);
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = mask_out_u8(mask_pre(e[i], z[i], k, kQuantEval, T(0)));
}

template <typename T>
void mask_backward(const T* grad, const T* e, const T* z, T* ge, T* gz, int64_t n, double lam, int mode,
                   const int64_t* seed) {
  const MaskConst<T> k = mask_const<T>(lam);
  for_each_dithered(n, mode, seed, [&](int64_t i, float u) {
    const bool pass = mask_passes(mask_pre(e[i], z[i], k, mode, T(u)), mode);
    ge[i] = pass ? mul_rn(grad[i], k.a) : T(0);
    gz[i] = pass ? mul_rn(grad[i], k.b) : T(0);
  });
}

template <typename T>
void unmask(const T* c, const T* z, T* out, int64_t n, double lam) {
  const T b = T(lam), inv = T(1.0 / (1.0 - lam));
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = unmask_val(c[i], z[i], b, inv);
}

template <typename T>
void unmask_u8(const uint8_t* c, const T* z, T* out, int64_t n, double lam) {
  const T b = T(lam), inv = T(1.0 / (1.0 - lam));
#pragma omp parallel for simd schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = unmask_val(byte_to_unit<T>(c[i]), z[i], b, inv);
}

template <typename T>
void cw_margin(const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K, double kappa, bool targeted) {
  const T kap = T(kappa);
#pragma omp parallel for schedule(static) if (rows * K > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) out[r] = cw_margin_row(logits + r * K, K, labels[r], kap, targeted);
}

template <typename T>
void cw_margin_backward(const T* grad, const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K,
                        double kappa, bool targeted) {
  const T kap = T(kappa);
#pragma omp parallel for schedule(static) if (rows * K > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r)
    cw_margin_backward_row(grad[r], logits + r * K, K, labels[r], kap, targeted, out + r * K);
}

namespace {
// The loop-invariant choices are template parameters so the inner loop is
// branch-free and vectorises.
template <typename T, bool kGradWrtAdv, bool kSmallW1>
void adam_rows(T* w, T* m, T* v, const T* grad, const uint8_t* active, T* adv, int64_t rows, int64_t n,
               const AdamConst& c) {
  const int64_t block = 4096;  // rows are split so that both threads get work for small batches
  const int64_t per_row = (n + block - 1) / block;
  const T w1 = T(c.w1), one_minus_w1 = T(1.0 - c.w1), beta2 = T(c.beta2), omb2 = T(c.one_minus_beta2);
  const T nss = T(c.neg_step_size), bc2 = T(c.bc2_sqrt), eps = T(c.eps);
#pragma omp parallel for schedule(static) if (rows * n > kParallelGrain)
  for (int64_t t = 0; t < rows * per_row; ++t) {
    const int64_t r = t / per_row, i0 = r * n + (t % per_row) * block;
    const int64_t i1 = std::min<int64_t>(i0 + block, (r + 1) * n);
    if (active[r]) {
      for (int64_t i = i0; i < i1; ++i) {
        T wi = w[i], mi = m[i], vi = v[i], g = grad[i];
        if (kGradWrtAdv) g = mul_rn(g, tanh_to_unit_grad(wi));
        // Same arithmetic as adam_update (common/elementwise.h), constants hoisted.
        mi = kSmallW1 ? add_rn(mi, mul_rn(w1, sub_rn(g, mi))) : sub_rn(g, mul_rn(sub_rn(g, mi), one_minus_w1));
        vi = add_rn(mul_rn(vi, beta2), mul_rn(mul_rn(omb2, g), g));
        const T denom = add_rn(div_rn(sqrt_rn(vi), bc2), eps);
        wi = add_rn(wi, div_rn(mul_rn(nss, mi), denom));
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
        adv[i] = tanh_to_unit(wi);
      }
    } else {
      for (int64_t i = i0; i < i1; ++i) adv[i] = tanh_to_unit(w[i]);
    }
  }
}
}  // namespace

template <typename T>
void adam_tanh(T* w, T* m, T* v, const T* grad, const uint8_t* active, T* adv, int64_t rows, int64_t n, double lr,
               double beta1, double beta2, double eps, int64_t step, bool grad_wrt_adv) {
  const AdamConst c = adam_const(lr, beta1, beta2, eps, step);
  const bool small = c.w1 < 0.5;
  if (grad_wrt_adv) {
    small ? adam_rows<T, true, true>(w, m, v, grad, active, adv, rows, n, c)
          : adam_rows<T, true, false>(w, m, v, grad, active, adv, rows, n, c);
  } else {
    small ? adam_rows<T, false, true>(w, m, v, grad, active, adv, rows, n, c)
          : adam_rows<T, false, false>(w, m, v, grad, active, adv, rows, n, c);
  }
}

RIC_OPS_T(RIC_INSTANTIATE_T, float)
RIC_OPS_T(RIC_INSTANTIATE_T, double)

}  // namespace RIC_CPU_ISA
}  // namespace ric
