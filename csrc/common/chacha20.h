// ChaCha20 block function (RFC 8439, section 2.3), shared by CPU and CUDA.
#pragma once
#include "common/platform.h"

namespace ric {

RIC_HD uint32_t rotl32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

RIC_HD uint32_t load_le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

#define RIC_CHACHA_QR(a, b, c, d) \
  a += b;                         \
  d ^= a;                         \
  d = rotl32(d, 16);              \
  c += d;                         \
  b ^= c;                         \
  b = rotl32(b, 12);              \
  a += b;                         \
  d ^= a;                         \
  d = rotl32(d, 8);               \
  c += d;                         \
  b ^= c;                         \
  b = rotl32(b, 7);

// key: 8 little-endian words, nonce: 3 little-endian words. Writes the 16
// keystream words of block `counter`; byte k of the keystream is byte k%4
// (little-endian) of word k/4.
RIC_HD void chacha20_block(const uint32_t key[8], uint32_t counter, const uint32_t nonce[3], uint32_t out[16]) {
  uint32_t s[16] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u, key[0],  key[1],   key[2],   key[3],
                    key[4],      key[5],      key[6],      key[7],      counter, nonce[0], nonce[1], nonce[2]};
  uint32_t x[16];
  RIC_UNROLL
  for (int i = 0; i < 16; ++i) x[i] = s[i];
  RIC_UNROLL
  for (int r = 0; r < 10; ++r) {
    RIC_CHACHA_QR(x[0], x[4], x[8], x[12]);
    RIC_CHACHA_QR(x[1], x[5], x[9], x[13]);
    RIC_CHACHA_QR(x[2], x[6], x[10], x[14]);
    RIC_CHACHA_QR(x[3], x[7], x[11], x[15]);
    RIC_CHACHA_QR(x[0], x[5], x[10], x[15]);
    RIC_CHACHA_QR(x[1], x[6], x[11], x[12]);
    RIC_CHACHA_QR(x[2], x[7], x[8], x[13]);
    RIC_CHACHA_QR(x[3], x[4], x[9], x[14]);
  }
  RIC_UNROLL
  for (int i = 0; i < 16; ++i) out[i] = x[i] + s[i];
}
#undef RIC_CHACHA_QR

// 24 high bits of a keystream word -> float in [0, 1), exact in float32.
RIC_HD float word_to_unit(uint32_t w) { return float(w >> 8) * 5.9604644775390625e-08f; }

// Clamp bound for 2*z0-1 before atanh so that w0 stays finite (z0 can be 0).
constexpr float kAtanhClamp = 1.0f - 1e-6f;

RIC_HD float unit_to_tanh_space(float z) {
  float t = sub_rn(mul_rn(2.0f, z), 1.0f);
  t = t < -kAtanhClamp ? -kAtanhClamp : (t > kAtanhClamp ? kAtanhClamp : t);
  return atanh_(t);
}

}  // namespace ric
